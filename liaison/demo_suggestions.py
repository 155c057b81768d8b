"""A year of made-up 代表建议 and 民生实事 for the demo county, on top of its case history
(`demo_history`): suggestions in every state (起草, each review step, 退回, 不予立案, 待交办, 办理中, 逾期
督办, 重点督办, 待测评, 二次办理, 销号, B 类和共性跨年度) and projects from a 票决 in every state and colour.

Each step runs at its own moment on the domain clock through the real services; the reply-limit and
三色 sweeps then run at `now`. Messages to the fictitious people are dropped at the end.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from liaison.case.models import Case
from liaison.core import clock
from liaison.core.clock import utcnow
from liaison.engagement import votes
from liaison.messaging.models import OutboxMessage
from liaison.people import service as people
from liaison.people.models import Account, Department, Deputy, DeputyGrid
from liaison.people.service import Principal
from liaison.project import service as projects
from liaison.project import timers as project_timers
from liaison.suggestion import service as suggestions
from liaison.suggestion import timers as suggestion_timers
from liaison.suggestion.models import Suggestion

# (title, lead deputy, the state it is left in, nature, answer category)
SUGGESTIONS = [
    ("关于幸福里小区路灯改造的建议", "D001", "archived", "individual", "A"),
    ("关于东关街道路积水治理的建议", "D002", "archived_b", "individual", "B"),
    ("关于全县农村饮水安全提升的建议", "D003", "archived_common", "common", "A"),
    ("关于老旧小区加装电梯的建议", "D001", "second_round", "common", "B"),
    ("关于农民工工资支付保障的建议", "D002", "answered", "individual", "B"),
    ("关于校园周边交通安全的建议", "D001", "overdue", "individual", None),
    ("关于河道垃圾整治的建议", "D003", "key", "common", None),
    ("关于社区卫生室值班制度的建议", "D002", "assigned", "individual", None),
    ("关于菜市场计量监管的建议", "D001", "approved", "individual", None),
    ("关于公交站牌维护的建议", "D002", "review_3", "individual", None),
    ("关于小区消防通道管理的建议", "D001", "review_1", "individual", None),
    ("关于广场舞噪音管理的建议", "D003", "sent_back", "individual", None),
    ("关于个别商户纠纷的建议", "D002", "rejected", "individual", None),
    ("关于幼儿园收费公示的建议", "D001", "draft", "individual", None),
]
LEADS = {"D001": "zhujian", "D002": "renshe", "D003": "shengtai"}
CO = {"D001": "jiaotong", "D002": "shichang", "D003": "weijian"}


def seed(session: Session, now: datetime | None = None) -> int:
    """Seed the demo's suggestions and projects (unless there are suggestions already)."""
    if session.scalar(select(Suggestion.id).limit(1)) is not None:
        return 0
    if session.scalar(select(Deputy.id).limit(1)) is None:
        return 0
    now = now or utcnow()
    first_outbox = session.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))
    staff = _principal(session, people.STAFF, "县人大代表工委（建议办）")
    deputies = {d.code: _principal(session, people.DEPUTY, d.name, deputy_id=d.id)
                for d in session.scalars(select(Deputy))}
    departments = {d.code: _principal(session, people.DEPARTMENT, d.name, department_id=d.id)
                   for d in session.scalars(select(Department))}
    try:
        for index, (title, deputy_code, state, nature, category) in enumerate(SUGGESTIONS):
            # Spread over the past year (the 跨年度 ones start before this year).
            start = now - timedelta(days=400 - index * 24)
            _suggestion(session, staff, deputies, departments, start, now, title, deputy_code, state,
                        nature, category)
        _projects(session, staff, deputies, departments, now)
    finally:
        clock.set_clock(None)
    suggestion_timers.run_due(session, now=now)
    project_timers.run_due(session, now=now)
    session.execute(delete(OutboxMessage).where(OutboxMessage.id > first_outbox))
    session.flush()
    return session.scalar(select(func.count()).select_from(Suggestion)) or 0


def _principal(session: Session, role: str, name: str, **links) -> Principal:
    account = Account(role=role, name=name, **links)
    session.add(account)
    session.flush()
    return Principal(role, account=account)


def _at(moment: datetime) -> None:
    clock.set_clock(lambda: moment)


def _cases_of(session: Session, deputy_id: int, start: datetime, limit: int) -> list[str]:
    grids = select(DeputyGrid.grid_id).where(DeputyGrid.deputy_id == deputy_id)
    return list(session.scalars(select(Case.number).where(Case.grid_id.in_(grids), Case.created_at < start)
                                .order_by(Case.id.desc()).limit(limit)))


def _suggestion(session, staff, deputies, departments, start, now, title, deputy_code, state, nature,
                category) -> None:
    lead = deputies[deputy_code]
    _at(start)
    cosigner = "D002" if deputy_code != "D002" else "D001"
    entry = suggestions.create_entry(session, lead, title.replace("关于", "").replace("的建议", ""),
                                     _cases_of(session, lead.account.deputy_id, start, 5))
    suggestion = suggestions.draft(session, lead, title=title, problems=f"群众多次反映：{entry.title}问题突出。",
                                   proposals="建议相关部门统筹研究，制定整改计划并按期落实。", entry=entry,
                                   cosigner_codes=[cosigner])
    if state == "draft":
        return
    step = start + timedelta(days=3)
    _at(step)
    suggestions.submit(session, lead, suggestion)
    if state == "review_1":
        return
    if state in ("sent_back", "rejected"):
        decision = "send_back" if state == "sent_back" else "reject"
        suggestions.review(session, staff, suggestion, decision,
                           "请补充问题的具体地点和涉及人数" if decision == "send_back" else "属于个案纠纷，已转诉求办理")
        return
    for _ in range(2 if state == "review_3" else 3):
        step += timedelta(days=2)
        _at(step)
        suggestions.review(session, staff, suggestion, "pass", "同意")
    if state in ("review_3", "approved"):
        return
    step += timedelta(days=3)
    # When it was assigned: the overdue one over three months ago, never answered; the ones still in
    # hand recently enough to be within their limit.
    step = {"overdue": now - timedelta(days=100), "assigned": now - timedelta(days=30),
            "key": now - timedelta(days=40), "answered": now - timedelta(days=60),
            "second_round": now - timedelta(days=60)}.get(state, step)
    _at(step)
    suggestions.assign(session, staff, suggestion, lead_code=LEADS[deputy_code], co_codes=[CO[deputy_code]],
                       nature=nature, key_supervision=state == "key")
    department = departments[LEADS[deputy_code]]
    if state == "key":
        for kind, note in (("leader", "由常委会副主任领衔督办"), ("task_force", "成立河道整治督办专班"),
                           ("letter", "请于本月底前报送整治方案"), ("interview", "约谈生态环境分局负责人")):
            step += timedelta(days=5)
            _at(step)
            suggestions.supervise(session, staff, suggestion, kind, note)
        return
    if state in ("assigned", "overdue"):
        return
    step += timedelta(days=40)
    _at(step)
    suggestions.answer(session, department, suggestion, category, "经研究，已" +
                       {"A": "完成整改，问题已解决。", "B": "列入年度计划，分步实施。", "C": "留作今后工作参考。"}[category])
    if state == "answered":
        return
    step += timedelta(days=7)
    _at(step)
    if state == "second_round":
        suggestions.rate(session, lead, suggestion, "satisfied")
        suggestions.rate(session, staff, suggestion, "unsatisfied", "进度安排不具体")
        return
    suggestions.rate(session, lead, suggestion, "satisfied")
    suggestions.rate(session, staff, suggestion, "satisfied")


def _projects(session, staff, deputies, departments, now) -> None:
    """Last January's 票决 among five candidates; the chosen ones in every state and colour."""
    voted_at = now - timedelta(days=300)
    _at(voted_at)
    for proposer, title in ((deputies["D001"], "城区老旧小区改造"), (deputies["D003"], "农村饮水安全提升")):
        projects.screen(session, staff, projects.propose(session, proposer, title, None), True, "列为候选")
    candidates = [("P1", "城区老旧小区改造"), ("P2", "农村饮水安全提升"), ("P3", "中小学校园安全提升"),
                  ("P4", "社区养老服务站建设"), ("P5", "城区停车场建设")]
    vote = votes.create(session, staff, "本年度县级民生实事项目票决", "county",
                        [{"code": c, "title": t} for c, t in candidates], max_choices=4)
    for deputy in session.scalars(select(Deputy).where(Deputy.level == "county")):
        principal = next(p for p in deputies.values() if p.account.deputy_id == deputy.id)
        votes.cast(session, principal, vote, ["P1", "P2", "P3", "P4"])
    votes.close(session, staff, vote)
    plans = {  # candidate → lead department, milestone due dates (days from now), state
        "P1": ("zhujian", [-200, -60, 90], "green"),
        "P2": ("shengtai", [-150, 10], "yellow"),
        "P3": ("jiaoyu", [-100, -5], "red"),
        "P4": ("weijian", [-250, -120], "completed"),
    }
    for code, (lead, dues, state) in plans.items():
        _at(voted_at + timedelta(days=10))
        project = projects.create_from_vote(session, staff, vote, code, lead)
        department = departments[lead]
        milestones = [projects.add_milestone(session, department, project, f"第{i + 1}阶段", now + timedelta(days=d))
                      for i, d in enumerate(dues)]
        projects.start(session, department, project)
        for milestone, due in zip(milestones, dues):
            if due < 0 and not (state == "red" and milestone is milestones[-1]):
                _at(now + timedelta(days=due - 3))
                projects.report_progress(session, department, project, milestone.public_id, "按期完成")
        if state == "completed":
            _at(now - timedelta(days=100))
            projects.complete(session, department, project, "项目已建成投用")
            for deputy in deputies.values():
                projects.rate(session, deputy, project, "satisfied")
        session.flush()
