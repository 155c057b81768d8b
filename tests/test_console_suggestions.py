"""代表建议 pages over HTTP on PostgreSQL: from concentrated cases to a 问题清单 entry, a deputy's draft,
三审, 交办 to a lead and a co-handling department, 重点督办, 个性/共性, answers, the deputy's and the
committee's 双满意 ratings, 二次办理 and 销号; the 台账 with its filters and XLSX; a department
handler's console; and refusals: no CSRF token, a step the status does not allow, another station's,
another deputy's and another department's suggestion, bad input — each changing nothing."""
from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from liaison.core import db
from liaison.suggestion.models import Suggestion, SuggestionEvent, SuggestionRating
from tests.console_fixtures import csrf_token, make_account, make_case, make_department_account, sign_in

LAMP_TEXTS = ["幸福里小区3号楼门口的路灯坏了", "幸福里小区南门的路灯坏了好几天", "幸福里小区5号楼的路灯坏了"]


@pytest.fixture
def users(app):
    made = {
        "county": make_account("staff", "县人大工委 王主任", login="county"),
        "station1": make_account("staff", "城关镇联络站 小李", station="S001", login="station1"),
        "station2": make_account("staff", "青山乡 小赵", station="S002", login="station2"),
        "deputy1": make_account("deputy", "张建华", deputy="D001", login="deputy1"),
        "deputy3": make_account("deputy", "王德明", deputy="D003", login="deputy3"),
    }
    make_department_account("住建局 李科长", "zhujian", login="zhujian")
    make_department_account("交通局 周科长", "jiaotong", login="jiaotong")
    make_department_account("教育局 吴科长", "jiaoyu", login="jiaoyu")
    return made


def client_of(app, login: str):
    client = app.test_client()
    assert sign_in(client, login).status_code == 303
    return client


@pytest.fixture
def lamp_cases(app):
    return [make_case("G001", text, f"o_sugg_console_{i}") for i, text in enumerate(LAMP_TEXTS)]


def post(client, path: str, page_path: str | None = None, **fields):
    page = client.get(page_path or path.rsplit("/", 1)[0])
    data = {"csrf_token": csrf_token(page.get_data(as_text=True))}
    data.update({k.replace("__", "-"): v for k, v in fields.items()})
    return client.post(path, data=data)


def act(client, public_id: str, action: str, **fields):
    return post(client, f"/console/suggestions/{public_id}/{action}", f"/console/suggestions/{public_id}",
                **{f"{action}__{k}": v for k, v in fields.items()})


def state(public_id: str) -> tuple:
    with db.session_scope() as session:
        s = session.scalar(select(Suggestion).where(Suggestion.public_id == public_id))
        events = session.scalar(select(func.count()).select_from(SuggestionEvent)
                                .where(SuggestionEvent.suggestion_id == s.id))
        ratings = session.scalar(select(func.count()).select_from(SuggestionRating)
                                 .where(SuggestionRating.suggestion_id == s.id))
        return s.status, s.review_step, s.round, s.nature, s.answer_category, events, ratings


def drafted(app, lamp_cases) -> str:
    """Deputy 张建华 lists the concentrated lamp cases and drafts a suggestion from them."""
    deputy = client_of(app, "deputy1")
    page = deputy.get("/console/problems")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert all(number in text for _, number in lamp_cases)  # the concentration of 路灯 cases in G001
    made = post(deputy, "/console/problems", "/console/problems", entry__title="幸福里小区路灯长期损坏",
                entry__cases=" ".join(n for _, n in lamp_cases))
    assert made.status_code == 303, made.get_data(as_text=True)[:400]
    entry = made.headers["Location"].rsplit("/", 1)[1]
    entry_page = deputy.get(f"/console/problems/{entry}")
    assert entry_page.status_code == 200 and 'id="form-draft"' in entry_page.get_data(as_text=True)
    done = post(deputy, f"/console/problems/{entry}/draft", f"/console/problems/{entry}",
                draft__title="关于幸福里小区路灯改造的建议", draft__problems="小区路灯老化，多处不亮。",
                draft__proposals="请住建局统一更换路灯。", draft__cosigners="D002")
    assert done.status_code == 303, done.get_data(as_text=True)[:400]
    assert post(deputy, f"/console/problems/{entry}/draft", f"/console/problems/{entry}", draft__title="再起草",
                draft__problems="问题", draft__proposals="建议").status_code == 409  # drafted once
    return done.headers["Location"].rsplit("/", 1)[1]


def test_a_suggestion_from_cases_through_review_assignment_answers_and_double_satisfaction(app, users, lamp_cases):
    public_id = drafted(app, lamp_cases)
    deputy, county, station1 = client_of(app, "deputy1"), client_of(app, "county"), client_of(app, "station1")
    page = deputy.get(f"/console/suggestions/{public_id}").get_data(as_text=True)
    assert "起草中" in page and 'id="form-submit"' in page and 'id="form-review"' not in page
    assert all(number in page for _, number in lamp_cases)
    assert "o_sugg_console" not in page and "3号楼门口" not in page  # linked cases: number and status only
    assert act(deputy, public_id, "submit").status_code == 303

    # 三审: the station's staff pass 联络站初审, then only county staff may decide.
    page = station1.get(f"/console/suggestions/{public_id}").get_data(as_text=True)
    assert "联络站初审" in page and 'id="form-review"' in page and 'id="form-assign"' not in page
    assert act(station1, public_id, "review", decision="pass", note="情况属实").status_code == 303
    before = state(public_id)
    assert before[:2] == ("reviewing", 1)
    assert 'id="form-review"' not in station1.get(f"/console/suggestions/{public_id}").get_data(as_text=True)
    assert act(station1, public_id, "review", decision="pass").status_code == 403
    assert state(public_id) == before
    assert act(county, public_id, "review", decision="send_back").status_code == 409  # needs a reason
    assert state(public_id) == before
    assert act(county, public_id, "review", decision="pass", note="同意").status_code == 303
    assert act(county, public_id, "review", decision="pass", note="主任会议审定").status_code == 303
    assert state(public_id)[0] == "approved"

    # 交办 to 住建 (主办) and 交通 (协办), 重点督办.
    assert act(county, public_id, "assign", lead="nobody", nature="individual").status_code == 422
    assert act(county, public_id, "assign", lead="zhujian", co=["jiaotong"], nature="individual",
               key_supervision="y").status_code == 303
    page = county.get(f"/console/suggestions/{public_id}").get_data(as_text=True)
    assert "办理中" in page and "住房和城乡建设局" in page.split('id="lead-department"')[1][:60]
    assert "交通运输局" in page.split('id="co-departments"')[1][:60] and "重点督办" in page
    assert act(county, public_id, "supervise", kind="letter", note="请月底前拿出方案").status_code == 303
    assert act(county, public_id, "set_nature", nature="common").status_code == 303
    assert "共性" in county.get(f"/console/suggestions/{public_id}").get_data(as_text=True)
    assert act(county, public_id, "answer", category="A", text="工委代答").status_code == 403

    # The lead department answers B in its own console; the co-handler may not; another sees nothing.
    zhujian, jiaotong, jiaoyu = client_of(app, "zhujian"), client_of(app, "jiaotong"), client_of(app, "jiaoyu")
    assert jiaoyu.get(f"/console/suggestions/{public_id}").status_code == 404
    assert 'id="form-answer"' not in jiaotong.get(f"/console/suggestions/{public_id}").get_data(as_text=True)
    assert act(jiaotong, public_id, "answer", category="A", text="协办代答").status_code == 403
    assert act(zhujian, public_id, "answer", category="D", text="无效类别").status_code == 422
    assert act(zhujian, public_id, "answer", category="B", text="已列入老旧小区改造计划").status_code == 303
    assert state(public_id)[0] == "answered"

    # 双满意: the deputy is satisfied, the committee (county staff) is not: 二次办理.
    assert act(deputy, public_id, "rate", value="satisfied").status_code == 303
    assert 'id="form-rate"' not in deputy.get(f"/console/suggestions/{public_id}").get_data(as_text=True)
    assert act(deputy, public_id, "rate", value="unsatisfied").status_code == 409
    assert act(county, public_id, "rate", value="unsatisfied", comment="进度不明确").status_code == 303
    assert (state(public_id)[0], state(public_id)[2]) == ("second_round", 2)
    assert "二次办理" in zhujian.get(f"/console/suggestions/{public_id}").get_data(as_text=True)
    assert act(county, public_id, "extend", months="9", reason="再延").status_code == 422
    assert act(county, public_id, "extend", months="1", reason="需协调资金").status_code == 303
    assert act(zhujian, public_id, "answer", category="B", text="方案已定，6月开工").status_code == 303
    assert act(county, public_id, "rate", value="satisfied").status_code == 303
    assert act(deputy, public_id, "rate", value="basically_satisfied").status_code == 303
    page = county.get(f"/console/suggestions/{public_id}").get_data(as_text=True)
    assert "已销号" in page and "待落实" in page and 'id="form-complete_plan"' in page
    assert "第 2 轮 · 常委会：<b>满意</b>" in page

    # The 台账: on this year's, filtered; B and 共性 stay across years until carried out.
    listed = county.get("/console/suggestions").get_data(as_text=True)
    assert "关于幸福里小区路灯改造的建议" in listed and 'id="fig-total">1<' in listed
    assert "关于幸福里小区路灯改造的建议" in county.get("/console/suggestions?status=archived&nature=common"
                                                        "&department=jiaotong").get_data(as_text=True)
    assert "关于幸福里小区路灯改造的建议" not in county.get("/console/suggestions?status=draft").get_data(as_text=True)
    assert "关于幸福里小区路灯改造的建议" not in county.get("/console/suggestions?department=jiaoyu").get_data(
        as_text=True)
    year = int(listed.split('<option value="')[2][:4])  # the list opens with next year, then this one
    carried = county.get(f"/console/suggestions?year={year + 1}&carried=yes").get_data(as_text=True)
    assert "关于幸福里小区路灯改造的建议" in carried
    xlsx = county.get("/console/suggestions/export.xlsx?status=archived")
    assert xlsx.status_code == 200 and "filename*=UTF-8''" in xlsx.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[1][:3] == ["序号", "编号", "标题"] and rows[2][2] == "关于幸福里小区路灯改造的建议"
    assert rows[2][4] == "李秀英" and rows[2][6] == "县交通运输局" and any(r and r[0] == "双满意率" for r in rows)
    assert act(zhujian, public_id, "complete_plan", note="路灯已全部更换").status_code == 303
    assert "关于幸福里小区路灯改造的建议" not in county.get(f"/console/suggestions?year={year + 1}").get_data(
        as_text=True)


@pytest.mark.parametrize("query", ["?year=abc", "?year=1999", "?status=nonsense", "?nature=both",
                                   "?department=nobody", "?carried=maybe"])
def test_bad_ledger_filters_are_refused(app, users, query):
    county = client_of(app, "county")
    assert county.get("/console/suggestions" + query).status_code == 400
    assert county.get("/console/suggestions/export.xlsx" + query).status_code == 400


def test_refusals_change_nothing(app, users, lamp_cases):
    public_id = drafted(app, lamp_cases)
    deputy, county = client_of(app, "deputy1"), client_of(app, "county")
    station2, deputy3 = client_of(app, "station2"), client_of(app, "deputy3")
    zhujian = client_of(app, "zhujian")
    before = state(public_id)
    # No CSRF token.
    assert deputy.post(f"/console/suggestions/{public_id}/submit").status_code == 400
    assert county.post(f"/console/suggestions/{public_id}/review", data={"review-decision": "pass"}).status_code == 400
    # Steps the status does not allow (a draft is neither reviewed, assigned, answered nor rated).
    for action, fields in (("review", {"decision": "pass"}), ("assign", {"lead": "zhujian", "nature": "individual"}),
                           ("rate", {"value": "satisfied"}), ("set_nature", {"nature": "common"}),
                           ("supervise", {"kind": "letter", "note": "督办"}),
                           ("extend", {"months": "1", "reason": "延期"})):
        assert act(county, public_id, action, **fields).status_code == 409, action
    assert act(deputy, public_id, "rate", value="satisfied").status_code == 409
    assert act(county, public_id, "withdraw").status_code == 403  # only the lead deputy
    # Bad input and unknown actions.
    assert act(county, public_id, "review", decision="maybe").status_code == 422
    assert act(deputy, public_id, "archive").status_code == 404
    # Out of scope: another station's staff, a deputy not behind it, a department before 交办.
    for outsider in (station2, deputy3, zhujian):
        assert outsider.get(f"/console/suggestions/{public_id}").status_code == 404
        assert act(outsider, public_id, "withdraw").status_code == 404
        assert "关于幸福里小区路灯改造的建议" not in outsider.get("/console/suggestions").get_data(as_text=True)
    assert deputy3.get("/console/problems").status_code == 200
    entry_link = deputy.get("/console/problems").get_data(as_text=True)
    entry = entry_link.split('class="entry-link" href="/console/problems/')[1].split('"')[0]
    assert deputy3.get(f"/console/problems/{entry}").status_code == 404
    assert zhujian.get("/console/problems").status_code == 403
    assert county.get("/console/suggestions/nonexistent0000000000000").status_code == 404
    assert state(public_id) == before
    # An empty draft and an unknown case number are refused; an entry needs a case the caller sees.
    assert post(deputy, "/console/problems", "/console/problems", entry__title="", entry__cases="x").status_code == 422
    assert post(deputy, "/console/problems", "/console/problems", entry__title="不存在的诉求",
                entry__cases="2099-999999").status_code == 422
    assert post(deputy3, "/console/problems", "/console/problems", entry__title="别人的诉求",
                entry__cases=lamp_cases[0][1]).status_code == 422
    # Finally the deputy withdraws it: the only thing that changed it.
    assert act(deputy, public_id, "withdraw").status_code == 303
    assert state(public_id)[0] == "withdrawn"
    assert 'id="form-' not in deputy.get(f"/console/suggestions/{public_id}").get_data(as_text=True)


def test_a_department_handler_sees_only_its_desk(app, users):
    zhujian = client_of(app, "zhujian")
    landing = app.test_client()
    signed = sign_in(landing, "zhujian")
    assert signed.headers["Location"].endswith("/console/suggestions")
    page = zhujian.get("/console/suggestions")
    assert page.status_code == 200 and "住房和城乡建设局" in page.get_data(as_text=True)
    assert zhujian.get("/console/cases").status_code == 302  # /console/ leads to its desk
    for path in ("/console/stats", "/console/cases/export.xlsx", "/console/accounts", "/console/bulletins",
                 "/console/rectifications", "/console/interop", "/console/problems"):
        assert zhujian.get(path).status_code == 403, path
    # County staff give department handlers their console password links.
    county = client_of(app, "county")
    assert "住建局 李科长" in county.get("/console/accounts").get_data(as_text=True)


# ---------------------------------------------------------------------------------------------- 民生实事
def _resident_proposal(title: str) -> str:
    from liaison.people.models import Resident
    from liaison.people.service import Principal
    from liaison.project import service as projects

    with db.session_scope() as session:
        resident = Resident(oa_openid=f"o_proposal_{abs(hash(title)) % 10**8}")
        session.add(resident)
        session.flush()
        return projects.propose(session, Principal("resident", resident=resident), title, "小区老人吃饭难").public_id


def _ballots(vote_public_id: str, choose: dict[str, int]) -> int:
    """County deputies vote: `choose` maps a candidate code to how many deputies pick it."""
    from liaison.engagement import votes
    from liaison.people.models import Account, Deputy
    from liaison.people.service import Principal

    with db.session_scope() as session:
        vote = votes.by_public_id(session, vote_public_id)
        deputies = iter(session.scalars(select(Deputy).where(Deputy.level == "county").order_by(Deputy.id)))
        cast = 0
        for code, count in choose.items():
            for _ in range(count):
                deputy = next(deputies)
                account = Account(role="deputy", name=deputy.name, deputy_id=deputy.id)
                session.add(account)
                session.flush()
                votes.cast(session, Principal("deputy", account=account), vote, [code])
                cast += 1
        return cast


def _electorate() -> int:
    from liaison.people.models import Deputy

    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(Deputy).where(Deputy.level == "county"))


def _rate_project(public_id: str, values: list[str]) -> None:
    from liaison.people.models import Resident
    from liaison.people.service import Principal
    from liaison.project import access as project_access
    from liaison.project import service as projects

    with db.session_scope() as session:
        for i, value in enumerate(values):
            resident = Resident(oa_openid=f"o_project_rater_{i}")
            session.add(resident)
            session.flush()
            principal = Principal("resident", resident=resident)
            projects.rate(session, principal, project_access.get(session, principal, public_id), value)


def _proposal_state(public_id: str) -> tuple:
    from liaison.project.models import ProjectProposal

    with db.session_scope() as session:
        row = session.scalar(select(ProjectProposal).where(ProjectProposal.public_id == public_id))
        return row.status, row.candidate_id


def test_livelihood_projects_from_proposals_through_the_vote_to_completion(app, users):
    from datetime import timedelta

    from liaison.engagement.models import ProjectVote

    county, station1, deputy = client_of(app, "county"), client_of(app, "station1"), client_of(app, "deputy1")
    canteen, declined = _resident_proposal("幸福里社区老年食堂"), _resident_proposal("修建高尔夫球场")
    page = county.get("/console/projects").get_data(as_text=True)
    assert "幸福里社区老年食堂" in page and "待筛选" in page and "o_proposal_" not in page
    screen = f"/console/project-proposals/{declined}/screen"
    assert post(county, screen, "/console/projects", screen__decision="decline").status_code == 422  # no reason
    assert post(station1, screen, "/console/projects", screen__decision="accept").status_code == 403
    assert _proposal_state(declined) == ("submitted", None)
    assert post(county, screen, "/console/projects", screen__decision="decline", screen__note="不属于民生实事").status_code == 303
    assert post(county, f"/console/project-proposals/{canteen}/screen", "/console/projects",
                screen__decision="accept").status_code == 303
    assert post(county, f"/console/project-proposals/{canteen}/screen", "/console/projects",
                screen__decision="accept").status_code == 409  # screened once

    # A 票决 among the accepted proposal and one staff add; the proposal links to its candidate.
    opened = post(county, "/console/project-votes", "/console/projects", vote__title="2026年民生实事票决",
                  vote__level="county", vote__proposals=[canteen], vote__others="青山村道路硬化\n",
                  vote__max_choices="1")
    assert opened.status_code == 303, opened.get_data(as_text=True)[:300]
    vote = opened.headers["Location"].rsplit("/", 1)[1]
    assert _proposal_state(canteen)[1] is not None
    assert "2026年民生实事票决 · P1" in county.get("/console/projects").get_data(as_text=True)
    again = post(county, "/console/project-votes", "/console/projects", vote__title="再次票决", vote__level="county",
                 vote__proposals=[canteen], vote__others="其他项目", vote__max_choices="1")
    assert again.status_code == 422  # the proposal is a candidate already: no longer offered
    page = county.get(f"/console/project-votes/{vote}").get_data(as_text=True)
    assert "征集（群众提出）" in page and "工委列入" in page and "未达到" in page
    assert deputy.get(f"/console/project-votes/{vote}").status_code == 403

    # Without a quorum it stays open; with it, P2 below the majority is not chosen.
    electorate = _electorate()
    assert post(county, f"/console/project-votes/{vote}/close", f"/console/project-votes/{vote}").status_code == 409
    with db.session_scope() as session:
        assert session.scalar(select(ProjectVote.status).where(ProjectVote.public_id == vote)) == "open"
    majority = electorate // 2 + 1
    _ballots(vote, {"P1": majority, "P2": electorate - majority})
    assert post(station1, f"/console/project-votes/{vote}/close", f"/console/project-votes/{vote}").status_code == 403
    assert post(county, f"/console/project-votes/{vote}/close", f"/console/project-votes/{vote}").status_code == 303
    page = county.get(f"/console/project-votes/{vote}").get_data(as_text=True)
    assert "已公布结果" in page and "入选" in page and "未入选" in page
    create = f"/console/project-votes/{vote}/projects"
    if electorate - majority > 0:
        assert post(county, create, f"/console/project-votes/{vote}", project__candidate="P2",
                    project__lead="jiaotong").status_code == 409  # not chosen
    made = post(county, create, f"/console/project-votes/{vote}", project__candidate="P1", project__lead="zhujian")
    assert made.status_code == 303
    project = made.headers["Location"].rsplit("/", 1)[1]
    assert post(county, create, f"/console/project-votes/{vote}", project__candidate="P1",
                project__lead="zhujian").status_code == 409

    # Milestones in 三色: due within the warning days is yellow, past due red.
    path, zhujian = f"/console/projects/{project}", client_of(app, "zhujian")
    assert post(county, f"{path}/start", path).status_code == 409  # no milestones yet
    from liaison.core.clock import utcnow
    from liaison.core.workcalendar import CHINA_TZ

    today = utcnow().astimezone(CHINA_TZ).date()
    assert post(county, f"{path}/add_milestone", path, add_milestone__title="选址", add_milestone__due="明天").status_code == 422
    for title, due in (("选址", today + timedelta(days=60)), ("装修", today + timedelta(days=5))):
        assert post(zhujian, f"{path}/add_milestone", path, add_milestone__title=title,
                    add_milestone__due=due.isoformat()).status_code == 303
    page = county.get(path).get_data(as_text=True)
    assert "黄灯" in page and 'class="milestone yellow"' in page and 'class="milestone green"' in page
    assert post(county, f"{path}/add_milestone", path, add_milestone__title="开餐",
                add_milestone__due=(today - timedelta(days=1)).isoformat()).status_code == 303
    assert "红灯（节点逾期未完成）" in county.get(path).get_data(as_text=True)
    assert post(county, f"{path}/start", path).status_code == 303
    assert 'id="form-report_progress"' not in county.get(path).get_data(as_text=True)
    assert post(county, f"{path}/report_progress", path, report_progress__milestone="x").status_code == 422
    page = zhujian.get(path).get_data(as_text=True)
    assert 'id="form-report_progress"' in page
    milestone = page.split('name="report_progress-milestone"')[1].split('value="')[1].split('"')[0]
    assert post(county, f"{path}/report_progress", path, report_progress__milestone=milestone).status_code == 403
    assert post(zhujian, f"{path}/report_progress", path, report_progress__milestone=milestone,
                report_progress__note="已完成").status_code == 303
    assert client_of(app, "jiaotong").get(path).status_code == 404  # not its project
    assert post(zhujian, f"{path}/complete", path, complete__note="已开餐").status_code == 303
    assert post(zhujian, f"{path}/complete", path).status_code == 409
    _rate_project(project, ["satisfied", "basically_satisfied", "unsatisfied", "satisfied"])
    page = county.get(path).get_data(as_text=True)
    assert "已完成" in page and "测评 4 人次" in page and "75.0%" in page
    listed = county.get("/console/projects").get_data(as_text=True)
    assert "幸福里社区老年食堂" in listed and 'id="fig-completed">1<' in listed
    xlsx = county.get("/console/projects/export.xlsx")
    assert xlsx.status_code == 200
    rows = [list(r) for r in load_workbook(io.BytesIO(xlsx.data)).active.iter_rows(values_only=True)]
    assert rows[1][:2] == ["序号", "项目名称"] and rows[2][1] == "幸福里社区老年食堂" and rows[2][-1] == "75.0%"
    assert county.get("/console/projects?year=abc").status_code == 400
    assert county.get("/console/projects/export.xlsx?year=1").status_code == 400
    # No CSRF token, unknown actions and ids.
    assert county.post(f"{path}/add_milestone", data={"add_milestone-title": "x"}).status_code == 400
    assert county.post(f"/console/project-votes/{vote}/close").status_code == 400
    assert post(county, f"{path}/demolish", path).status_code == 404
    assert county.get("/console/projects/nonexistent0000000000000").status_code == 404
    assert county.get("/console/project-votes/nonexistent0000000000000").status_code == 404
