"""The office console over HTTP: sign-in with CSRF, scopes, staff actions through the case services,
the export of exactly the filtered rows, statistics drill-downs."""
from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from liaison.case.models import Case, CaseEvent, Notice
from liaison.core import db
from liaison.people.models import Account
from tests.console_fixtures import csrf_token, make_account, make_case, sign_in


@pytest.fixture
def people_(app):
    return {
        "county": make_account("staff", "县人大工委 王主任", login="county"),
        "station1": make_account("staff", "城关镇联络站 小李", station="S001", login="station1"),
        "station2": make_account("staff", "青山乡 小赵", station="S002", login="station2"),
        "deputy1": make_account("deputy", "张建华", deputy="D001", login="deputy1"),
    }


@pytest.fixture
def client(app):
    return app.test_client()


def _case(public_id: str) -> Case:
    with db.session_scope() as session:
        case = session.scalar(select(Case).where(Case.public_id == public_id))
        session.expunge(case)
        return case


def test_pages_need_a_signed_in_session(client, people_):
    page = client.get("/console/cases")
    assert page.status_code == 302 and "/console/login" in page.headers["Location"]
    assert client.get("/console/cases/count").status_code == 302
    assert client.post("/console/logout").status_code == 400  # no CSRF token
    refused = sign_in(client, "county", "wrong password!")
    assert refused.status_code == 401 and "登录名或密码错误" in refused.text
    assert sign_in(client, "county").status_code == 303
    assert client.get("/console/cases").status_code == 200


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(client, people_):
    public_id, _ = make_case("G001")
    assert client.post("/console/login", data={"login": "county", "password": "x" * 12}).status_code == 400
    sign_in(client, "county")
    before = _case(public_id).status
    answer = client.post(f"/console/cases/{public_id}/reject", data={"reject-reason": "不属于受理范围"})
    assert answer.status_code == 400 and "请求已失效" in answer.text
    assert _case(public_id).status == before


def test_a_station_cannot_reach_another_stations_case(client, people_):
    public_id, number = make_case("G001")  # 城关镇 (S001)
    sign_in(client, "station2")
    assert client.get(f"/console/cases/{public_id}").status_code == 404
    page = client.get(f"/console/cases/{public_id}")
    token = csrf_token(client.get("/console/cases").text)
    answer = client.post(f"/console/cases/{public_id}/reject",
                         data={"csrf_token": token, "reject-reason": "越权"})
    assert answer.status_code == 404 and page.status_code == 404
    assert _case(public_id).status == "assigned"
    assert number not in client.get("/console/cases").text
    assert number not in client.get("/console/cases?station=S001").text
    assert client.get("/console/cases/count").get_json()["total"] == 0  # the count keeps the scope too
    assert client.get("/console/cases/count?station=S001").get_json()["total"] == 0


def test_a_deputy_reads_the_desk_view_but_cannot_act(client, people_):
    public_id, number = make_case("G001")  # 张建华's grid
    sign_in(client, "deputy1")
    page = client.get(f"/console/cases/{public_id}")
    assert page.status_code == 200 and "只能查看" in page.text and 'id="form-reject"' not in page.text
    answer = client.post(f"/console/cases/{public_id}/reject",
                         data={"csrf_token": csrf_token(page.text), "reject-reason": "不属于受理范围"})
    assert answer.status_code == 403 and _case(public_id).status == "assigned"
    assert client.get("/console/accounts").status_code == 403


def _act(client, public_id: str, action: str, **fields):
    page = client.get(f"/console/cases/{public_id}")
    data = {"csrf_token": csrf_token(page.text), **{f"{action}-{k}": v for k, v in fields.items()}}
    return client.post(f"/console/cases/{public_id}/{action}", data=data)


def test_staff_actions_go_through_the_case_services(client, people_):
    sign_in(client, "station1")
    first, first_number = make_case("G001", "幸福里小区3号楼门口的路灯坏了", "o_a")
    second, _ = make_case("G001", "幸福里小区3号楼门口路灯不亮", "o_b")
    third, _ = make_case("G002", "东关小区的井盖丢了", "o_c")

    assert _act(client, first, "reassign", department="zhujian", reason="属住建职责").status_code == 303
    assert _case(first).handler_kind == "department"
    assert _act(client, first, "urge", note="请本周内处理").status_code == 303
    with db.session_scope() as session:
        case_id = _case(first).id
        assert session.scalar(select(Notice).where(Notice.case_id == case_id, Notice.kind == "urge"))
    assert _act(client, second, "merge", into=first_number, reason="同一路灯").status_code == 303
    assert _case(second).status == "merged"
    assert _act(client, third, "reject", reason="").status_code == 422  # the reason is required
    assert _act(client, third, "reject", reason="请向12345热线反映").status_code == 303
    assert _case(third).status == "rejected"
    again = _act(client, third, "merge", into=first_number, reason="同一路灯")
    assert again.status_code == 409 and "不能执行" in again.text  # the lifecycle table refuses
    assert _case(third).status == "rejected"
    timeline = client.get(f"/console/cases/{first}").text
    assert "改派" in timeline and "督办" in timeline and "并入诉求" in timeline
    with db.session_scope() as session:
        actors = set(session.scalars(select(CaseEvent.actor_kind).where(CaseEvent.case_id == case_id)))
    assert "staff" in actors


def test_merging_into_a_case_outside_the_scope_is_refused(client, people_):
    sign_in(client, "station1")
    mine, _ = make_case("G001")
    _other, other_number = make_case("G003", "青山村的路灯坏了")
    assert _act(client, mine, "merge", into=other_number, reason="同一路灯").status_code == 404
    assert _case(mine).status == "assigned"


def shown_count(client, listed) -> dict:
    """The count the ledger page shows: fetched by the page from its `data-count-url`."""
    url = re.search(r'data-count-url="([^"]*)"', listed.text).group(1).replace("&amp;", "&")
    answer = client.get(url)
    assert answer.status_code == 200
    return answer.get_json()


def test_the_ledger_count_comes_apart_from_the_rows_and_follows_the_filters(client, people_):
    """The page answers with its rows and whether a next page follows; the count (capped at
    COUNT_CAP) comes from /console/cases/count with the same filters, and a bad filter is 400."""
    sign_in(client, "county")
    for n in range(3):
        make_case("G001", f"幸福里小区{n}号楼门口的路灯坏了", f"o_c{n}")
    make_case("G003", "青山村的垃圾没人清运", "o_c9")
    assert client.get("/console/cases/count").get_json() == {"total": 4, "capped": False, "pages": 1}
    assert client.get("/console/cases/count?grid=G001").get_json()["total"] == 3
    assert client.get("/console/cases/count?q=垃圾").get_json()["total"] == 1
    bad = client.get("/console/cases/count?grid=G999")
    assert bad.status_code == 400 and "error" in bad.get_json()
    assert client.get("/console/cases?grid=G999").status_code == 400
    listed = client.get("/console/cases?grid=G001")
    assert shown_count(client, listed)["total"] == 3 and 'id="next-page"' not in listed.text


def test_the_ledger_pages_follow_on_while_rows_remain(client, people_, monkeypatch):
    from liaison.console import ledger

    monkeypatch.setattr(ledger, "PAGE_SIZE", 2)
    sign_in(client, "county")
    numbers = [make_case("G001", f"幸福里小区{n}号楼的路灯坏了", f"o_p{n}")[1] for n in range(5)]
    seen = []
    for page in (1, 2, 3):
        listed = client.get(f"/console/cases?page={page}")
        seen += [n for n in numbers if n in listed.text]
        assert ('id="next-page"' in listed.text) == (page < 3)
    assert sorted(seen) == sorted(numbers)
    assert client.get("/console/cases/count").get_json() == {"total": 5, "capped": False, "pages": 3}


def test_the_export_holds_exactly_the_filtered_rows(client, people_):
    sign_in(client, "county")
    make_case("G001", "幸福里小区3号楼门口的路灯坏了", "o_x1")
    make_case("G001", "幸福里小区物业不作为，垃圾清运不及时", "o_x2")
    _, lamp_elsewhere = make_case("G003", "青山村的路灯坏了", "o_x3")
    listed = client.get("/console/cases?q=路灯")
    assert shown_count(client, listed) == {"total": 2, "capped": False, "pages": 1}
    export = client.get("/console/cases/export.xlsx?q=路灯")
    assert export.status_code == 200
    assert export.mimetype.endswith("spreadsheetml.sheet") and "filename*=UTF-8''" in export.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(export.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:5] == ("序号", "编号", "来源", "诉求人", "内容")
    assert len(rows[0]) == 15 and [r[0] for r in rows[1:]] == [1, 2]
    assert all("路灯" in r[4] for r in rows[1:]) and lamp_elsewhere in {r[1] for r in rows[1:]}
    assert all(r[3].startswith("群众（") and "o_x" not in r[3] for r in rows[1:])  # masked
    assert client.get("/console/cases/export.xlsx?since=yesterday").status_code == 400


def test_statistics_drill_down_into_the_ledger(client, people_):
    sign_in(client, "county")
    make_case("G001", "幸福里小区3号楼门口的路灯坏了", "o_s1")
    make_case("G003", "青山村的路灯坏了", "o_s2")
    page = client.get("/console/stats?by=grid")
    assert page.status_code == 200 and "echarts-6.0.0.min.js" in page.text
    links = re.findall(r'class="drill" href="([^"]*figure=received\.numerator[^"]*)"', page.text)
    counts = []
    for link in links:
        listed = client.get(link.replace("&amp;", "&"))
        counts.append(shown_count(client, listed)["total"])
    assert sorted(counts) == [1, 1, 2]  # two grids and the total
    assert client.get("/console/static/echarts-6.0.0.min.js").status_code == 200


def test_signing_out_and_disabling_end_the_session_at_once(app, people_):
    staff, other = app.test_client(), app.test_client()
    sign_in(staff, "county")
    sign_in(other, "station1")
    page = staff.get("/console/accounts")
    assert page.status_code == 200
    station1 = people_["station1"]
    link = staff.post(f"/console/accounts/{station1}/link", data={"csrf_token": csrf_token(page.text)})
    assert "/console/password/" in link.text
    disabled = staff.post(f"/console/accounts/{station1}/disable", data={"csrf_token": csrf_token(page.text)})
    assert disabled.status_code == 303
    assert other.get("/console/cases").status_code == 302  # back to the sign-in page
    with db.session_scope() as session:
        assert not session.scalar(select(Account.active).where(Account.public_id == station1))
    staff.post("/console/logout", data={"csrf_token": csrf_token(staff.get("/console/cases").text)})
    assert staff.get("/console/cases").status_code == 302


def test_a_password_link_works_once(client, app):
    from liaison.console import auth
    from liaison.people import service as people

    with db.session_scope() as session:
        account, _ = people.create_account(session, "staff", "新同事")
        credential, token = auth.issue_password_link(session, account, login="newcomer")
    page = client.get(f"/console/password/{token}")
    assert page.status_code == 200 and "newcomer" in page.text
    data = {"csrf_token": csrf_token(page.text), "password": "my new password", "confirm": "my new password"}
    assert client.post(f"/console/password/{token}", data=data).status_code == 303
    assert client.get(f"/console/password/{token}").status_code == 404
    assert sign_in(client, "newcomer", "my new password").status_code == 303


def test_create_staff_prints_a_working_password_link(client, fake_wechat):
    from tests.test_manage import manage

    result = manage(fake_wechat, "create-staff", "县人大工委 王主任", "--login", "wang")
    assert result.returncode == 0, result.stderr
    path = re.search(r"(/console/password/\S+)", result.stdout).group(1)
    page = client.get(path)
    assert page.status_code == 200 and "wang" in page.text


@pytest.fixture
def limited_app(clean_db, redis_client, fake_wechat, demo_county):
    """The app with low sign-in limits: 3 failures per sign-in name, 5 per address (15 minutes)."""
    from config.settings import load_settings
    from tests.conftest import settings_env
    from webapp import create_app

    application = create_app(load_settings(settings_env(
        fake_wechat.base_url, CONSOLE_SIGN_IN_LIMIT_PER_ACCOUNT="3 per 15 minutes",
        CONSOLE_SIGN_IN_LIMIT_PER_ADDRESS="5 per 15 minutes")), start_background=False)
    application.config["TESTING"] = True
    for role, name, station, login in (("staff", "王主任", None, "county"), ("staff", "小李", "S001", "station1"),
                                       ("staff", "小赵", "S002", "station2")):
        make_account(role, name, station=station, login=login)
    return application


def _from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_sign_in_failures_lock_out_the_name_and_the_address(limited_app):
    guesser = _from(limited_app, "10.0.0.1")
    assert [sign_in(guesser, "county", f"wrong password {i}").status_code for i in range(3)] == [401] * 3
    locked = sign_in(guesser, "county")  # the right password waits out the window too
    assert locked.status_code == 429 and "次数过多" in locked.text
    assert sign_in(_from(limited_app, "10.0.0.2"), "county").status_code == 429  # per name, any address
    assert sign_in(guesser, "station1").status_code == 303  # another name from the same address
    # Per address: many names tried from one address lock the address, not the names elsewhere.
    sprayer = _from(limited_app, "10.0.0.3")
    assert [sign_in(sprayer, f"nobody{i}", "wrong password").status_code for i in range(5)] == [401] * 5
    assert sign_in(sprayer, "station2").status_code == 429
    assert sign_in(_from(limited_app, "10.0.0.4"), "station2").status_code == 303
    # A success counts nothing: signing in again and again is not limited.
    regular = _from(limited_app, "10.0.0.5")
    assert [sign_in(regular, "station1").status_code for _ in range(6)] == [303] * 6
