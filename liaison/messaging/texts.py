"""Every text a resident reads, in one reviewed place: named templates, filled by `say`.

Residents get plain sentences: the case number, who handles it (the deputy by name, the department by
name), the deadline as a date, and what they can do next. How a case was routed (categories,
confidence, keywords) stays on the case for staff and in the staff API; `internal_terms` names what
must never reach a resident, and `tests/unit/test_resident_texts.py` checks every template with it
(the test fixtures check every reply the simulator receives, too).

Kept in `messaging` (below case, engagement and conversation) because all of them write to residents.
"""
from __future__ import annotations

import re
from datetime import datetime

from liaison.core.workcalendar import CHINA_TZ

# --- the templates -------------------------------------------------------------------------------
# One name per situation; fields in braces. Tone: 您, short sentences, one idea per line, the next step
# last. Review a change here with the office: these are the words residents see.
TEMPLATES: dict[str, str] = {
    # a new matter is registered
    "case_opened": "您反映的问题已登记，编号 {number}。",
    "case_opened_another": ("这是您反映的另一件事，已单独登记，编号 {number}。"
                            "（诉求 {previous} 照常办理。）"),
    "handled_by_deputy": "由{deputy}负责办理。",
    "handled_by_department": "已交{department}办理，{deputy}跟进督办。",
    "handled_by_department_station": "已交{department}办理，人大代表联络工作室跟进督办。",
    "handled_by_office": "人大代表联络工作室正在为您安排办理人。",
    "deadline": "{date}前会给您答复。",
    "next_steps": "还有情况要补充，直接回复文字、图片或位置即可；发送“我的诉求”可查看办理进展。",
    # more for an open matter
    "follow_up_added": "已补充到您的诉求 {number}。",
    "follow_up_rerouted": "已补充到您的诉求 {number}，现{handler}",
    "location_added": "已将位置补充到诉求 {number}。",
    "image_added": "已将图片补充到诉求 {number}。",
    "location_without_case": "已收到您的位置。请再用文字说说需要反映的问题，我们会一并登记。",
    "image_without_case": "已收到图片。请再用文字说说需要反映的问题，图片可以在说明后补充。",
    "voice_unrecognized": "抱歉，没能听清您的语音，请用文字描述您的诉求。",
    # the same problem was already raised by someone else (并单)
    "duplicate_followed": ("您反映的问题已有群众反映过（诉求 {number}），{handler}"
                           "已将您加入关注，办理进展和结果会同时告诉您。"),
    # too many new matters in a short time
    "over_limit_joined": ("您短时间内反映的事项较多，这条内容已补充到您的诉求 {number}，{handler}"
                          "如果是另一件事，请稍后再单独发送。"),
    "over_limit": "您短时间内反映的事项较多，暂时不能登记新的诉求，请稍后再发送。",
    # small talk and too little to act on (no case is opened)
    "greeting": ("您好！这里是“一键找代表”。有困难或建议，直接发文字或语音告诉我们："
                 "在哪里、发生了什么、从什么时候开始。"),
    "thanks": "不客气！有新的情况随时告诉我们。",
    "thanks_open": "不客气！诉求 {number} 有进展会第一时间告诉您。",
    "too_little": ("收到。为了尽快帮您办理，请再说具体一些：在哪里（小区、楼栋或路段）、"
                   "发生了什么、从什么时候开始。"),
    "too_little_digits": ("收到您发来的数字。要评价办结的诉求，请点菜单“评价”后回复 1、2 或 3；"
                          "要查询诉求，请发送完整编号，如 {example}；"
                          "要反映问题，请说说在哪里、发生了什么、从什么时候开始。"),
    # questions about their matters
    "no_cases": "您还没有反映过诉求。直接发送文字或语音即可反映。",
    "my_cases_header": "您最近反映的诉求：",
    "my_cases_line": "{number}｜{status}｜{handler}：{brief}",
    "followed_cases_header": "您关注的同类诉求：",
    "followed_cases_line": "{number}｜{status}｜{handler}",
    "my_cases_footer": "发送编号（如 {example}）可查看某一件的详情。",
    "case_status": "诉求 {number}：{status}。",
    "case_status_handler": "办理：{handler}",
    "case_status_deadline": "答复期限：{date}",
    "case_status_summary": "办理情况：{summary}",
    "case_status_next_open": "还有情况要补充，直接回复文字即可。",
    "case_status_next_rate": "请回复数字评价：1 满意　2 基本满意　3 不满意",
    "case_not_found": "没有查到您反映过编号为 {number} 的诉求，请核对编号；发送“我的诉求”可查看您的全部诉求。",
    # ratings
    "rating_prompt": "您的诉求 {number} 已办结。",
    "rating_prompt_summary": "办理情况：{summary}",
    "rating_prompt_ask": "请回复数字评价：1 满意　2 基本满意　3 不满意",
    "rating_reminder_prefix": "【评价提醒】",
    "rating_reminder_suffix": "（逾期未评价将记为“未评价”。）",
    "rated_follower": "感谢您对诉求 {number} 的评价（{label}）。",
    "rated_reopened": "很抱歉没有让您满意。诉求 {number} 已转入二次办理（第{round}轮），办理人会重新处理并答复您。",
    "rated_closed": "感谢您的评价（{label}）！诉求 {number} 已办结销号。",
    "nothing_to_rate": "您目前没有待评价的诉求。",
    # following, scanning and the menu
    "welcome": ("欢迎关注“一键找代表”！直接发送文字或语音反映您身边的困难和建议；"
                "扫描小区公示牌上的二维码，可绑定您的网格代表。"),
    "station_welcome": "欢迎来到{station}！接待时间：{hours}。\n直接发送文字或语音即可反映诉求。",
    "grid_bound": "已为您绑定网格。",
    "grid_bound_no_deputy": "已为您绑定网格：{grid}。直接发送文字或语音即可反映诉求。",
    "no_grid": "您还没有绑定网格。请扫描小区公示牌上的“一键找代表”二维码，或直接发送诉求并写明小区名称。",
    "grid_without_deputy": "您所在的网格：{grid}，暂未配置代表。",
    "deputy_card": "您的网格代表：{name}（{level}人大代表）",
    "deputy_card_grid": "所在网格：{grid}",
    "deputy_card_duties": "职务：{duties}",
    "deputy_card_hours": "接待时间：{hours}",
    "deputy_card_station": "联络站：{station}",
    "deputy_card_next": "有什么困难或建议，直接发文字或语音给我们，代表会尽快办理。",
    "meet_wednesday": "每周三是代表接待日。",
    "meet_wednesday_station": "{station}：{hours}",
    "meet_wednesday_address": "地址：{address}",
    "meet_wednesday_next": "来不了也没关系，直接发文字或语音给我们，代表同样会办理。",
    "meet_wednesday_no_grid": "扫描小区公示牌上的二维码绑定网格后，可查看离您最近的联络站接待安排。",
    # what happens to a case later (sent by the worker)
    "case_replied": "【诉求 {number} 答复】\n{text}",
    "photos_attached": "办理人附上了{count}张现场照片，请在小程序“我的诉求”中查看。",
    "case_dispatched": "您的诉求 {number} 已转交{department}办理，{date}前答复您，我们会持续跟进督办。",
    "case_rejected": "您的诉求 {number} 不予受理：{reason}",
    "case_merged": ("您的诉求 {number} 与诉求 {into} 反映的是同一件事，已合并办理。"
                    "今后诉求 {into} 的办理进展和结果会同样告诉您，办结后也请您评价。"),
    "information_requested": "【诉求 {number} 需要补充】\n{question}\n请在小程序中补充信息。",
    # the webhook answered before the message was stored (spool)
    "received": "您的消息已收到。系统正在登记，稍后会把诉求编号和办理人发给您，请勿重复发送。",
    # scan-to-rate surveys
    "survey_prompt": ("欢迎参与“{title}”。\n请回复数字评价：1 满意　2 基本满意　3 不满意\n"
                      "（{minutes} 分钟内有效；也可在小程序中评价并留言）"),
    "survey_gone": "该评价二维码已失效。",
    "survey_not_party": "该评价仅限反映该诉求的群众参与。",
    "rated_ruling": "很抱歉两轮办理仍没有让您满意。诉求 {number} 已提交人大工委研究裁定，结果会告诉您。",
    "survey_not_constituent": "本次述职测评仅限该代表所联系网格的选民参与。",
    "survey_done": "您已参与过“{title}”的评价，感谢支持！",
    "survey_thanks": "感谢您的评价（{label}）！如需留言，可在小程序中补充。",
    # 民生实事 征集 in the chat
    "project_proposal_received": ("感谢您的民生实事建议：“{title}”，已收到。\n人大代表联络工作室会统一整理、筛选，"
                                  "入选的项目将提交人大代表票决。筛选结果可在小程序“民生实事”中查看。"),
    "project_proposal_how": ("欢迎提出民生实事建议。请发送“建议：”加上您希望政府办的实事，"
                             "例如：建议：幸福里社区建一个老年食堂。"),
}


def say(template: str, /, **fields) -> str:
    """The named template filled with `fields` (a missing field is a bug: KeyError)."""
    return TEMPLATES[template].format(**fields)


def lines(*parts: str | None) -> str:
    """Join the non-empty parts, one per line."""
    return "\n".join(p for p in parts if p)


def day(moment: datetime | None) -> str:
    """A deadline as residents read it: 2026年10月15日 (China time)."""
    return moment.astimezone(CHINA_TZ).strftime("%Y年%m月%d日") if moment else ""


def brief(text: str, limit: int = 16) -> str:
    """The start of a resident's text for a list: the first line, cut with an ellipsis when longer."""
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return first if len(first) <= limit else first[:limit].rstrip("，,。.；;、 ") + "…"


def rating_prompt_text(case_number: str, summary: str | None, photos: int = 0) -> str:
    """The satisfaction prompt (满意 / 基本满意 / 不满意), by chat reply; says so when the handler
    attached `photos` to the 办结."""
    return lines(say("rating_prompt", number=case_number),
                 say("rating_prompt_summary", summary=summary[:200]) if summary else None,
                 say("photos_attached", count=photos) if photos else None,
                 say("rating_prompt_ask"))


def rating_reminder_text(case_number: str) -> str:
    return (say("rating_reminder_prefix") + rating_prompt_text(case_number, None) + "\n"
            + say("rating_reminder_suffix"))


# --- what must never reach a resident ---------------------------------------------------------------
INTERNAL_WORDS = ("置信度", "关键词", "阈值", "分派依据", "→", "->", "confidence", "keyword")
# The seven classifier categories are staff vocabulary: residents are told who handles it, not a label.
CATEGORY_LABELS = ("城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生")
# A label inside a department's name (县住房和城乡建设局) is the department's name, not the label.
_CATEGORY = re.compile("(?:" + "|".join(CATEGORY_LABELS) + ")(?![局委厅办所站中处科])")
_RAW_CODE = re.compile(
    r"(?<![A-Za-z_])(zhujian|shengtai|jiaotong|jiaoyu|renshe|shichang|weijian|submitted|assigned|"
    r"accepted|replied|transferred|returned|closed|reopened|archived|unrated|merged|rejected|withdrawn|"
    r"deputy|department|office|satisfied|unsatisfied|basically_satisfied|None|null)(?![A-Za-z_])")


def internal_terms(text: str) -> list[str]:
    """The internal terms, category labels and raw codes found in `text` (empty = fit for a resident)."""
    found = [w for w in INTERNAL_WORDS if w in text]
    found += [m.group(0) for m in _CATEGORY.finditer(text)]
    found += [m.group(1) for m in _RAW_CODE.finditer(text)]
    return found
