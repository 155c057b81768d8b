"""Staff keyword rules change routing at once, without a restart, and go away when removed."""
from __future__ import annotations

from liaison.case import rules
from liaison.case import service as cases
from liaison.core import db
from liaison.people.models import Resident
from tests.api_fixtures import FlaskHttp, bootstrap_staff

_residents = iter(range(10_000))


def route_of(text: str) -> tuple[str | None, str]:
    with db.session_scope() as session:
        person = Resident(oa_openid=f"o_rule_{next(_residents)}")
        session.add(person)
        session.flush()
        case = cases.open_case(session, person, text)
        return case.category, case.handler_kind


def test_a_rule_added_through_the_api_routes_the_next_message(app, fake_wechat):
    text = "东关街的共享单车乱停乱放"
    before = route_of(text)
    staff = bootstrap_staff(FlaskHttp(app.test_client()), "", fake_wechat, "o_rules_staff")
    added = staff.post("/api/keyword-rules", {"keyword": "共享单车", "category": "交通运输", "weight": 15.0})
    assert added.status_code == 201, added.text
    assert before[0] != "交通运输"  # the learned model alone says otherwise
    assert route_of(text)[0] == "交通运输"
    assert [r["keyword"] for r in staff.get("/api/keyword-rules").json()] == ["共享单车"]
    removed = staff.post(f"/api/keyword-rules/{added.json()['id']}/remove", {})
    assert removed.status_code == 200
    assert route_of(text) == before
    assert staff.post("/api/keyword-rules", {"keyword": "x", "category": "不存在", "weight": 1}).status_code == 422


def test_other_processes_pick_rules_up_after_the_refresh(app, monkeypatch):
    with db.session_scope() as session:
        rules.add_rule(session, "共享单车", "交通运输", 15.0)
    rules.forget()  # as if this were another process that has not seen the rule yet
    monkeypatch.setattr(rules, "REFRESH_SECONDS", 0.0)
    assert route_of("东关街的共享单车乱停乱放")[0] == "交通运输"
