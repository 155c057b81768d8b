"""A second deployment for tests/test_open311_peers.py: `python -m tests.open311_peer`.

Its own database (DATABASE_URL, migrated and seeded with the demo county here), embedded jobs (no
Redis), the real app on a free port, plus a test-only control blueprint under /_peer that does what
its staff and residents would (open, hand off, close, rate) and reports a case's state. Prints one
JSON line with its URL and the Open311 key it issued for the other deployment, then serves.
"""
from __future__ import annotations

import json
import sys

from flask import Blueprint, jsonify, request
from sqlalchemy import select, update
from werkzeug.serving import make_server

from config.settings import load_settings
from liaison import demo, schema
from liaison.case import service as cases
from liaison.case.models import CaseEvent, Rating
from liaison.core import db, tenant
from liaison.core.clock import utcnow
from liaison.core.types import Actor
from liaison.interop import service as interop
from liaison.interop.models import ExternalLink
from liaison.people.models import Resident
from webapp import create_app

control = Blueprint("peer_control", __name__, url_prefix="/_peer")


def case_state(session, number: str) -> dict:
    case = cases.case_by_number(session, number)
    link = session.scalar(select(ExternalLink).where(ExternalLink.case_id == case.id))
    events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))
    return {"number": case.number, "status": case.status, "round": case.round, "summary": case.summary,
            "ratings": [r.value for r in session.scalars(select(Rating).where(Rating.case_id == case.id)
                                                         .order_by(Rating.id))],
            "events": [[e.action, (e.detail or {}).get("text")] for e in events],
            "link": link and {"direction": link.direction, "state": link.state, "external_id": link.external_id,
                              "token": link.token}}


@control.post("/<action>")
def act(action):
    body = request.get_json(force=True) or {}
    if action == "sweep":  # what the scheduler does once the links fall due (no waiting here)
        with db.session_scope() as session:
            session.execute(update(ExternalLink).where(ExternalLink.next_poll_at.is_not(None))
                            .values(next_poll_at=utcnow()))
        return jsonify(done=interop.sweep(timeout=10))
    with db.session_scope() as session:
        if action == "target":
            interop.set_target(session, body["name"], body["endpoint"], body["api_key"],
                               category=body.get("category"))
            return jsonify(ok=True)
        if action == "case":
            resident = Resident(oa_openid=body["openid"])
            session.add(resident)
            session.flush()
            case = cases.open_case(session, resident, body["text"])
            if body.get("category") and case.category != body["category"]:
                cases.recategorize(session, case, Actor("staff"), body["category"])
            return jsonify(number=case.number)
        case = cases.case_by_number(session, body["number"])
        if action == "handoff":
            interop.hand_off(session, case, Actor("staff"))
        elif action == "close":
            if case.status in ("assigned", "reopened", "returned"):
                cases.accept(session, case, Actor("staff"))
            cases.close(session, case, Actor("staff"), body["summary"])
        elif action == "rate":
            cases.rate(session, case, session.get(Resident, case.resident_id), body["value"], channel="chat")
        return jsonify(case_state(session, case.number))


@control.get("/case/<number>")
def state(number):
    with db.session_scope() as session:
        return jsonify(case_state(session, number))


def main() -> int:
    settings = load_settings()
    schema.upgrade(settings.database_url)
    app = create_app(settings, start_background=False)
    app.register_blueprint(control)
    with tenant.use(tenant.DEFAULT), db.session_scope() as session:
        demo.seed_demo(session)
        _partner, key = interop.issue_key(session, "甲县人大代表联络平台")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_port}", "key": key}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
