"""Staff keyword rules change routing at once, without a restart, and go away when removed (other
processes: tests/domain/test_rules.py)."""
from __future__ import annotations

from tests.api_fixtures import FlaskHttp, bootstrap_staff
from tests.domain.test_rules import route_of


def test_a_rule_added_through_the_api_routes_the_next_message(app, fake_wechat):
    text = "东关街的共享单车乱停乱放"
    before = route_of(text)
    # a category the learned model alone does not choose (whatever the current table says)
    target = "教育文体" if before[0] != "教育文体" else "卫生计生"
    staff = bootstrap_staff(FlaskHttp(app.test_client()), "", fake_wechat, "o_rules_staff")
    added = staff.post("/api/keyword-rules", {"keyword": "共享单车", "category": target, "weight": 15.0})
    assert added.status_code == 201, added.text
    assert route_of(text)[0] == target
    assert [r["keyword"] for r in staff.get("/api/keyword-rules").json()] == ["共享单车"]
    removed = staff.post(f"/api/keyword-rules/{added.json()['id']}/remove", {})
    assert removed.status_code == 200
    assert route_of(text) == before
    assert staff.post("/api/keyword-rules", {"keyword": "x", "category": "不存在", "weight": 1}).status_code == 422
