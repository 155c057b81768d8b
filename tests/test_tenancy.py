"""Counties as tenants, isolation enforced twice.

Two counties on one database: A (the default county, the demo registry) and B (the same demo registry
under the same codes, plus codes only B has). Every API route is called by every kind of county-A user
with county B's ids: each answers 403 (role) or 404 and nothing of B changes; lists name nothing of B.
Then the same sweep with the domain's criteria switched off, the app connected as a role that is bound
by row-level security: PostgreSQL alone still hides B. Workers act per county.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text

from liaison import demo
from liaison.case import service as cases
from liaison.case.models import Case, CaseEvent, Notice
from liaison.core import clock, db, tenant
from liaison.messaging import outbox
from liaison.messaging.models import DeliveryAttempt, OutboxMessage
from liaison.people.models import Deputy, Enterprise, Grid, Resident, Station
from liaison.schema import metadata
from liaison.tenancy import service as tenancy
from tests import suggestion_fixtures
from tests import test_api_authz as authz
from tests.api_fixtures import ApiUser, FlaskHttp, bind_with_code, make_account
from tests.conftest import TEST_DATABASE_URL, rls_bound_engine, settings_env

A = tenant.DEFAULT_COUNTY_ID
TENANT_TABLES = [t.name for t in metadata.sorted_tables if "county_id" in t.c]


def _login(http, fake_wechat, openid, county=None) -> ApiUser:
    code = f"code-{uuid.uuid4().hex}"
    fake_wechat.register_code(code, openid, session_key="sk-" + uuid.uuid4().hex)
    body = {"code": code} | ({"county": county} if county else {})
    response = http.post("/api/login", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    return ApiUser("", data["token"], data["me"]["role"], http)


def _staff_of(county_id, http, fake_wechat, openid) -> ApiUser:
    from liaison.people import service as accounts

    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        _account, code = accounts.create_first_staff(session, "工委 主任")
    return bind_with_code(http, "", fake_wechat, openid, code)


@pytest.fixture
def settings(clean_db, redis_client, fake_wechat, tmp_path):
    """The test settings, with media kept in the test's own folder (county B's photo is stored)."""
    from config.settings import load_settings

    return load_settings(settings_env(fake_wechat.base_url, MEDIA_LOCAL_DIR=str(tmp_path / "media")))


@pytest.fixture
def county_b(app):
    """County B with the demo registry under the demo's codes, and a station, grid and deputy only B has."""
    with tenant.use(tenant.all_counties("add a county")), db.session_scope() as session:
        b = tenancy.add_county(session, "yixian", "乙县").id
    with tenant.use(tenant.county(b)), db.session_scope() as session:
        assert demo.seed_demo(session)
        station = Station(code="SB01", name="乙县专属联络站")
        session.add(station)
        grid = Grid(code="GB01", name="乙县专属网格", aliases=[], station=station)
        session.add_all([grid, Deputy(code="DB01", name="乙县代表", level="county", station=station)])
        enterprise_grid = session.scalar(select(Grid).where(Grid.code == "G004"))
        session.add(Enterprise(code="EB01", name="乙县专属企业", grid=enterprise_grid, contact_name="乙县联系人"))
    return b


@pytest.fixture
def two_counties(app, fake_wechat, county_b):
    """County A's users of every kind, and county B's ids of every kind of object."""
    http = FlaskHttp(app.test_client())
    a_staff = _staff_of(A, http, fake_wechat, "o_a_staff")
    users = {
        authz.COUNTY_STAFF: a_staff,
        authz.STATION_STAFF: make_account(a_staff, fake_wechat, "o_a_station", role="staff", name="站",
                                          station_code="S002"),
        authz.DEPUTY: make_account(a_staff, fake_wechat, "o_a_deputy", role="deputy", name="代表",
                                   deputy_code="D001"),
        authz.DEPARTMENT: make_account(a_staff, fake_wechat, "o_a_dept", role="department", name="住建",
                                       department_code="zhujian"),
        authz.RESIDENT: _login(http, fake_wechat, "o_a_resident"),
    }
    assert users[authz.RESIDENT].post("/api/cases", {"text": "幸福里小区3号楼门口的路灯坏了"}).status_code == 201
    b_staff = _staff_of(county_b, http, fake_wechat, "o_b_staff")
    b_deputy = make_account(b_staff, fake_wechat, "o_b_deputy", role="deputy", name="乙代表", deputy_code="D001")
    b_dept = make_account(b_staff, fake_wechat, "o_b_dept", role="department", name="乙住建",
                          department_code="zhujian")
    b_resident = _login(http, fake_wechat, "o_b_resident", county="yixian")
    b_case = b_resident.post("/api/cases", {"text": "幸福里小区楼道的路灯坏了"}).json()
    assert b_deputy.post(f"/api/cases/{b_case['id']}/dispatch", {"department_code": "zhujian"}).status_code == 200
    extension = b_dept.post(f"/api/cases/{b_case['id']}/extension-requests",
                            {"working_days": 3, "reason": "需采购灯具"}).json()
    rule = b_staff.post("/api/keyword-rules", {"keyword": "乙县路灯", "category": "城乡建设", "weight": 1.0}).json()
    broadcast = b_staff.post("/api/broadcasts", {"title": "乙县停水", "text": "明日停水"}).json()
    survey = b_staff.post("/api/surveys", {"kind": "report", "deputy_code": "DB01"}).json()
    vote = b_staff.post("/api/project-votes", {
        "title": "乙县民生实事", "level": "county",
        "candidates": [{"code": "P1", "title": "甲"}, {"code": "P2", "title": "乙"}]}).json()
    b_account = b_staff.get("/api/accounts").json()["items"][-1]["id"]
    b_suggestions = suggestion_fixtures.foreign_objects(county_b)
    partner = b_staff.post("/api/open311/partners", {"name": "乙县12345"}).json()
    b_shift, b_swap = _b_shift_and_swap(county_b)
    ids = {"suggestion": b_suggestions["suggestion_d001"], "problem_entry": b_suggestions["entry_county"],
           "project": b_suggestions["project_jiaotong"], "project_proposal": b_suggestions["proposal"],
           "case": b_case["id"], "extension": extension["id"], "keyword_rule": rule["id"],
           "broadcast": broadcast["id"], "survey": survey["id"], "project_vote": vote["id"],
           "account": b_account, "grid": "GB01", "deputy": "DB01", "station": "SB01",
           "partner": partner["id"], "shift": b_shift, "swap": b_swap, "activity": _b_activity(county_b),
           "duty_rule": _b_rule(county_b),
           "enterprise": "EB01", "media": _b_media(county_b, b_case["id"]),
           **_b_appraisal(county_b), **_b_bulletin(county_b)}
    assert all(ids.values()), ids
    # B's hand-off target is addressed by its serial id: kept out of `b_ids`, whose values the API
    # sweep looks for in every answer (a small number would be found everywhere).
    return {"http": http, "users": users, "b": county_b, "b_ids": ids, "b_case": b_case,
            "b_target": _b_handoff_target(county_b)}


def _b_shift_and_swap(b: int) -> tuple[str, str]:
    """A county-B duty shift (D001 and D002 on duty) and a swap asked for on it."""
    from liaison.rota.models import DutyShift, ShiftAssignment, ShiftSwap

    with tenant.use(tenant.county(b)), db.session_scope() as session:
        deputies = dict(session.execute(select(Deputy.code, Deputy.id)).all())
        station = session.scalar(select(Station).where(Station.code == "S001"))
        day = clock.utcnow().date() + timedelta(days=2)
        shift = DutyShift(station_id=station.id, kind="reception", title="代表周三见", day=day, planned_for=day,
                          starts_at=clock.utcnow() + timedelta(days=2), status="planned",
                          ends_at=clock.utcnow() + timedelta(days=2, hours=3))
        session.add(shift)
        session.flush()
        assignment = ShiftAssignment(shift_id=shift.id, deputy_id=deputies["D001"], status="on_duty")
        session.add(assignment)
        session.flush()
        swap = ShiftSwap(assignment_id=assignment.id, substitute_deputy_id=deputies["DB01"], reason="乙县换班外出",
                         status="requested")
        session.add(swap)
        session.flush()
        return shift.public_id, swap.public_id


def _b_rule(b: int) -> str:
    """A county-B duty rule at its own station (its title only B has)."""
    from liaison.rota.models import DutyRule

    with tenant.use(tenant.county(b)), db.session_scope() as session:
        station = session.scalar(select(Station).where(Station.code == "SB01"))
        deputy = session.scalar(select(Deputy.id).where(Deputy.code == "DB01"))
        rule = DutyRule(station_id=station.id, kind="reception", title="乙县专属值班", weekday=2, slots=1,
                        deputy_ids=[deputy], account_ids=[], valid_from=clock.utcnow().date(), active=True)
        session.add(rule)
        session.flush()
        return rule.public_id


def _b_media(b: int, case_public_id: str) -> str:
    """A stored photo of county B's case (the console's media route addresses it by its id)."""
    from liaison.media import storage as media_storage
    from liaison.media.models import STORED, MediaFile

    with tenant.use(tenant.county(b)), db.session_scope() as session:
        case = session.scalar(select(Case).where(Case.public_id == case_public_id))
        row = MediaFile(case_id=case.id, resident_id=case.resident_id, kind="image", wechat_media_id="m_b",
                        state=STORED, attempts=1, content_type="image/png", size=4)
        session.add(row)
        session.flush()
        row.storage_key = f"{b}/{case.id}/{row.public_id}.png"
        media_storage.current().put(row.storage_key, b"\x89PNG", "image/png")  # a leak would serve it
        return row.public_id


def _b_handoff_target(b: int) -> str:
    """County B's 直通车 target (the console's 对接 page addresses it by its id)."""
    from liaison.interop import service as interop

    with tenant.use(tenant.county(b)), db.session_scope() as session:
        return str(interop.set_target(session, "乙县专属12345", "https://b.example/open311/v2", "b-key").id)


def _b_activity(b: int) -> str:
    """A county-B deputy's offline activity waiting for review under B's standard."""
    from datetime import date

    from liaison.points import service as points
    from liaison.points.models import ActivityReport

    with tenant.use(tenant.county(b)), db.session_scope() as session:
        standard = points.publish_standard(session, None, date.today().year, title="乙县积分标准",
                                           items=points.DEFAULT_ITEMS)
        report = ActivityReport(deputy_id=session.scalar(select(Deputy.id).where(Deputy.code == "DB01")),
                                standard_id=standard.id, year=standard.year, item_code="meeting", title="乙县会议",
                                happened_on=date.today(), evidence="列席", chain=standard.review_chain,
                                status="pending")
        session.add(report)
        session.flush()
        return report.public_id


def _b_bulletin(b: int) -> dict[str, str]:
    """A county-B 通报 and a 整改 item it ordered."""
    from liaison.bulletin import service as bulletins
    from liaison.bulletin.models import Rectification as BulletinRectification
    from liaison.case import access
    from liaison.people.models import Account
    from liaison.people.service import Principal

    with tenant.use(tenant.county(b)), db.session_scope() as session:
        staff = session.scalar(select(Account).where(Account.role == "staff", Account.station_id.is_(None))
                               .order_by(Account.id))
        scope = access.scope_of(session, Principal("staff", account=staff))
        bulletin = bulletins.generate(session, scope, "2026-11")
        bulletin.title = "乙县专属通报"
        station = session.scalar(select(Station).where(Station.code == "SB01"))
        item = BulletinRectification(bulletin_id=bulletin.id, unit_kind="station", unit_id=station.id,
                                     unit_label="乙县专属联络站", figure="satisfaction_rate", value=0.5,
                                     threshold=0.9, deadline=clock.utcnow() + timedelta(days=10),
                                     status="open", history=[])
        session.add(item)
        session.flush()
        return {"bulletin": bulletin.public_id, "bulletin_rectification": item.public_id}


def _b_appraisal(b: int) -> dict[str, str]:
    """A county-B deputy's 述职测评 and a 整改 item on it."""
    from liaison.appraisal import service as appraisal
    from liaison.appraisal.models import Rectification
    from liaison.people.models import Account
    from liaison.people.service import Principal

    with tenant.use(tenant.county(b)), db.session_scope() as session:
        staff = session.scalar(select(Account).where(Account.role == "staff").order_by(Account.id))
        row = appraisal.schedule(session, Principal("staff", account=staff), "DB01", 2026, 1)
        fix = Rectification(appraisal_id=row.id, deputy_id=row.deputy_id, deadline=clock.utcnow(), status="open")
        session.add(fix)
        session.flush()
        return {"appraisal": row.public_id, "rectification": fix.public_id}


def _b_state(b: int) -> dict[str, str]:
    """A digest of every county-B row of every county-owned table (read as the owner: no RLS)."""
    engine = create_engine(TEST_DATABASE_URL)
    with engine.connect() as conn:
        state = {table: conn.execute(text(
            f"SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
            f"FROM {table} x WHERE county_id = :b"), {"b": b}).scalar() for table in TENANT_TABLES}
    engine.dispose()
    return state


def _sweep(world) -> list:
    """Every route, every county-A user, county B's ids: the failures (empty when isolated)."""
    users, b_ids = world["users"], world["b_ids"]
    secret = set(b_ids.values()) - {"GB01", "DB01", "SB01"} | {"乙县专属", "乙县代表", "乙县停水", "乙县路灯",
                                                               "乙县民生实事", world["b_case"]["number"]}
    failures = []
    for (method, path), (allowed, kind, body_factory) in sorted(authz.SWEEP.items()):
        if allowed == "public":
            continue
        for role, user in users.items():
            if kind:
                target = path.replace("{public_id}", b_ids[kind])
            elif method == "GET":
                target = path
            else:
                continue  # id-less writes act in the caller's own county (checked by the B digest)
            response = authz._call(user, method, target, body_factory() if body_factory else None)
            if role not in allowed:
                ok = response.status_code == 403
            elif kind:
                ok = response.status_code == 404
            else:
                body = response.text
                ok = response.status_code < 300 and not any(s in body for s in secret)
            if not ok:
                failures.append((method, target, role, response.status_code, response.text[:160]))
    return failures


def test_county_a_finds_nothing_of_county_b(two_counties):
    before = _b_state(two_counties["b"])
    assert _sweep(two_counties) == []
    assert _b_state(two_counties["b"]) == before


@pytest.fixture
def app_role_engine(two_counties):
    """The domain engine connected as a role bound by row-level security (not owner, not superuser)."""
    with rls_bound_engine() as engine:
        yield engine


def test_row_level_security_alone_finds_nothing_of_county_b(two_counties, app_role_engine):
    before = _b_state(two_counties["b"])
    with tenant.without_domain_criteria():
        assert _sweep(two_counties) == []
        with tenant.use(tenant.county(A)), db.session_scope() as session:
            assert session.scalar(select(func.count()).select_from(Case)) == 1  # A's own case only
            assert session.scalar(select(func.count()).select_from(Grid).where(Grid.code == "GB01")) == 0
    assert _b_state(two_counties["b"]) == before


def test_the_domain_criteria_alone_hide_county_b(two_counties):
    """As the owner (RLS does not bind it) only the domain's criteria isolate; switched off, B shows."""
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 1
        assert session.scalar(select(Grid.id).where(Grid.code == "GB01")) is None
    with tenant.without_domain_criteria(), tenant.use(tenant.county(A)), db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 2
    with tenant.without_domain_criteria():
        assert _sweep(two_counties) != []  # the sweep does notice a leak (so its empty answers count)


def test_rows_take_their_county_and_writes_without_one_are_refused(two_counties):
    b = two_counties["b"]
    with tenant.use(tenant.county(b)), db.session_scope() as session:
        person = Resident(oa_openid="o_b_chat")
        session.add(person)
        session.flush()
        case = cases.open_case(session, person, "幸福里小区的井盖丢了")
        assert (person.county_id, case.county_id) == (b, b)
        assert case.grid.county_id == b and case.deputy.county_id == b  # routed by B's own registry
        events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)).all()
        assert events and {e.county_id for e in events} == {b}
    with pytest.raises(tenant.TenantScopeError):
        with tenant.use(tenant.all_counties("a sweep")), db.session_scope() as session:
            session.add(Resident(oa_openid="o_nowhere"))
    tenant.set_fallback(None)
    try:
        with pytest.raises(tenant.TenantScopeError):
            with db.session_scope() as session:
                session.add(Resident(oa_openid="o_unscoped"))
    finally:
        tenant.set_fallback(tenant.DEFAULT)


def test_workers_act_in_each_rows_county(two_counties, fake_wechat):
    from jobs import tasks
    from liaison import runtime

    b = two_counties["b"]
    with tenant.use(tenant.county(b)), db.session_scope() as session:
        wrote = clock.utcnow()
        person = Resident(oa_openid="o_b_outbox", last_message_at=wrote, window_kind="message",
                          window_opened_at=wrote, window_used=0)
        session.add(person)
        session.flush()
        outbox_id = outbox.add(session, "resident_text", "tenancy:b", {"text": "您的诉求已办结"},
                               resident_id=person.id).id
    runtime.current()
    assert tasks.deliver_outbox(outbox_id) == "sent"  # called from the default county's context
    with tenant.use(tenant.county(b)), db.session_scope() as session:
        assert session.get(OutboxMessage, outbox_id).status == "sent"
        assert {a.county_id for a in session.scalars(select(DeliveryAttempt))} == {b}
    # The sweep fires in both counties; each overdue notice stays in its case's county.
    later = clock.utcnow() + timedelta(days=20)
    clock.set_clock(lambda: later)
    try:
        assert tasks.run_timers() >= 2
    finally:
        clock.set_clock(None)
    with tenant.use(tenant.all_counties("check")), db.session_scope() as session:
        rows = session.execute(select(Notice.county_id, Case.county_id).join(Case, Notice.case_id == Case.id)).all()
        assert {case_county for _n, case_county in rows} == {A, b}
        assert all(notice_county == case_county for notice_county, case_county in rows)


def test_add_a_county_from_the_command_line(settings, fake_wechat):
    from tests.test_manage import manage

    added = manage(fake_wechat, "county", "add", "bingxian", "丙县", "--wechat-app-id", "wx_bing")
    assert added.returncode == 0, added.stderr
    staff = manage(fake_wechat, "create-staff", "丙县工委", "--county", "bingxian")
    assert staff.returncode == 0, staff.stderr
    listed = manage(fake_wechat, "county", "list")
    assert "bingxian" in listed.stdout and "wx_bing" in listed.stdout
    with tenant.use(tenant.all_counties("check")), db.session_scope() as session:
        county = tenancy.by_code(session, "bingxian")
        from liaison.people.models import Account

        assert session.scalar(select(Account.county_id).where(Account.name == "丙县工委")) == county.id


# ---------------------------------------------------------------------------------------------- console
# Every console route: (method, rule) → the kind of county-B id in it (None: a page with no id).
# The sign-in pages and the password link (a one-time secret, not a county's id) need no session.
CONSOLE_SWEEP = {
    ("GET", "/console/static/<path:filename>"): "public",
    ("GET", "/console/login"): "public",
    ("POST", "/console/login"): "public",
    ("POST", "/console/logout"): "public",
    ("GET", "/console/password/<token>"): "public",
    ("POST", "/console/password/<token>"): "public",
    ("GET", "/console/"): None,
    ("GET", "/console/cases"): None,
    ("GET", "/console/cases/count"): None,
    ("GET", "/console/cases/export.xlsx"): None,
    ("GET", "/console/cases/<public_id>"): "case",
    ("POST", "/console/cases/<public_id>/<action>"): "case",
    ("GET", "/console/cases/<public_id>/media/<media_id>"): "case",  # with county B's photo of it
    ("GET", "/console/stats"): None,
    ("GET", "/console/accounts"): None,
    ("POST", "/console/accounts/<public_id>/link"): "account",
    ("POST", "/console/accounts/<public_id>/disable"): "account",
    # 通报 and 整改 (issue 16). Generating one names no id: it writes in the caller's own county
    # (tests/test_console_bulletins.py); the sweep reads the lists and tries county B's ids.
    ("GET", "/console/bulletins"): None,
    ("POST", "/console/bulletins"): "create",
    ("GET", "/console/bulletins/<public_id>"): "bulletin",
    ("POST", "/console/bulletins/<public_id>/publish"): "bulletin",
    ("GET", "/console/bulletins/<public_id>/download.xlsx"): "bulletin",
    ("GET", "/console/bulletins/<public_id>/download.pdf"): "bulletin",
    ("GET", "/console/rectifications"): None,
    ("GET", "/console/rectifications/<public_id>"): "bulletin_rectification",
    ("POST", "/console/rectifications/<public_id>/<action>"): "bulletin_rectification",
    ("GET", "/console/interop"): None,
    ("POST", "/console/interop/partners"): "create",
    ("POST", "/console/interop/partners/<public_id>/revoke"): "partner",
    ("POST", "/console/interop/targets"): "create",
    ("POST", "/console/interop/targets/<int:target_id>/rotate"): "handoff_target",
    ("POST", "/console/interop/targets/<int:target_id>/remove"): "handoff_target",
    # The duty rota and 履职积分 (issue 17; tests/test_console_duty.py). Adding a rule or a one-off
    # shift names a station of the caller's own county, checked there.
    ("GET", "/console/rota"): None,
    ("POST", "/console/rota/shifts"): "create",
    ("GET", "/console/rota/shifts/<public_id>"): "shift",
    ("POST", "/console/rota/shifts/<public_id>/cancel"): "shift",
    ("GET", "/console/rota/rules"): None,
    ("POST", "/console/rota/rules"): "create",
    ("GET", "/console/rota/rules/<public_id>"): "duty_rule",
    ("POST", "/console/rota/rules/<public_id>"): "duty_rule",
    ("GET", "/console/rota/swaps"): None,
    ("POST", "/console/rota/swaps/<public_id>/approve"): "swap",
    ("POST", "/console/rota/swaps/<public_id>/reject"): "swap",
    ("GET", "/console/rota/attendance"): None,
    ("GET", "/console/points"): None,
    ("GET", "/console/points/export.xlsx"): None,
    ("GET", "/console/points/standard"): None,
    ("GET", "/console/points/deputies/<deputy_code>"): "deputy",
    ("POST", "/console/points/deputies/<deputy_code>/adjust"): "deputy",
    ("GET", "/console/points/activities"): None,
    ("GET", "/console/points/activities/<public_id>"): "activity",
    ("POST", "/console/points/activities/<public_id>/approve"): "activity",
    ("POST", "/console/points/activities/<public_id>/reject"): "activity",
    # City staff's 县（区） page (tests/test_console_counties.py): county users get 403.
    ("GET", "/console/counties"): None,
    ("POST", "/console/counties"): "create",
    # 代表建议 (issue 19): the 台账 and its export, a suggestion and its actions, the 问题清单.
    ("GET", "/console/suggestions"): None,
    ("GET", "/console/suggestions/export.xlsx"): None,
    ("GET", "/console/suggestions/<public_id>"): "suggestion",
    ("POST", "/console/suggestions/<public_id>/<action>"): "suggestion",
    ("GET", "/console/problems"): None,
    ("POST", "/console/problems"): "create",
    ("GET", "/console/problems/<public_id>"): "problem_entry",
    ("POST", "/console/problems/<public_id>/draft"): "problem_entry",
    # 民生实事: the 台账 and its export, 征集 screening, 票决, a project and its actions.
    ("GET", "/console/projects"): None,
    ("GET", "/console/projects/export.xlsx"): None,
    ("GET", "/console/projects/<public_id>"): "project",
    ("POST", "/console/projects/<public_id>/<action>"): "project",
    ("POST", "/console/project-proposals/<public_id>/screen"): "project_proposal",
    ("POST", "/console/project-votes"): "create",
    ("GET", "/console/project-votes/<public_id>"): "project_vote",
    ("POST", "/console/project-votes/<public_id>/close"): "project_vote",
    ("POST", "/console/project-votes/<public_id>/projects"): "project_vote",
}
CONSOLE_ACTIONS = {"reassign": {"reassign-department": "zhujian", "reassign-reason": "改派"},
                   "urge": {"urge-note": "请加快"}, "reject": {"reject-reason": "不属于受理范围"},
                   "merge": {"merge-into": "2026-000001", "merge-reason": "同一处"},
                   "hand_up": {"hand_up-reason": "需市级协调"}}
RECTIFICATION_ACTIONS = {"respond": {"respond-response": "已整改"}, "verify": {"verify-note": "属实"},
                         "send_back": {"send_back-note": "不属实"}}
SUGGESTION_ACTIONS = {"submit": {}, "withdraw": {}, "review": {"review-decision": "pass"},
                      "assign": {"assign-lead": "zhujian", "assign-nature": "individual"},
                      "set_nature": {"set_nature-nature": "common"},
                      "supervise": {"supervise-kind": "letter", "supervise-note": "督办"},
                      "extend": {"extend-months": "1", "extend-reason": "延期"},
                      "answer": {"answer-category": "A", "answer-text": "已解决"},
                      "rate": {"rate-value": "satisfied"}, "complete_plan": {"complete_plan-note": "已落实"}}
PROJECT_ACTIONS = {"add_milestone": {"add_milestone-title": "节点", "add_milestone-due": "2026-12-31"},
                   "start": {}, "report_progress": {"report_progress-milestone": "x"}, "complete": {}}
ROUTE_ACTIONS = {"bulletin_rectification": RECTIFICATION_ACTIONS, "suggestion": SUGGESTION_ACTIONS,
                 "project": PROJECT_ACTIONS}
# List pages, also filtered by county B's own codes and searched for its text.
CONSOLE_QUERIES = ("", "?grid=GB01", "?station=SB01", "?deputy=DB01", "?q=乙县", "?q=楼道")


def test_every_console_route_is_in_the_tenancy_sweep(app):
    routes = {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.rule.startswith("/console")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == set(CONSOLE_SWEEP)


@pytest.fixture
def console_users(two_counties):
    """County A's console users: county staff, station staff, a deputy (read-only), a department
    handler (the 代表建议 and 民生实事 desk only)."""
    from tests.console_fixtures import make_account as console_account
    from tests.console_fixtures import make_department_account as console_department
    from tests.console_fixtures import sign_in

    with tenant.use(tenant.county(A)):
        made = {"county": console_account("staff", "甲县工委", login="a_county"),
                "station": console_account("staff", "甲县站", station="S002", login="a_station"),
                "deputy": console_account("deputy", "甲县代表", deputy="D001", login="a_deputy")}
        made["department"] = console_department("甲县住建", "zhujian", login="a_department")
    clients = {}
    for login in made:
        client = two_counties["http"].client.application.test_client()
        assert sign_in(client, f"a_{login}").status_code == 303
        clients[login] = client
    return clients


def _page_text(response) -> str:
    if response.mimetype.endswith("spreadsheetml.sheet"):
        import io

        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(response.data), read_only=True)
        return "\n".join(str(v) for sheet in book for row in sheet.iter_rows(values_only=True) for v in row)
    return response.get_data(as_text=True)


def _console_sweep(world, clients) -> list:
    """Every console route, every county-A console user, county B's ids: the failures."""
    from tests.console_fixtures import csrf_token

    b_ids, b_case = {**world["b_ids"], "handoff_target": world["b_target"]}, world["b_case"]
    secret = {b_case["number"], b_case["id"], b_ids["account"], b_ids["bulletin"], "乙县专属", "乙县代表",
              "楼道的路灯", "乙县12345", b_ids["shift"], b_ids["swap"], b_ids["activity"], b_ids["duty_rule"],
              "乙县会议", "乙县积分标准", "乙县换班", b_ids["suggestion"], b_ids["problem_entry"], b_ids["project"],
              b_ids["project_proposal"], b_ids["project_vote"], "授权测试项目", "建社区食堂", "乙县民生实事"}
    failures = []
    for (method, rule), kind in sorted(CONSOLE_SWEEP.items()):
        if kind in ("public", "create"):  # "create": writes in the user's own county (its own tests)
            continue
        for login, client in clients.items():
            token = csrf_token(client.get("/console/cases", follow_redirects=True).get_data(as_text=True))
            if kind is None:
                for query in CONSOLE_QUERIES:
                    response = client.get(rule + query, follow_redirects=True)
                    text_ = _page_text(response)
                    leaked = [s for s in secret if s in text_]
                    if response.status_code >= 500 or leaked:
                        failures.append((rule + query, login, response.status_code, leaked))
                continue
            target = (rule.replace("<public_id>", str(b_ids[kind])).replace("<int:target_id>", str(b_ids[kind]))
                      .replace("<deputy_code>", str(b_ids[kind])).replace("<media_id>", b_ids["media"]))
            if "<action>" in target:
                actions = ROUTE_ACTIONS.get(kind, CONSOLE_ACTIONS)
                calls = [(target.replace("<action>", a), body) for a, body in actions.items()]
            elif method == "POST":
                calls = [(target, {})]
            else:
                calls = [(target, None)]
            for path, body in calls:
                if method == "GET":
                    response = client.get(path)
                else:
                    response = client.post(path, data={"csrf_token": token, **body})
                if response.status_code not in (403, 404) or any(s in _page_text(response) for s in secret
                                                                  - {str(b_ids[kind])}):
                    failures.append((method, path, login, response.status_code))
    return failures


def test_console_users_of_county_a_find_nothing_of_county_b(two_counties, console_users):
    before = _b_state(two_counties["b"])
    assert _console_sweep(two_counties, console_users) == []
    assert _b_state(two_counties["b"]) == before


def test_row_level_security_alone_keeps_county_b_out_of_the_console(two_counties, console_users,
                                                                     app_role_engine):
    before = _b_state(two_counties["b"])
    with tenant.without_domain_criteria():
        assert _console_sweep(two_counties, console_users) == []
    assert _b_state(two_counties["b"]) == before


def test_the_console_sweep_notices_a_leak(two_counties, console_users):
    """As the owner with the domain's criteria off nothing isolates: the sweep must see B."""
    with tenant.without_domain_criteria():
        assert _console_sweep(two_counties, console_users) != []


def test_county_b_staff_work_in_county_b_in_the_console(two_counties):
    from tests.console_fixtures import make_account as console_account
    from tests.console_fixtures import sign_in

    with tenant.use(tenant.county(two_counties["b"])):
        console_account("staff", "乙县工委", login="b_county")
    client = two_counties["http"].client.application.test_client()
    assert sign_in(client, "b_county").status_code == 303
    ledger = client.get("/console/cases").get_data(as_text=True)
    assert two_counties["b_case"]["number"] in ledger
    case = client.get(f"/console/cases/{two_counties['b_case']['id']}")
    assert case.status_code == 200 and "楼道的路灯" in case.get_data(as_text=True)
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        a_case = session.scalar(select(Case))
    assert client.get(f"/console/cases/{a_case.public_id}").status_code == 404
    assert a_case.number not in ledger
