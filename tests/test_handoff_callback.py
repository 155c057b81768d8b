"""直通车 status pushed back: a hand-off target calls the signed callback we gave it when filing.

The target here is a bare Open311 bridge (in this process, over real HTTP) that records what we post;
the pushes go to the live app. A signed close closes our case and asks our resident for a rating once;
unsigned, badly signed, stale and replayed pushes are refused and change nothing.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from liaison.case import service as cases
from liaison.case.models import Case, CaseEvent
from liaison.core import db, tenant
from liaison.core.types import Actor
from liaison.interop import service as interop
from liaison.interop.models import ExternalLink, HandoffTarget
from liaison.messaging.models import OutboxMessage
from liaison.people.models import Resident

A = tenant.DEFAULT_COUNTY_ID


class RecordingBridge:
    """Files each POST once per handoff_token and keeps the form it was sent."""

    def __init__(self):
        self.forms: list[dict] = []
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/open311/v2"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wsgi(self, environ, start_response):
        form = Request(environ).form.to_dict()
        self.forms.append(form)
        body = [{"service_request_id": "12345-77", "token": form["attribute[handoff_token]"]}]
        return Response(json.dumps(body), status=201, content_type="application/json")(environ, start_response)


@pytest.fixture
def filed(live_server):
    bridge = RecordingBridge()
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        target = interop.set_target(session, "市12345", bridge.url, "bridge-key")
        resident = Resident(oa_openid="o_callback_resident")
        session.add(resident)
        session.flush()
        case = cases.open_case(session, resident, "公司拖欠工资三个月")
        link = interop.hand_off(session, case, Actor("staff"), target)
        ids = {"case": case.id, "link": link.id, "token": link.token, "secret": target.callback_secret}
    with tenant.use(tenant.county(A)):
        assert interop.file_link(ids["link"], timeout=10, callback_base=live_server.url) == "filed"
    yield {**ids, "bridge": bridge, "base": live_server.url}
    bridge.server.shutdown()


def _push(filed, payload, *, secret=None, at=None, token=None, signature=None):
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    stamp = str(int(at if at is not None else time.time()))
    signed = signature or interop.sign_callback(secret or filed["secret"], stamp, body)
    url = interop.callback_url(filed["base"], token or filed["token"])
    return requests.post(url, data=body, timeout=30, headers={
        "Content-Type": "application/json", "X-Open311-Timestamp": stamp, "X-Open311-Signature": signed})


def _state(case_id):
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        case = session.get(Case, case_id)
        events = session.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case_id))
        prompts = session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.case_id == case_id, OutboxMessage.kind == "rating_prompt"))
        notes = [e.detail["text"] for e in session.scalars(select(CaseEvent).where(
            CaseEvent.case_id == case_id, CaseEvent.action == "external_update").order_by(CaseEvent.id))]
        return {"status": case.status, "summary": case.summary, "events": events, "prompts": prompts,
                "notes": notes}


def test_the_target_is_given_our_signed_callback_when_filing(filed):
    (form,) = filed["bridge"].forms
    assert form["attribute[callback_url]"] == f"{filed['base']}/open311/v2/callbacks/{filed['token']}"
    assert filed["secret"] and filed["secret"] not in json.dumps(form)


def test_a_signed_close_closes_our_case_and_asks_for_our_rating_once(filed):
    closed = {"service_request_id": "12345-77", "status": "closed", "status_notes": "已协调企业结清工资"}
    first = _push(filed, [closed])
    assert first.status_code == 200 and first.json()["result"] == "closed"
    after = _state(filed["case"])
    assert after["status"] == "closed" and "已协调企业结清工资" in after["summary"]
    assert after["prompts"] == 1 and after["notes"] == ["已协调企业结清工资"]
    # The target sends the same close again (a fresh signature): taken, nothing changes.
    again = _push(filed, [closed], at=time.time() + 1)
    assert again.status_code == 200 and _state(filed["case"]) == after
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        assert session.get(ExternalLink, filed["link"]).state == "closed"


def test_an_open_update_goes_onto_the_timeline_as_a_poll_would(filed):
    note = {"service_request_id": "12345-77", "status": "open", "status_notes": "已派至街道"}
    assert _push(filed, note).status_code == 200
    assert _push(filed, note, at=time.time() + 1).status_code == 200  # duplicate: written once
    state = _state(filed["case"])
    assert state["notes"] == ["已派至街道"] and state["status"] != "closed" and state["prompts"] == 0


def test_unsigned_badly_signed_stale_replayed_and_foreign_pushes_are_refused_and_change_nothing(filed):
    closed = {"service_request_id": "12345-77", "status": "closed", "status_notes": "已办结"}
    before = _state(filed["case"])
    url = interop.callback_url(filed["base"], filed["token"])
    refused = [
        requests.post(url, json=closed, timeout=30),  # unsigned
        _push(filed, closed, signature="0" * 64),  # badly signed
        _push(filed, closed, secret="another-targets-secret"),  # signed with the wrong secret
        _push(filed, closed, at=time.time() - 3600),  # stale
        _push(filed, closed, at=time.time() + 3600),  # from the future
        _push(filed, closed, token="not-a-token-of-ours"),  # no such hand-off
        _push(filed, {"status": "maybe"}),  # signed, but not a request
        _push(filed, {**closed, "service_request_id": "12345-1"}),  # another request
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403, 403, 403, 400, 400]
    assert all(r.json()[0]["code"] == r.status_code for r in refused)
    assert _state(filed["case"]) == before
    # A replay: the same signed call twice. The first is taken, the second refused.
    body = json.dumps({"service_request_id": "12345-77", "status": "open", "status_notes": "已受理"}).encode()
    stamp = str(int(time.time()))
    headers = {"X-Open311-Timestamp": stamp, "X-Open311-Signature": interop.sign_callback(
        filed["secret"], stamp, body), "Content-Type": "application/json"}
    assert requests.post(url, data=body, headers=headers, timeout=30).status_code == 200
    taken = _state(filed["case"])
    replay = requests.post(url, data=body, headers=headers, timeout=30)
    assert replay.status_code == 409 and _state(filed["case"]) == taken == {**before, "notes": ["已受理"],
                                                                            "events": before["events"] + 1}


def test_a_target_set_again_keeps_its_secret_and_a_rotated_secret_stops_the_old_one(filed):
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        target = session.scalar(select(HandoffTarget))
        interop.set_target(session, target.name, target.endpoint, "new-key")
        assert target.callback_secret == filed["secret"]
        interop.rotate_callback_secret(session, target.id)
        new_secret = target.callback_secret
    note = {"status": "open", "status_notes": "已派至街道"}
    assert _push(filed, note).status_code == 403
    assert _push(filed, note, secret=new_secret).status_code == 200


def test_the_worker_files_with_the_callback_of_public_base_url(live_server, fake_wechat):
    from jobs.interop_tasks import handoff_sweep
    from tests.conftest import WorkerProcess, settings_env, wait_for

    bridge = RecordingBridge()
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        interop.set_target(session, "市12345", bridge.url, "bridge-key")
        resident = Resident(oa_openid="o_callback_worker")
        session.add(resident)
        session.flush()
        case = cases.open_case(session, resident, "公司拖欠工资三个月")
        token = interop.hand_off(session, case, Actor("staff")).token
    worker = WorkerProcess(settings_env(fake_wechat.base_url, PUBLIC_BASE_URL="https://liaison.example/")).start()
    try:
        handoff_sweep()
        wait_for(lambda: bridge.forms, 60, message="the worker to file the hand-off")
    finally:
        worker.stop()
        bridge.server.shutdown()
    assert bridge.forms[0]["attribute[callback_url]"] == f"https://liaison.example/open311/v2/callbacks/{token}"
