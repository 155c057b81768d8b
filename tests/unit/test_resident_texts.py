"""Every resident-facing template, filled, is free of the routing's insides (置信度, 关键词, arrows,
阈值, category labels, raw codes); and the check itself catches what the old replies showed."""
import re
import string

import pytest

from liaison.messaging import texts

SAMPLE = {"number": "2026-000123", "previous": "2026-000122", "into": "2026-000120",
          "deputy": "网格代表 张建华（县人大代表）", "department": "生态环境局", "date": "2026年12月08日",
          "handler": "由网格代表 张建华（县人大代表）负责办理。", "status": "待受理", "brief": "路灯坏了",
          "summary": "已更换灯泡", "label": "满意", "round": 2, "example": "2026-000001",
          "name": "张建华", "level": "县", "grid": "幸福里网格", "duties": "村主任", "hours": "每周三上午",
          "station": "城关镇人大代表联络站", "address": "城关镇人民路1号", "text": "已安排维修。",
          "reason": "不属于受理范围", "question": "具体是几号楼？", "title": "联络站服务评价",
          "minutes": 10, "count": 2}


def fields_of(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("name", sorted(texts.TEMPLATES))
def test_every_template_is_fit_for_a_resident(name):
    template = texts.TEMPLATES[name]
    missing = fields_of(template) - set(SAMPLE)
    assert not missing, f"add sample values for {missing}"
    filled = texts.say(name, **{k: SAMPLE[k] for k in fields_of(template)})
    assert texts.internal_terms(filled) == [], (name, filled)
    assert texts.internal_terms(re.sub(r"\{[^}]*\}", "", template)) == [], (name, template)


def test_composed_texts_are_fit_for_a_resident():
    for text in (texts.rating_prompt_text("2026-000001", "已修好"), texts.rating_reminder_text("2026-000001")):
        assert texts.internal_terms(text) == []


@pytest.mark.parametrize("leak", [
    "分派依据：分类「环境保护」置信度 0.85（关键词：楼下、吵、睡不着）→ 生态环境局",
    "置信度 0.34 低于阈值 0.60 → 转网格代表分办",
    "办理人：zhujian", "状态：assigned", "类别：劳动和社会保障",
])
def test_the_check_catches_internal_terms(leak):
    assert texts.internal_terms(leak)


def test_brief_cuts_with_an_ellipsis():
    assert texts.brief("路灯坏了") == "路灯坏了"
    cut = texts.brief("幸福里小区3号楼门口的路灯坏了好几天，晚上出行很不方便")
    assert cut.endswith("…") and len(cut) <= 17


def test_a_department_name_is_not_a_category_label():
    assert texts.internal_terms("已交县住房和城乡建设局办理。") == []
    assert texts.internal_terms("分类：城乡建设。") == ["城乡建设"]
