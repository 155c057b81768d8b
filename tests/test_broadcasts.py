"""Broadcast notices: content check, scopes, channels (subscription credit, customer-service window,
mass send within 4 a month, always the mini-program), cancel, and a 10,000-resident broadcast with a
worker killed in the middle: every resident is reached exactly once."""
from __future__ import annotations

import collections
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from liaison.core import db
from liaison.core.clock import utcnow
from liaison.engagement import broadcasts
from liaison.engagement.models import Broadcast, BroadcastRecipient, MassQuota
from liaison.people.models import Grid, NotificationConsent, Resident
from tests.api_fixtures import FlaskHttp, bootstrap_staff, make_account, resident
from tests.conftest import WorkerProcess, settings_env, wait_for

TEMPLATE = "broadcast_notice"
FAST = {"BROADCAST_RATE_CUSTOM_PER_MIN": "600000", "BROADCAST_RATE_SUBSCRIBE_PER_MIN": "600000",
        "BROADCAST_RATE_MASS_PER_MIN": "6000", "BROADCAST_CHUNK_SIZE": "500"}


@pytest.fixture
def fast_rates(monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    return FAST


@pytest.fixture
def people(app, fake_wechat, fast_rates):
    http = FlaskHttp(app.test_client())
    staff = bootstrap_staff(http, "", fake_wechat, "o_bc_staff")
    return {
        "http": http, "staff": staff,
        "deputy": make_account(staff, fake_wechat, "o_bc_deputy", role="deputy", name="张建华", deputy_code="D001"),
        "station": make_account(staff, fake_wechat, "o_bc_station", role="staff", name="青山站",
                                station_code="S002"),
    }


def seed_residents(n: int, grid_code: str = "G001", prefix: str = "o_bc_") -> dict[str, str]:
    """n residents of the grid, a quarter per channel: subscription credit, open window, mass quota
    left, mass quota used up (mini-program only). Returns openid → expected channel."""
    now = utcnow()
    month = broadcasts.month_of(now)
    expected = {}
    with db.session_scope() as session:
        grid_id = session.scalar(select(Grid.id).where(Grid.code == grid_code))
        rows = []
        for i in range(n):
            openid = f"{prefix}{i:06d}"
            kind = ("subscribe", "custom", "mass", "miniprogram")[i % 4]
            expected[openid] = kind
            custom = kind == "custom"
            rows.append({"oa_openid": openid, "grid_id": grid_id, "subscribed": True, "created_at": now,
                         "last_message_at": now if custom else None, "window_kind": "message" if custom else None,
                         "window_opened_at": now if custom else None, "window_used": 0})
        session.execute(insert(Resident), rows)
        ids = dict(session.execute(select(Resident.oa_openid, Resident.id).where(
            Resident.oa_openid.like(prefix + "%"))).all())
        session.execute(insert(NotificationConsent), [
            {"resident_id": ids[o], "template_id": TEMPLATE, "last_result": "accept", "credits": 1,
             "accepted_total": 1, "updated_at": now} for o, k in expected.items() if k == "subscribe"])
        session.execute(insert(MassQuota), [
            {"resident_id": ids[o], "month": month, "count": 4} for o, k in expected.items() if k == "miniprogram"])
    return expected


def wechat_deliveries(fake) -> collections.Counter:
    """How many messages each openid received through any WeChat channel."""
    received: collections.Counter = collections.Counter()
    for message in fake.sent_messages():
        if message["kind"] in ("custom", "bizsend"):
            received[message["touser"]] += 1
        elif message["kind"] == "mass_openids":
            received.update(message["touser"])
    return received


def rows_by_openid(broadcast_id: int) -> dict[str, list[tuple[str, str | None]]]:
    with db.session_scope() as session:
        result: dict[str, list] = collections.defaultdict(list)
        for openid, status, channel in session.execute(
                select(Resident.oa_openid, BroadcastRecipient.status, BroadcastRecipient.channel)
                .join(Resident, Resident.id == BroadcastRecipient.resident_id)
                .where(BroadcastRecipient.broadcast_id == broadcast_id)):
            result[openid].append((status, channel))
        return result


def broadcast_row(public_id: str) -> Broadcast:
    with db.session_scope() as session:
        return session.scalar(select(Broadcast).where(Broadcast.public_id == public_id))


# ------------------------------------------------------------------------------------------ rules
def test_content_check_scope_and_approval(people, fake_wechat):
    deputy, staff, station = people["deputy"], people["staff"], people["station"]
    risky = deputy.post("/api/broadcasts", {"title": "通知", "text": "欢迎来赌博"})
    assert risky.status_code == 422 and risky.json()["error"]["code"] == "content_refused"
    other_grid = deputy.post("/api/broadcasts", {"title": "通知", "text": "明天停水", "grid_codes": ["G003"]})
    assert other_grid.status_code == 403
    held = deputy.post("/api/broadcasts", {"title": "通知", "text": "可代开发票"})
    assert held.status_code == 201 and held.json()["status"] == "held"
    assert fake_wechat.calls("/wxa/msg_sec_check")[-1]["json"]["version"] == 2
    assert deputy.post(f"/api/broadcasts/{held.json()['id']}/approve").status_code == 403
    # A station's staff do not see a broadcast to grids outside their station.
    assert station.get(f"/api/broadcasts/{held.json()['id']}").status_code == 404
    approved = staff.post(f"/api/broadcasts/{held.json()['id']}/approve")
    assert approved.status_code == 200 and approved.json()["status"] in ("sending", "done")
    assert staff.post(f"/api/broadcasts/{held.json()['id']}/approve").status_code == 409


def test_channels_in_process_and_duplicate_jobs(people, fake_wechat):
    expected = seed_residents(40)
    me = resident(people["http"], "", fake_wechat, "o_bc_mp_user")  # a mini-program-only resident
    with db.session_scope() as session:
        session.execute(Resident.__table__.update().where(Resident.mp_openid == "o_bc_mp_user")
                        .values(grid_id=session.scalar(select(Grid.id).where(Grid.code == "G001"))))
    created = people["deputy"].post("/api/broadcasts", {"title": "停水通知", "text": "明日 9:00-17:00 停水"})
    assert created.status_code == 201, created.text
    b = broadcast_row(created.json()["id"])
    assert b.total == 41 and b.status == "sending"
    # Run the only chunk twice, as a duplicated job would: nobody is reached twice.
    assert broadcasts.send_chunk(b.id, 0)
    assert broadcasts.send_chunk(b.id, 0).get("skipped") == 1  # done already
    received = wechat_deliveries(fake_wechat)
    rows = rows_by_openid(b.id)
    for openid, kind in expected.items():
        assert len(rows[openid]) == 1
        status, channel = rows[openid][0]
        assert channel == kind and received[openid] == (0 if kind == "miniprogram" else 1), openid
    inbox = me.get("/api/broadcast-inbox").json()
    assert inbox["total"] == 1 and inbox["items"][0]["title"] == "停水通知"
    progress = people["deputy"].get(f"/api/broadcasts/{b.public_id}").json()
    assert progress["status"] == "done" and progress["progress"]["settled"] == 41
    assert progress["progress"]["by_channel"] == {"subscribe": 10, "custom": 10, "mass": 10, "miniprogram": 11}
    with db.session_scope() as session:  # credits spent, quota counted
        assert session.scalar(select(func.sum(NotificationConsent.credits))) == 0
        assert session.scalar(select(func.count()).select_from(MassQuota).where(MassQuota.count == 1)) == 10
    # The next broadcast: subscription credits are gone, so those residents get mass messages instead.
    again = people["deputy"].post("/api/broadcasts", {"title": "恢复供水", "text": "已恢复供水"}).json()
    broadcasts.send_chunk(broadcast_row(again["id"]).id, 0)
    channels = collections.Counter(c for rows_ in rows_by_openid(broadcast_row(again["id"]).id).values()
                                   for _s, c in rows_)
    assert channels == {"mass": 20, "custom": 10, "miniprogram": 11}


def test_mass_quota_never_exceeds_four_a_month(people, fake_wechat):
    fake_wechat.set_mass_monthly_limit(4)
    seed_residents(8, prefix="o_q_")
    for n in range(6):
        created = people["deputy"].post("/api/broadcasts", {"title": f"通知{n}", "text": "内容"}).json()
        broadcasts.send_chunk(broadcast_row(created["id"]).id, 0)
    for openid in ("o_q_000002", "o_q_000006"):  # the mass quarter
        assert fake_wechat.mass_received(openid) == 4
    assert not any(c.get("dropped") for c in fake_wechat.calls("/cgi-bin/message/mass/send"))


def test_cancel_stops_unclaimed_recipients(people, fake_wechat):
    seed_residents(20, prefix="o_c_")
    created = people["deputy"].post("/api/broadcasts", {"title": "通知", "text": "内容"}).json()
    cancelled = people["deputy"].post(f"/api/broadcasts/{created['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert broadcasts.send_chunk(broadcast_row(created["id"]).id, 0) == {"skipped": 1}
    assert wechat_deliveries(fake_wechat) == collections.Counter()
    assert cancelled.json()["progress"]["by_status"] == {"cancelled": 20}


# ------------------------------------------------------------------------------------------ crash
def test_ten_thousand_residents_with_a_worker_killed_midway(people, fake_wechat):
    expected = seed_residents(10_000)
    env = {**settings_env(fake_wechat.base_url), **FAST}
    created = people["deputy"].post("/api/broadcasts", {"title": "防汛通知", "text": "今晚有暴雨，请注意安全"})
    assert created.status_code == 201, created.text
    b = broadcast_row(created.json()["id"])
    assert b.total == 10_000 and b.chunks == 20

    def settled() -> int:
        with db.session_scope() as session:
            return session.scalar(select(func.count()).select_from(BroadcastRecipient).where(
                BroadcastRecipient.broadcast_id == b.id,
                BroadcastRecipient.status.in_(broadcasts.VISIBLE_STATUSES))) or 0

    first = WorkerProcess(env).start()
    try:
        wait_for(lambda: settled() >= 3000, timeout=300, message="a third of the broadcast")
    finally:
        first.kill()  # SIGKILL, mid-chunk
    assert broadcast_row(b.public_id).status == "sending"
    second = WorkerProcess(env).start()
    try:
        with db.session_scope() as session:  # the sweep, once the dead worker's leases ran out
            broadcasts.resume(session, b.id, _enqueue, now=utcnow() + broadcasts.SEND_LEASE + timedelta(seconds=1))
        wait_for(lambda: broadcast_row(b.public_id).status == "done", timeout=600, message="broadcast done")
    finally:
        second.stop()

    received = wechat_deliveries(fake_wechat)
    rows = rows_by_openid(b.id)
    assert len(rows) == 10_000
    unknown = []
    for openid, kind in expected.items():
        assert len(rows[openid]) == 1, openid  # one mini-program copy each
        status, channel = rows[openid][0]
        assert status in broadcasts.VISIBLE_STATUSES
        assert received[openid] <= 1, f"{openid} reached twice"
        if status == "unknown":  # killed during this very send: maybe delivered, never resent
            unknown.append(openid)
            continue
        assert channel == kind, (openid, status, channel)
        assert received[openid] == (0 if kind == "miniprogram" else 1), (openid, status, channel)
    assert len(unknown) <= 1
    assert set(received) <= set(expected)
    # Per-recipient status through the API, and the progress.
    page = people["deputy"].get(f"/api/broadcasts/{b.public_id}/recipients", page_size=100).json()
    assert page["total"] == 10_000 and all(item["status"] in broadcasts.VISIBLE_STATUSES for item in page["items"])
    progress = people["deputy"].get(f"/api/broadcasts/{b.public_id}").json()["progress"]
    assert progress["settled"] == 10_000 and progress["fraction"] == 1.0


def _enqueue(job_id, broadcast_id, chunk):
    from jobs.broadcast_tasks import enqueue_chunk

    enqueue_chunk(job_id, broadcast_id, chunk)


def test_mass_completion_reports_are_counted(people, fake_wechat, simulator):
    """WeChat reports each mass job later (MASSSENDJOBFINISH, sent by "mphelper"): the broadcast shows
    how many it reached and how many WeChat filtered out; a retried or foreign report changes nothing."""
    seed_residents(40)
    created = people["deputy"].post("/api/broadcasts", {"title": "停水通知", "text": "明日停水"}).json()
    b = broadcast_row(created["id"])
    broadcasts.send_chunk(b.id, 0)
    (sent,) = fake_wechat.sent_messages("mass_openids")
    msg_id = sent["msgid"]
    before = people["deputy"].get(f"/api/broadcasts/{b.public_id}").json()["progress"]["mass"]
    assert before == {"batches": 1, "reported": 0, "submitted": 10, "sent": 0, "filtered": 0, "errors": 0}

    report = dict(MsgID=msg_id, Status="send success", TotalCount=10, FilterCount=2, SentCount=8, ErrorCount=0)
    with db.session_scope() as session:
        residents_before = session.scalar(select(func.count()).select_from(Resident))
    for _ in range(2):  # WeChat's retry of the same event
        assert simulator.send_event("mphelper", "MASSSENDJOBFINISH", create_time=1_790_000_000,
                                    **report).is_ack
    simulator.send_event("mphelper", "MASSSENDJOBFINISH", MsgID=msg_id + 999, Status="send success",
                         TotalCount=5, FilterCount=0, SentCount=5, ErrorCount=0)  # sent from the console
    after = people["deputy"].get(f"/api/broadcasts/{b.public_id}").json()["progress"]["mass"]
    assert after == {"batches": 1, "reported": 1, "submitted": 10, "sent": 8, "filtered": 2, "errors": 0}
    with db.session_scope() as session:  # the mass-send helper is not a resident
        assert session.scalar(select(func.count()).select_from(Resident)) == residents_before


# ------------------------------------------------------------------------------------------ failures
BIZSEND, CUSTOM, MASS = "/cgi-bin/message/subscribe/bizsend", "/cgi-bin/message/custom/send", "/cgi-bin/message/mass/send"


def test_transient_refusals_are_retried_through_the_shared_engine(people, fake_wechat):
    """−1 and 45011 delivered nothing: the row is given back (with its credit or window slot) and sent
    in a later round of the same chunk, once; nobody is reached twice or lost to the mini-program."""
    expected = seed_residents(8, prefix="o_t_")
    fake_wechat.fail_next(BIZSEND, -1, "system error")
    fake_wechat.fail_next(CUSTOM, 45011, "api minute-quota reach limit")
    fake_wechat.fail_next(MASS, -1, "system error")
    created = people["deputy"].post("/api/broadcasts", {"title": "停电通知", "text": "明日停电"}).json()
    b = broadcast_row(created["id"])
    broadcasts.send_chunk(b.id, 0)
    received, rows = wechat_deliveries(fake_wechat), rows_by_openid(b.id)
    for openid, kind in expected.items():
        assert rows[openid] == [("miniprogram" if kind == "miniprogram" else "sent", kind)], openid
        assert received[openid] == (0 if kind == "miniprogram" else 1), openid
    with db.session_scope() as session:  # each spent once, not once per attempt
        assert session.scalar(select(func.sum(NotificationConsent.credits))) == 0
        assert set(session.scalars(select(Resident.window_used).where(Resident.window_kind.is_not(None)))) == {1}
        assert session.scalar(select(func.count()).select_from(MassQuota).where(MassQuota.count == 1)) == 2


def test_a_send_that_never_left_is_never_taken_for_maybe_delivered(people, fake_wechat):
    """The access-token lookup fails after the claim (the token store's Redis is unreachable): no row
    becomes `unknown`, every credit, window slot and mass quota goes back, and all keep their
    mini-program copy."""
    from tests.conftest import unreachable_token_store_client

    expected = seed_residents(8, prefix="o_n_")
    created = people["deputy"].post("/api/broadcasts", {"title": "停电通知", "text": "明日停电"}).json()
    b = broadcast_row(created["id"])
    broadcasts.send_chunk(b.id, 0, client=unreachable_token_store_client(fake_wechat.base_url))
    rows = rows_by_openid(b.id)
    assert {openid: rows[openid] for openid in expected} == {openid: [("miniprogram", "miniprogram")]
                                                             for openid in expected}
    assert wechat_deliveries(fake_wechat) == collections.Counter()
    assert broadcast_row(b.public_id).status == "done"
    with db.session_scope() as session:
        assert session.scalar(select(func.sum(NotificationConsent.credits))) == 2
        assert set(session.scalars(select(Resident.window_used).where(Resident.window_kind.is_not(None)))) == {0}
        assert session.scalar(select(func.count()).select_from(MassQuota).where(MassQuota.count > 0)) == 2
        errors = session.scalars(select(BroadcastRecipient.error).where(
            BroadcastRecipient.broadcast_id == b.id, BroadcastRecipient.error.is_not(None))).all()
        assert len(errors) == 6 and all("access token" in e for e in errors)
