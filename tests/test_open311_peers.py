"""County to county: two deployments, each with its own database, hand cases to each other over
Open311 on real HTTP, and afterwards both sides' statuses, rounds, ratings and timelines agree.

A is this test's app (the live server, an RQ worker, the scheduler's hand-off sweep run here); B is
`tests.open311_peer` in a process of its own on a second database created here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from jobs.interop_tasks import handoff_sweep
from liaison.case import service as cases
from liaison.case.models import CaseEvent, Rating
from liaison.core import db, tenant
from liaison.core.types import Actor
from liaison.interop import service as interop
from liaison.interop.models import ExternalLink
from liaison.people.models import Resident
from tests.conftest import ROOT, TEST_DATABASE_URL, settings_env, wait_for
from tests.test_handoff import _due_now

A = tenant.DEFAULT_COUNTY_ID
CATEGORY = "城乡建设"


@pytest.fixture
def peer(fake_wechat):
    url = make_url(TEST_DATABASE_URL)
    peer_url = url.set(database=f"{url.database}_peer")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{peer_url.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{peer_url.database}"'))
    env = settings_env(fake_wechat.base_url, DATABASE_URL=peer_url.render_as_string(hide_password=False),
                       REDIS_URL="")
    proc = subprocess.Popen([sys.executable, "-m", "tests.open311_peer"], cwd=ROOT,
                            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert line, "the peer deployment did not start"
    info = json.loads(line)
    yield info
    proc.terminate()
    proc.wait(timeout=30)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{peer_url.database}" WITH (FORCE)'))
    admin.dispose()


def _b(peer, action, **body):
    response = requests.post(f"{peer['url']}/_peer/{action}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def _b_case(peer, number):
    return requests.get(f"{peer['url']}/_peer/case/{number}", timeout=30).json()


def _a_case(number):
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        case = cases.case_by_number(session, number)
        link = session.scalar(select(ExternalLink).where(ExternalLink.case_id == case.id))
        events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))
        return {"status": case.status, "round": case.round, "summary": case.summary,
                "ratings": [r.value for r in session.scalars(select(Rating).where(Rating.case_id == case.id)
                                                             .order_by(Rating.id))],
                "events": [[e.action, (e.detail or {}).get("text")] for e in events],
                "link": {"id": link.id, "state": link.state, "external_id": link.external_id,
                         "direction": link.direction}}


def _a_sweep(number):
    _due_now(_a_case(number)["link"]["id"])
    handoff_sweep()


def _notes(state):
    return " ".join(text or "" for action, text in state["events"] if action == "external_update")


def test_two_deployments_hand_cases_to_each_other_and_agree(live_server, peer, rq_worker):
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        _partner, key_for_b = interop.issue_key(session, "乙县人大代表联络平台")
        interop.set_target(session, "乙县", peer["url"] + "/open311/v2", peer["key"], category=CATEGORY)
        resident = Resident(oa_openid="o_peer_a_resident")
        session.add(resident)
        session.flush()
        case = cases.open_case(session, resident, "幸福里小区门口的道路塌陷，需要修补")
        if case.category != CATEGORY:
            cases.recategorize(session, case, Actor("staff"), CATEGORY)
        interop.hand_off(session, case, Actor("staff"))
        a_number, a_resident = case.number, resident.id
    _b(peer, "target", name="甲县", endpoint=live_server.url + "/open311/v2", api_key=key_for_b,
       category=CATEGORY)

    # A → B: filed by A's worker, closed by B, rated by A's resident, the rating passed to B.
    handoff_sweep()
    wait_for(lambda: _a_case(a_number)["link"]["state"] == "filed", 60, message="A's case filed at B")
    b_number = _a_case(a_number)["link"]["external_id"]
    assert _b_case(peer, b_number)["link"]["direction"] == "incoming"
    _b(peer, "close", number=b_number, summary="乙县住建已修补路面")
    _a_sweep(a_number)
    wait_for(lambda: _a_case(a_number)["status"] == "closed", 60, message="A's case closed from B")
    with tenant.use(tenant.county(A)), db.session_scope() as session:
        case = cases.case_by_number(session, a_number)
        cases.rate(session, case, session.get(Resident, a_resident), "satisfied", channel="chat")
    _a_sweep(a_number)
    wait_for(lambda: _a_case(a_number)["link"]["state"] == "rated", 60, message="the rating to reach B")
    mine, theirs = _a_case(a_number), _b_case(peer, b_number)
    assert (mine["status"], mine["round"], mine["ratings"]) == (theirs["status"], theirs["round"],
                                                                 theirs["ratings"]) == ("archived", 1, ["satisfied"])
    assert "乙县住建已修补路面" in _notes(mine) and "乙县住建已修补路面" in mine["summary"]
    assert ["handoff_received", None] in theirs["events"]

    # B → A: filed by B, closed by A, rated 不满意 at B (a second round on both sides), closed again.
    b2 = _b(peer, "case", openid="o_peer_b_resident", text="青山村村口道路塌陷，需要修补", category=CATEGORY)["number"]
    _b(peer, "handoff", number=b2)
    _b(peer, "sweep")
    a2 = _b_case(peer, b2)["link"]["external_id"]
    assert _b_case(peer, b2)["link"]["state"] == "filed" and a2
    for summary in ("甲县住建已回填", "甲县住建已重新铺设"):
        with tenant.use(tenant.county(A)), db.session_scope() as session:
            case = cases.case_by_number(session, a2)
            if case.status in ("assigned", "reopened"):
                cases.accept(session, case, Actor("staff"))
            cases.close(session, case, Actor("staff"), summary)
        _b(peer, "sweep")
        assert _b_case(peer, b2)["status"] == "closed"
        _b(peer, "rate", number=b2, value="unsatisfied" if summary == "甲县住建已回填" else "satisfied")
        _b(peer, "sweep")
    theirs, mine = _b_case(peer, b2), _a_case(a2)
    assert (mine["status"], mine["round"], mine["ratings"]) == (theirs["status"], theirs["round"],
                                                                 theirs["ratings"])
    assert mine["status"] == "archived" and mine["round"] == 2 and mine["ratings"] == ["unsatisfied", "satisfied"]
    assert "甲县住建已回填" in _notes(theirs) and "甲县住建已重新铺设" in _notes(theirs)
    assert theirs["link"]["state"] == "rated" and mine["link"]["direction"] == "incoming"
