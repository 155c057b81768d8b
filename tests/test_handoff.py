"""直通车: a case handed to another platform over Open311, by a real worker process.

County A hands its resident's case to county B's Open311 interface (the same deployment here; two
deployments with their own databases in tests/test_open311_peers.py). A proxy in front of B forwards
the first filing but holds B's answer until A's worker has given up on it (its timeout): the retry
files nothing new. B closes the case: A's case closes, its resident is asked for a rating, and the
rating goes back to B.
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, update
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from jobs.interop_tasks import handoff_sweep
from liaison import demo
from liaison.case import service as cases
from liaison.case.models import Case, CaseEvent, Rating
from liaison.core import db, tenant
from liaison.core.clock import utcnow
from liaison.core.types import Actor
from liaison.interop import service as interop
from liaison.interop.models import ExternalLink
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Resident
from liaison.tenancy import service as tenancy
from tests.conftest import WorkerProcess, settings_env, wait_for

A = tenant.DEFAULT_COUNTY_ID


class HoldingProxy:
    """Forwards every call to `upstream`; the first POST is forwarded at once but its answer is held
    until `release` is set (the caller times out meanwhile)."""

    def __init__(self, upstream: str):
        self.upstream, self.release = upstream, threading.Event()
        self.posts: list[dict] = []
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wsgi(self, environ, start_response):
        incoming = Request(environ)
        target = self.upstream + incoming.path
        if incoming.method == "POST":
            form = incoming.form.to_dict()
            self.posts.append(form)
            answer = requests.post(target, data=form, timeout=30)
            if len(self.posts) == 1:
                self.release.wait(120)
        else:
            answer = requests.get(target, params=incoming.args.to_dict(), timeout=30)
        return Response(answer.content, status=answer.status_code,
                        content_type=answer.headers.get("Content-Type"))(environ, start_response)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def settings(clean_db, redis_client, fake_wechat):
    from config.settings import load_settings

    return load_settings(settings_env(fake_wechat.base_url, HANDOFF_TIMEOUT_SECONDS="1"))


@pytest.fixture
def handoff(live_server, fake_wechat):
    with tenant.use(tenant.all_counties("add a county")), db.session_scope() as session:
        b = tenancy.add_county(session, "yixian", "乙县").id
    with tenant.use(tenant.county(b)), db.session_scope() as session:
        demo.seed_demo(session)
        _partner, key_for_a = interop.issue_key(session, "甲县人大代表联络平台")
    proxy = HoldingProxy(live_server.url)
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        interop.set_target(session, "乙县12345", proxy.url + "/open311/v2", key_for_a, category="城乡建设")
        resident = Resident(oa_openid="o_handoff_resident")
        session.add(resident)
        session.flush()
        case = cases.open_case(session, resident, "幸福里小区门口的道路塌陷了一个大坑，需要住建部门修补")
        if case.category != "城乡建设":
            cases.recategorize(session, case, Actor("staff"), "城乡建设")
        link = interop.hand_off(session, case, Actor("staff"))
        ids = {"case": case.id, "number": case.number, "link": link.id, "token": link.token,
               "resident": resident.id}
    worker = WorkerProcess(settings_env(fake_wechat.base_url, HANDOFF_TIMEOUT_SECONDS="1")).start()
    yield {**ids, "b": b, "proxy": proxy}
    proxy.close()
    worker.stop()


def _link(link_id):
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        link = session.get(ExternalLink, link_id)
        return {"state": link.state, "external_id": link.external_id, "error": link.last_error,
                "attempts": link.attempts, "next": link.next_poll_at}


def _due_now(link_id):
    """The retry (or the next poll) falls due now: what the passing of time would do."""
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        session.execute(update(ExternalLink).where(ExternalLink.id == link_id).values(next_poll_at=utcnow()))


def _b_cases(b):
    with tenant.use(tenant.county(b)), db.session_scope() as session:
        return [(link.token, link.case.number, link.case.status) for link in session.scalars(
            select(ExternalLink).where(ExternalLink.direction == "incoming"))]


def test_a_handoff_retried_after_a_timeout_files_once_and_an_external_close_asks_for_our_rating(handoff):
    link_id, b = handoff["link"], handoff["b"]
    handoff_sweep()  # the scheduler's sweep queues the filing job for the worker
    first = wait_for(lambda: (lambda s: s if s["error"] else None)(_link(link_id)), 60,
                     message="the first filing to time out")
    assert first["state"] == "pending" and first["attempts"] == 1 and "Timeout" in first["error"]
    # B files it (only its answer is lost); on a busy machine A's timeout may come before B is done.
    wait_for(lambda: len(_b_cases(b)) == 1, message="B to file the hand-off whose answer was lost")
    handoff["proxy"].release.set()

    _due_now(link_id)
    handoff_sweep()
    filed = wait_for(lambda: (lambda s: s if s["state"] == "filed" else None)(_link(link_id)), 60,
                     message="the retry to file")
    assert filed["attempts"] == 2
    posts = handoff["proxy"].posts
    assert len(posts) == 2 and posts[0]["attribute[handoff_token]"] == posts[1]["attribute[handoff_token]"]
    (token, b_number, _status), = _b_cases(b)
    assert token == handoff["token"] and filed["external_id"] == b_number

    # B works the case and closes it.
    with tenant.use(tenant.county(b)), db.session_scope() as session:
        b_case = cases.case_by_number(session, b_number)
        if b_case.status == "assigned":
            cases.accept(session, b_case, Actor("staff"))
        cases.close(session, b_case, Actor("staff"), "塌陷路面已修补")
    _due_now(link_id)
    handoff_sweep()
    wait_for(lambda: _link(link_id)["state"] == "closed", 60, message="our case to close")
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        case = session.get(Case, handoff["case"])
        assert case.status == "closed" and "塌陷路面已修补" in case.summary
        prompt = session.scalar(select(OutboxMessage).where(OutboxMessage.case_id == case.id,
                                                            OutboxMessage.kind == "rating_prompt"))
        assert prompt is not None and prompt.resident_id == handoff["resident"]
        notes = [e.detail.get("text") for e in session.scalars(select(CaseEvent).where(
            CaseEvent.case_id == case.id, CaseEvent.action == "external_update"))]
        assert any("塌陷路面已修补" in (n or "") for n in notes)
        # Our resident rates here; the rating goes back to B.
        cases.rate(session, case, session.get(Resident, handoff["resident"]), "satisfied", channel="chat")
    _due_now(link_id)
    handoff_sweep()
    wait_for(lambda: _link(link_id)["state"] == "rated", 60, message="the rating to reach B")
    with tenant.use(tenant.county(b)), db.session_scope() as session:
        b_case = cases.case_by_number(session, b_number)
        assert b_case.status == "archived"
        assert session.scalar(select(Rating.value).where(Rating.case_id == b_case.id)) == "satisfied"
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        assert session.get(Case, handoff["case"]).status == "archived"
    assert len(_b_cases(b)) == 1


class PlainBridge:
    """A 12345 platform behind a bare Open311 bridge: no extensions, status and status_notes only;
    it dedups POSTs on `attribute[handoff_token]` as the README asks of a bridge."""

    def __init__(self):
        self.requests: dict[str, dict] = {}
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/open311/v2"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wsgi(self, environ, start_response):
        import json

        incoming = Request(environ)
        if incoming.method == "POST":
            token = incoming.form["attribute[handoff_token]"]
            entry = self.requests.setdefault(token, {"service_request_id": f"12345-{len(self.requests) + 1}",
                                                     "status": "open", "status_notes": "已派至街道"})
            body = [{"service_request_id": entry["service_request_id"], "token": token}]
        else:
            wanted = incoming.path.rsplit("/", 1)[-1].removesuffix(".json")
            body = [dict(r) for r in self.requests.values() if r["service_request_id"] == wanted]
        return Response(json.dumps(body), status=201 if incoming.method == "POST" else 200,
                        content_type="application/json")(environ, start_response)


def test_a_plain_open311_platform_closing_asks_for_our_rating(live_server, fake_wechat):
    bridge = PlainBridge()
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        interop.set_target(session, "市12345", bridge.url, "bridge-key")  # every category
        resident = Resident(oa_openid="o_bridge_resident")
        session.add(resident)
        session.flush()
        case = cases.open_case(session, resident, "公司拖欠工资三个月")
        case_id, resident_id = case.id, resident.id
    worker = WorkerProcess(settings_env(fake_wechat.base_url)).start()
    try:
        handoff_sweep()  # hands the new case off (auto) and queues its filing
        with tenant.use(tenant.county(A)), db.session_scope() as session:
            link_id = session.scalar(select(ExternalLink.id).where(ExternalLink.case_id == case_id))
        _due_now(link_id)
        handoff_sweep()
        wait_for(lambda: _link(link_id)["state"] == "filed", 60, message="filed at the bridge")
        for _ in range(2):  # polled twice: the unchanged note is written once
            _due_now(link_id)
            asked = utcnow()
            handoff_sweep()
            wait_for(lambda: _link(link_id)["next"] > asked + timedelta(seconds=5), 60, message="a poll")
            assert _notes(case_id) == ["已派至街道"]
        (entry,) = bridge.requests.values()
        entry.update(status="closed", status_notes="已协调企业结清工资")
        _due_now(link_id)
        handoff_sweep()
        wait_for(lambda: _link(link_id)["state"] == "closed", 60, message="our case closed")
    finally:
        worker.stop()
        bridge.server.shutdown()
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        case = session.get(Case, case_id)
        assert case.status == "closed" and "已协调企业结清工资" in case.summary
        assert session.scalar(select(OutboxMessage.resident_id).where(
            OutboxMessage.case_id == case_id, OutboxMessage.kind == "rating_prompt")) == resident_id
    assert _notes(case_id) == ["已派至街道", "已协调企业结清工资"] and len(bridge.requests) == 1


def _notes(case_id):
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        return [e.detail["text"] for e in session.scalars(select(CaseEvent).where(
            CaseEvent.case_id == case_id, CaseEvent.action == "external_update").order_by(CaseEvent.id))]
