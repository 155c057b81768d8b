"""Interop: our cases as Open311 GeoReport v2 service requests, partner keys, incoming requests, and
the hand-off (直通车) of our cases to another platform that speaks Open311.

What leaves the system is coarse on purpose: a request names its grid (the community), never a
street address; coordinates are rounded to 0.01° (about a kilometre); the description and the notes
have digit runs that could be a phone, an ID or a house number masked; names, openids and phones are
never read at all. The Open311 views decide formats; this module decides content.

Hand-off idempotency: the outgoing link row, with a client-generated token, is committed before the
target is called, and every attempt sends that token as `attribute[handoff_token]`. A target that
dedups on it (this system does: `file_request`) files once however often a timed-out call is retried.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections import defaultdict
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from classifiers import get_routing_config
from classifiers.model import KEYWORDS_PATH
from liaison.case import service as cases
from liaison.case.lifecycle import FINAL_STATUSES, STATUS_LABELS, TRANSITIONS, Status
from liaison.case.models import Case, CaseEvent, Rating
from liaison.core import db, tenant
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, FORBIDDEN, INVALID, NOT_FOUND, DomainError
from liaison.core.types import Actor
from liaison.interop import access
from liaison.interop.models import CallbackReceipt, ExternalLink, HandoffTarget, Partner, PartnerCall
from liaison.people import directory
from liaison.people.models import Department, Deputy, Grid, Resident
from liaison.tenancy.models import County

log = logging.getLogger(__name__)

LOCAL_SERVICE = "shudi"  # 属地事项: the grid deputy handles it
LOCAL_NAME = "属地事项"
TOKEN_ATTRIBUTE = "handoff_token"
CALLBACK_ATTRIBUTE = "callback_url"
CALLBACK_PATH = "/open311/v2/callbacks/"
CALLBACK_TOLERANCE = timedelta(minutes=5)  # a push signed longer ago (or ahead) than this is stale
MAX_CALLBACK_BODY = 64 * 1024
MAX_RESULTS = 1000
DEFAULT_RANGE = timedelta(days=90)
POLL_EVERY = timedelta(seconds=30)
RETRY_AFTER = timedelta(seconds=15)
RATING_LABELS = cases.RATING_VALUES
OUTGOING, INCOMING = "outgoing", "incoming"
PENDING, FILED, CLOSED, RATED = "pending", "filed", "closed", "rated"


class Open311Error(DomainError):
    """An Open311 refusal: `kind` decides the HTTP status, `message` is the spec's description."""


def _invalid(message: str, field: str | None = None) -> Open311Error:
    return Open311Error(message, kind=INVALID, code="invalid", field=field)


# ------------------------------------------------------------------------------------------- services
@lru_cache(maxsize=1)
def _keywords_by_category(per_category: int = 12) -> dict[str, list[str]]:
    """The strongest keywords of each category in the learned keyword table."""
    rows: dict[str, list[tuple[float, str]]] = defaultdict(list)
    with open(KEYWORDS_PATH, encoding="utf-8") as fh:
        for row in csv.reader((line for line in fh if not line.startswith("#")), delimiter="\t"):
            if len(row) != 4 or row[0] == "keyword" or row[1] == "-" or len(row[0]) < 2:
                continue
            try:
                rows[row[1]].append((float(row[2]), row[0]))
            except ValueError:
                continue
    return {cat: [kw for _w, kw in sorted(items, reverse=True)[:per_category]]
            for cat, items in rows.items()}


def services() -> list[dict[str, Any]]:
    """The routing categories as Open311 services: code, name, the handling department, keywords."""
    routing = get_routing_config()
    learned = _keywords_by_category()
    rule_keywords: dict[str | None, list[str]] = defaultdict(list)
    for keywords, target, code, _local in routing.keyword_rules:
        rule_keywords[code if target == "department" else None].extend(keywords)
    found = []
    for category, code in routing.categories.items():
        if code == "deputy":
            continue
        keywords = list(dict.fromkeys(rule_keywords.get(code, []) + learned.get(category, [])))
        department = routing.dept_name(code)
        found.append({"service_code": code, "service_name": category,
                      "description": f"{category}类诉求，由{department}承办", "metadata": True,
                      "type": "realtime", "keywords": ",".join(keywords), "group": department,
                      "category": category})
    found.append({"service_code": LOCAL_SERVICE, "service_name": LOCAL_NAME,
                  "description": "路灯、楼道、噪音等小区和村组的事，由网格的人大代表就地办理",
                  "metadata": True, "type": "realtime",
                  "keywords": ",".join(dict.fromkeys(rule_keywords.get(None, []))), "group": "网格代表",
                  "category": None})
    return found


def service(code: str) -> dict[str, Any]:
    for item in services():
        if item["service_code"] == code:
            return item
    raise Open311Error(f"service_code {code} not found", kind=NOT_FOUND, code="service_not_found")


def service_definition(code: str) -> dict[str, Any]:
    """The attributes a request of `code` may carry (one: the client's idempotency token)."""
    service(code)
    return {"service_code": code, "attributes": [{
        "variable": True, "code": TOKEN_ATTRIBUTE, "datatype": "string", "required": False,
        "datatype_description": "调用方生成的唯一标识；重复提交同一标识只登记一次",
        "order": 1, "description": "提交标识（防重复）", "values": []}]}


def _service_of(case: Case) -> dict[str, Any]:
    routing = get_routing_config()
    code = routing.categories.get(case.category or "")
    if case.handler_kind != "department" and (case.routing or {}).get("route", {}).get("local_matter"):
        code = None
    if code and code != "deputy":
        return {"service_code": code, "service_name": case.category}
    return {"service_code": LOCAL_SERVICE, "service_name": LOCAL_NAME}


# ------------------------------------------------------------------------------------ requests (out)
_LONG_DIGITS = re.compile(r"\d[\d\s\-]{5,}\d")
_SURNAME_MOU = re.compile(r"[\u4e00-\u9fff](某+|先生|女士|师傅|老师|阿姨|大爷|大妈)")  # 王某某, 李先生
_HOUSE = re.compile(r"[0-9０-９一二三四五六七八九十百零〇]+\s*(号楼|栋|幢|单元|室|号|楼|户)")


def coarse_text(text: str | None) -> str:
    """Text for another program: digit runs (phones, IDs), house numbers and the way residents name
    people (王某某, 李师傅) masked. Residents' own names are never stored; deputies' are never read."""
    if not text:
        return ""
    text = _LONG_DIGITS.sub("＊＊＊", text)
    text = _SURNAME_MOU.sub(lambda m: "＊" + m.group(1), text)
    return _HOUSE.sub(lambda m: "＊" + m.group(1), text)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def open_or_closed(status: str) -> str:
    """The Open311 status: `closed` once the handler reported it done (办结) or it ended otherwise."""
    return "closed" if status == Status.CLOSED or status in FINAL_STATUSES else "open"


def _label(event: CaseEvent) -> str | None:
    """A public line of the timeline (what was done, by whom in office), or None for private ones."""
    detail = event.detail or {}
    if event.action in TRANSITIONS:
        line = TRANSITIONS[event.action].label
        if event.action == "dispatch" and detail.get("department"):
            line += f"：转交{detail['department']}办理"
        elif event.action == "close" and detail.get("summary"):
            line += f"：{coarse_text(detail['summary'])}"
        elif event.action == "reply":
            line += "：承办人已答复"
        elif event.action in ("rate_satisfied", "rate_unsatisfied") and detail.get("rating"):
            line = f"群众评价：{RATING_LABELS.get(detail['rating'], '')}"
        return line
    if event.action == "submit":
        return "已登记"
    if event.action == "external_update" and detail.get("text"):
        return f"{detail.get('platform') or '对方平台'}：{detail['text']}"
    if event.action == "handoff":
        return f"已转{detail.get('platform') or '其他平台'}办理"
    return None


def timeline(session: Session, case: Case) -> list[dict[str, Any]]:
    events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                             .order_by(CaseEvent.id)).all()
    public = []
    for event in events:
        line = _label(event)
        if line:
            public.append({"at": _iso(event.at), "note": line, "status": open_or_closed(
                event.to_status or case.status)})
    return public


def _agency(session: Session, case: Case) -> str:
    if case.handler_kind == "department" and case.department_id:
        return session.get(Department, case.department_id).name
    if case.handler_kind == "deputy":
        return "网格人大代表"
    return "人大代表联络工作室"


def _location(session: Session, case: Case) -> dict[str, Any]:
    grid = session.get(Grid, case.grid_id) if case.grid_id else None
    where: dict[str, Any] = {"address": grid.name if grid else None, "address_id": grid.code if grid else None,
                             "lat": None, "long": None}
    location = case.location or {}
    lat, lng = location.get("latitude", location.get("lat")), location.get("longitude", location.get("lng"))
    if isinstance(lat, (int, float)) and isinstance(lng, (int, float)):
        where["lat"], where["long"] = round(float(lat), 2), round(float(lng), 2)
    return where


def request_view(session: Session, case: Case) -> dict[str, Any]:
    """One case as an Open311 service request, with the extensions (deputy, round, rating, timeline)."""
    notes = timeline(session, case)
    deputy = session.get(Deputy, case.deputy_id) if case.deputy_id else None
    rating = session.scalar(select(Rating.value).where(
        Rating.case_id == case.id, Rating.resident_id == case.resident_id)
        .order_by(Rating.round.desc()).limit(1))
    view = {"service_request_id": case.number, "status": open_or_closed(case.status),
            "status_notes": notes[-1]["note"] if notes else None,
            **_service_of(case), "description": coarse_text(case.text),
            "agency_responsible": _agency(session, case), "service_notice": STATUS_LABELS.get(case.status),
            "requested_datetime": _iso(case.created_at), "updated_datetime": _iso(case.updated_at),
            "expected_datetime": _iso(case.deadline), **_location(session, case), "zipcode": None,
            "media_url": None,
            "extended_attributes": {
                "deputy": {"level": deputy.level, "grid": _location(session, case)["address"]} if deputy else None,
                "round": case.round, "rating": rating, "status_detail": case.status,
                "timeline": notes}}
    return view


def _parse_time(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(f"{name} must be a W3C datetime such as 2026-01-01T00:00:00Z", name) from None
    if moment.tzinfo is None:
        raise _invalid(f"{name} needs a time zone (Z or +08:00)", name)
    return moment


def list_requests(session: Session, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET requests with the spec's filters: service_request_id (overrides the rest), service_code,
    start_date/end_date (at most 90 days; default the last 90), status (open, closed)."""
    query = select(Case).where(Case.merged_into_id.is_(None))
    ids = [i.strip() for i in (params.get("service_request_id") or "").split(",") if i.strip()]
    if ids:
        if len(ids) > 100:
            raise _invalid("at most 100 service_request_id at once", "service_request_id")
        query = query.where(Case.number.in_(ids))
    else:
        now = utcnow()
        end = _parse_time(params["end_date"], "end_date") if params.get("end_date") else now
        start = (_parse_time(params["start_date"], "start_date") if params.get("start_date")
                 else end - DEFAULT_RANGE)
        if start > end:
            raise _invalid("start_date is after end_date", "start_date")
        if end - start > DEFAULT_RANGE:
            raise _invalid("the date range may not span more than 90 days", "end_date")
        query = query.where(Case.created_at >= start, Case.created_at <= end)
    rows = session.scalars(query.order_by(Case.created_at.desc()).limit(MAX_RESULTS)).all()
    codes = {c.strip() for c in (params.get("service_code") or "").split(",") if c.strip()}
    statuses = {s.strip() for s in (params.get("status") or "").split(",") if s.strip()}
    if statuses - {"open", "closed"}:
        raise _invalid("status is open or closed", "status")
    if codes:
        known = {s["service_code"] for s in services()}
        if codes - known:
            raise _invalid(f"service_code {sorted(codes - known)[0]} not found", "service_code")
    found = []
    for case in rows:
        if ids == [] and codes and _service_of(case)["service_code"] not in codes:
            continue
        if not ids and statuses and open_or_closed(case.status) not in statuses:
            continue
        found.append(request_view(session, case))
    return found


def get_request(session: Session, number: str) -> dict[str, Any]:
    case = session.scalar(select(Case).where(Case.number == number))
    if case is None:
        raise Open311Error("service_request_id not found", kind=NOT_FOUND, code="not_found")
    return request_view(session, case)


def token_lookup(session: Session, partner: Partner, token: str) -> dict[str, Any]:
    link = session.scalar(select(ExternalLink).where(ExternalLink.partner_id == partner.id,
                                                     ExternalLink.token == token))
    if link is None:
        raise Open311Error("token not found", kind=NOT_FOUND, code="not_found")
    return {"service_request_id": link.case.number, "token": link.token}


def jurisdiction(session: Session, partner: Partner, value: str | None) -> County:
    """The partner's county; a jurisdiction_id naming another county is refused (never served)."""
    county = session.get(County, partner.county_id)
    if value and value.strip() != county.code:
        raise Open311Error(f"jurisdiction_id {value} not found", kind=NOT_FOUND, code="jurisdiction_not_found")
    return county


# ------------------------------------------------------------------------------------- requests (in)
def file_request(session: Session, partner: Partner, params: dict[str, str]) -> dict[str, Any]:
    """POST requests from a partner: a case like any other, filed under the partner's stand-in
    resident (names, phones and e-mails the caller sends are not kept). A repeated
    `attribute[handoff_token]` answers the case already filed for it."""
    code = (params.get("service_code") or "").strip()
    if not code:
        raise _invalid("service_code is required", "service_code")
    service(code)
    description = (params.get("description") or "").strip()
    if not description:
        raise _invalid("description is required", "description")
    if len(description) > 4000:
        raise _invalid("description is longer than 4000 characters", "description")
    location = _posted_location(params)
    token = (params.get(f"attribute[{TOKEN_ATTRIBUTE}]") or "").strip()
    if len(token) > 64:
        raise _invalid("handoff_token is longer than 64 characters", TOKEN_ATTRIBUTE)
    if token:
        existing = session.scalar(select(ExternalLink).where(ExternalLink.partner_id == partner.id,
                                                             ExternalLink.token == token))
        if existing is not None:
            return _filed_answer(session, existing.case, existing.token)
    else:
        token = secrets.token_urlsafe(16)
    resident = _stand_in(session, partner)
    try:
        with session.begin_nested():  # the same token posted twice at once: one files, one reads
            case = _open_incoming(session, partner, params, code, description, location, token, resident)
    except IntegrityError:
        existing = session.scalar(select(ExternalLink).where(ExternalLink.partner_id == partner.id,
                                                             ExternalLink.token == token))
        if existing is None:
            raise
        return _filed_answer(session, existing.case, existing.token)
    return _filed_answer(session, case, token)


def _open_incoming(session: Session, partner: Partner, params: dict[str, str], code: str,
                   description: str, location: dict[str, float] | None, token: str,
                   resident: Resident) -> Case:
    address = (params.get("address_string") or "").strip()[:200]
    known = directory.get(session)
    grid_id = known.grid_in_text(f"{address} {description}")
    grid = session.get(Grid, grid_id) if grid_id else None
    case = cases.open_case(session, resident, description, channel="open311", grid=grid)
    if location:
        case.location = location
    category = service(code)["category"]
    if category and category != case.category:  # the partner's category stands over our guess
        cases.recategorize(session, case, Actor.system(), category, reason=f"{partner.name}指定的类别")
    session.add(ExternalLink(case=case, direction=INCOMING, token=token, partner_id=partner.id,
                             state=FILED, external_id=(params.get("external_id") or "")[:64] or None))
    cases.record_event(session, case, Actor.system(), "handoff_received", platform=partner.name,
                       service_code=code)
    session.flush()
    return case


def _filed_answer(session: Session, case: Case, token: str) -> dict[str, Any]:
    return {"service_request_id": case.number, "token": token,
            "service_notice": f"已登记，由{_agency(session, case)}办理", "account_id": None}


def _posted_location(params: dict[str, str]) -> dict[str, float] | None:
    lat, lng = params.get("lat"), params.get("long")
    if not lat and not lng:
        if not (params.get("address_string") or params.get("address_id")):
            raise _invalid("a location is required: lat and long, address_string or address_id", "lat")
        return None
    try:
        latitude, longitude = float(lat), float(lng)
    except (TypeError, ValueError):
        raise _invalid("lat and long must be numbers", "lat") from None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise _invalid("lat or long is out of range", "lat")
    return {"latitude": latitude, "longitude": longitude}


def rate_request(session: Session, partner: Partner, number: str, value: str,
                 comment: str | None = None) -> dict[str, Any]:
    """Extension: the partner that filed a request passes on its resident's rating (评价)."""
    if value not in RATING_LABELS:
        raise _invalid("rating is satisfied, basically_satisfied or unsatisfied", "rating")
    case = session.scalar(select(Case).where(Case.number == number))
    link = case and session.scalar(select(ExternalLink).where(
        ExternalLink.case_id == case.id, ExternalLink.partner_id == partner.id,
        ExternalLink.direction == INCOMING))
    if link is None:
        raise Open311Error("service_request_id not found", kind=NOT_FOUND, code="not_found")
    if case.status != Status.CLOSED:
        raise Open311Error("the request is not closed, or its rating was given", kind=CONFLICT,
                           code="not_closed")
    cases.rate(session, case, session.get(Resident, case.resident_id), value, channel="open311",
               comment=comment)
    return request_view(session, case)


def _stand_in(session: Session, partner: Partner) -> Resident:
    if partner.resident_id is not None:
        return session.get(Resident, partner.resident_id)
    resident = Resident(subscribed=False)
    session.add(resident)
    session.flush()
    partner.resident_id = resident.id
    return resident


def log_call(session: Session, partner: Partner, method: str, path: str, status: int) -> None:
    session.add(PartnerCall(partner_id=partner.id, method=method, path=path[:200], status=status))


# --------------------------------------------------------------------------------------- partner keys
def issue_key(session: Session, name: str, *, created_by: int | None = None) -> tuple[Partner, str]:
    """A new partner key for the session's county: the key itself is returned once, never stored."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise _invalid("合作方名称不能为空，最长 100 字", "name")
    key = access.new_key()
    partner = Partner(name=name, key_hash=access.key_hash(key), key_prefix=key[:12], created_by=created_by)
    session.add(partner)
    session.flush()
    return partner, key


def revoke_key(session: Session, public_id: str) -> Partner:
    partner = session.scalar(select(Partner).where(Partner.public_id == public_id))
    if partner is None:
        raise Open311Error("合作方不存在", kind=NOT_FOUND, code="not_found")
    if partner.revoked_at is None:
        partner.revoked_at = utcnow()
    return partner


def partners(session: Session) -> list[Partner]:
    return list(session.scalars(select(Partner).order_by(Partner.id)))


# -------------------------------------------------------------------------------------- hand-off out
def set_target(session: Session, name: str, endpoint: str, api_key: str, *, category: str | None = None,
               service_code: str | None = None, jurisdiction_id: str | None = None) -> HandoffTarget:
    """Configure (or replace) where this county hands cases of `category` (None: any category)."""
    if not endpoint.startswith(("http://", "https://")):
        raise _invalid("endpoint must be an http(s) URL ending in /v2", "endpoint")
    if category is not None and category not in get_routing_config().categories:
        raise _invalid(f"unknown category {category}", "category")
    target = session.scalar(select(HandoffTarget).where(HandoffTarget.category.is_(None) if category is None
                                                        else HandoffTarget.category == category))
    if target is None:
        target = HandoffTarget(category=category, name=name, endpoint=endpoint, api_key=api_key)
        session.add(target)
    target.name, target.endpoint, target.api_key = name, endpoint.rstrip("/"), api_key
    target.service_code, target.jurisdiction_id, target.removed_at = service_code, jurisdiction_id, None
    if target.callback_secret is None:
        target.callback_secret = new_callback_secret()
    session.flush()
    return target


def new_callback_secret() -> str:
    return secrets.token_hex(32)


def rotate_callback_secret(session: Session, target_id: int) -> HandoffTarget:
    """A new signing secret for a target's status pushes (the old one stops working at once)."""
    target = session.get(HandoffTarget, target_id)
    if target is None:
        raise Open311Error("转办平台不存在", kind=NOT_FOUND, code="not_found")
    target.callback_secret = new_callback_secret()
    return target


def remove_target(session: Session, target_id: int) -> HandoffTarget:
    """Stop handing new cases to a target (links already filed keep being polled)."""
    target = session.get(HandoffTarget, target_id)
    if target is None:
        raise Open311Error("转办平台不存在", kind=NOT_FOUND, code="not_found")
    if target.removed_at is None:
        target.removed_at = utcnow()
    return target


def targets(session: Session) -> list[HandoffTarget]:
    return list(session.scalars(select(HandoffTarget).order_by(HandoffTarget.category.nulls_last(),
                                                                HandoffTarget.id)))


def target_for(session: Session, category: str | None) -> HandoffTarget | None:
    rows = session.scalars(select(HandoffTarget).where(HandoffTarget.removed_at.is_(None))).all()
    exact = [t for t in rows if t.category == category and category is not None]
    fallback = [t for t in rows if t.category is None]
    return (exact or fallback or [None])[0]


def hand_off(session: Session, case: Case, actor: Actor, target: HandoffTarget | None = None) -> ExternalLink:
    """直通车: hand `case` to its category's target. The link (with its token) is written in this
    transaction; a worker files it after the commit (`file_link`). Our case stays ours: the handler
    keeps 督单 and the resident rates it here."""
    target = target or target_for(session, case.category)
    if target is None:
        raise Open311Error("no hand-off target is configured for this category", kind=CONFLICT,
                           code="no_target")
    if session.scalar(select(ExternalLink.id).where(ExternalLink.case_id == case.id)) is not None:
        raise Open311Error("the case is already linked to another platform", kind=CONFLICT, code="linked")
    if case.status in (Status.ASSIGNED, Status.RETURNED, Status.REOPENED):
        cases.accept(session, case, actor)
    elif case.status not in (Status.ACCEPTED, Status.REPLIED):
        raise Open311Error("the case cannot be handed off in its status", kind=CONFLICT, code="status")
    link = ExternalLink(case=case, direction=OUTGOING, token=secrets.token_urlsafe(16), target=target,
                        state=PENDING, next_poll_at=utcnow())
    session.add(link)
    cases.record_event(session, case, actor, "handoff", platform=target.name)
    session.flush()
    return link


def _request_body(session: Session, case: Case, link: ExternalLink,
                  callback_base: str | None = None) -> dict[str, str]:
    target = link.target
    where = _location(session, case)
    body = {"api_key": target.api_key, "service_code": target.service_code or _service_of(case)["service_code"],
            "description": coarse_text(case.text), f"attribute[{TOKEN_ATTRIBUTE}]": link.token,
            "address_string": where["address"] or "", "external_id": case.number}
    if where["lat"] is not None:
        body["lat"], body["long"] = str(where["lat"]), str(where["long"])
    if target.jurisdiction_id:
        body["jurisdiction_id"] = target.jurisdiction_id
    if callback_base and target.callback_secret:
        body[f"attribute[{CALLBACK_ATTRIBUTE}]"] = callback_url(callback_base, link.token)
    return body


def callback_url(base: str, token: str) -> str:
    return base.rstrip("/") + CALLBACK_PATH + token


def file_link(link_id: int, *, timeout: float, callback_base: str | None = None) -> str:
    """Post one pending hand-off to its target (a worker job; safe to run again: same token).

    The attempt is counted and committed before the call; the answer is stored after it. A timeout
    or an error leaves the link pending with the error, for the sweep to retry."""
    with db.session_scope() as session:
        link = session.get(ExternalLink, link_id)
        if link is None or link.direction != OUTGOING or link.state != PENDING:
            return "nothing to do"
        link.attempts += 1
        link.next_poll_at = utcnow() + RETRY_AFTER
        url, body = f"{link.target.endpoint}/requests.json", _request_body(session, link.case, link, callback_base)
    try:
        response = requests.post(url, data=body, timeout=timeout)
        answer = response.json() if response.status_code in (200, 201) else None
        external_id = answer[0]["service_request_id"] if answer else None
        error = None if external_id else f"HTTP {response.status_code}"
    except (requests.RequestException, ValueError, LookupError, TypeError) as exc:
        external_id, error = None, type(exc).__name__
    with db.session_scope() as session:
        link = session.get(ExternalLink, link_id, with_for_update=True)
        if link.state != PENDING:
            return link.state
        if external_id is None:
            link.last_error = error
            log.warning("hand-off %s to %s not filed (attempt %s): %s", link_id, link.target.name,
                        link.attempts, error)
            return "retry"
        link.external_id, link.state, link.last_error = str(external_id), FILED, None
        link.next_poll_at = utcnow()
        cases.record_event(session, link.case, Actor.system(), "handoff_filed", platform=link.target.name,
                           external_id=link.external_id)
    return "filed"


def poll_link(link_id: int, *, timeout: float) -> str:
    """Read a filed hand-off's status on its target; new notes go onto our timeline, a close there
    closes ours (our resident's rating prompt runs), and our rating goes back once given."""
    with db.session_scope() as session:
        link = session.get(ExternalLink, link_id)
        if link is None or link.direction != OUTGOING or link.state not in (FILED, CLOSED):
            return "nothing to do"
        target, external_id, state = link.target, link.external_id, link.state
        endpoint, key, platform = target.endpoint, target.api_key, target.name
        rating = None
        if state == CLOSED:
            case = link.case
            if case.status == Status.CLOSED:  # our resident has not rated yet
                link.next_poll_at = utcnow() + POLL_EVERY
                return "waiting for our rating"
            given = session.scalar(select(Rating).where(
                Rating.case_id == case.id, Rating.resident_id == case.resident_id)
                .order_by(Rating.round.desc()).limit(1))
            if given is None:  # 未评价: nothing to pass on
                link.state, link.next_poll_at = RATED, None
                return "unrated"
            rating = (given.value, given.comment)
    try:
        if state == CLOSED:
            response = requests.post(f"{endpoint}/requests/{external_id}/rating.json",
                                     data={"api_key": key, "rating": rating[0], "comment": rating[1] or ""},
                                     timeout=timeout)
            ok = response.status_code in (200, 409)  # 409: given already (a retried call)
            remote = None
        else:
            response = requests.get(f"{endpoint}/requests/{external_id}.json", params={"api_key": key},
                                    timeout=timeout)
            ok = response.status_code == 200
            remote = response.json()[0] if ok else None
    except (requests.RequestException, ValueError, LookupError) as exc:
        ok, remote = False, None
        log.warning("hand-off %s: %s unreachable: %s", link_id, platform, type(exc).__name__)
    with db.session_scope() as session:
        link = session.get(ExternalLink, link_id, with_for_update=True)
        link.next_poll_at = utcnow() + POLL_EVERY
        if not ok:
            return "retry"
        if state == CLOSED:
            if rating[0] == "unsatisfied":
                link.state = FILED  # 二次办理 there too: poll again
            else:
                link.state, link.next_poll_at = RATED, None
            return "rating sent"
        return _apply_remote(session, link, remote)


def _apply_remote(session: Session, link: ExternalLink, remote: dict[str, Any]) -> str:
    case = cases.lock_case(session, link.case_id)
    notes = (remote.get("extended_attributes") or {}).get("timeline")
    if isinstance(notes, list):  # this system's extension: every public line, in order
        fresh = notes[link.notes_seen:]
        link.notes_seen = max(link.notes_seen, len(notes))
    else:  # a plain Open311 platform: its latest status_notes, when they change
        latest = session.scalar(select(CaseEvent.detail).where(
            CaseEvent.case_id == case.id, CaseEvent.action == "external_update")
            .order_by(CaseEvent.id.desc()).limit(1)) or {}
        note = {"note": remote.get("status_notes"), "status": remote.get("status")}
        fresh = [note] if note["note"] and (latest.get("text"), latest.get("external_status")) != (
            str(note["note"])[:500], note["status"]) else []
    for note in fresh:
        text = str((note or {}).get("note") or "")[:500]
        if text:
            cases.record_event(session, case, Actor.system(), "external_update", platform=link.target.name,
                               text=text, external_status=note.get("status"))
    link.external_status = remote.get("status")
    if remote.get("status") == "closed" and case.status not in (Status.CLOSED, *FINAL_STATUSES):
        if case.status in (Status.ASSIGNED, Status.RETURNED, Status.REOPENED):
            cases.accept(session, case, Actor.system())
        summary = coarse_text(str(remote.get("status_notes") or "")) or f"{link.target.name}已办结"
        cases.close(session, case, Actor.system(), f"{link.target.name}办结：{summary}"[:1000])
        link.state = CLOSED
        return "closed"
    return "polled"


# ---------------------------------------------------------------------------------- status callbacks
class CallbackRefused(Open311Error):
    """A status push not taken: unsigned, badly signed, stale, replayed, or for no link we know."""


def sign_callback(secret: str, timestamp: str, body: bytes) -> str:
    """The signature a target sends in `X-Open311-Signature`: hex HMAC-SHA256 over `timestamp.body`."""
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def receive_callback(session: Session, token: str, body: bytes, timestamp: str | None,
                     signature: str | None, now: datetime | None = None) -> str:
    """A target pushes a status change of the request we filed under `token`. Checked in this order,
    each refusal changing nothing: a link and its target's secret (else 403, the same answer as a bad
    signature so tokens cannot be probed), the signature, the timestamp (within CALLBACK_TOLERANCE),
    a replay of an accepted push (409), the body (400). The update is applied by `_apply_remote`,
    exactly as a poll's answer is; a push with nothing new changes nothing."""
    now = now or utcnow()
    refused = CallbackRefused("the callback is not signed by the hand-off target", kind=FORBIDDEN,
                              code="bad_signature")
    if not token or len(token) > 64 or not timestamp or not signature or len(body) > MAX_CALLBACK_BODY:
        raise refused
    with tenant.widened(session, tenant.all_counties("find the hand-off a status callback names")):
        link = session.scalar(select(ExternalLink).where(ExternalLink.token == token,
                                                         ExternalLink.direction == OUTGOING))
        secret = link.target.callback_secret if link is not None and link.target is not None else None
    if link is None or not secret:
        raise refused
    tenant.switch(session, tenant.county(link.county_id))
    signature = signature.strip().removeprefix("sha256=").lower()
    if len(timestamp) > 20 or not hmac.compare_digest(sign_callback(secret, timestamp, body), signature):
        raise refused
    try:
        signed_at = datetime.fromtimestamp(int(timestamp), tz=now.tzinfo)
    except (ValueError, OverflowError, OSError):
        raise refused from None
    if abs(now - signed_at) > CALLBACK_TOLERANCE:
        raise CallbackRefused("the callback's timestamp is stale", kind=FORBIDDEN, code="stale")
    link = session.get(ExternalLink, link.id, with_for_update=True)
    if session.scalar(select(CallbackReceipt.id).where(CallbackReceipt.link_id == link.id,
                                                       CallbackReceipt.signature == signature)):
        raise CallbackRefused("this callback was received already", kind=CONFLICT, code="replayed")
    try:
        remote = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("the body is not JSON") from None
    if isinstance(remote, list) and len(remote) == 1:
        remote = remote[0]
    if not isinstance(remote, dict) or remote.get("status") not in ("open", "closed"):
        raise _invalid("the body is one service request with status open or closed", "status")
    named = remote.get("service_request_id")
    if named is not None and link.external_id is not None and str(named) != link.external_id:
        raise _invalid("service_request_id is not the request filed under this token", "service_request_id")
    if link.state == FILED:
        result = _apply_remote(session, link, remote)
    elif link.state in (CLOSED, RATED):  # closed there already: a repeated close changes nothing
        result = "closed already"
    else:  # not filed yet (our filing's answer was lost): the retry files it, then this applies
        raise CallbackRefused("the hand-off is not filed yet; send it again later", kind=CONFLICT,
                              code="not_filed")
    session.add(CallbackReceipt(link_id=link.id, signature=signature, signed_at=signed_at, result=result))
    session.flush()
    return result


# ------------------------------------------------------------------------------------------- sweeps
def due_links(session: Session, now: datetime | None = None) -> list[tuple[int, str, datetime]]:
    """Outgoing links with something to do now: (id, state, when it fell due)."""
    now = now or utcnow()
    rows = session.execute(select(ExternalLink.id, ExternalLink.state, ExternalLink.next_poll_at).where(
        ExternalLink.direction == OUTGOING, ExternalLink.next_poll_at <= now,
        ExternalLink.state.in_((PENDING, FILED, CLOSED))).order_by(ExternalLink.id).limit(200)).all()
    return [(row.id, row.state, row.next_poll_at) for row in rows]


def auto_hand_off(session: Session, now: datetime | None = None) -> list[int]:
    """Hand each new case of a category with a target (and not come in from a partner) to it."""
    now = now or utcnow()
    if not session.scalars(select(HandoffTarget.id).where(HandoffTarget.removed_at.is_(None))).first():
        return []
    linked = select(ExternalLink.case_id)
    fresh = session.scalars(select(Case).where(
        Case.status == Status.ASSIGNED, Case.created_at >= now - timedelta(days=2),
        Case.id.not_in(linked)).order_by(Case.id).limit(100)).all()
    handed = []
    for case in fresh:
        target = target_for(session, case.category)
        if target is not None:
            handed.append(hand_off(session, case, Actor.system(), target).id)
    return handed


def sweep(*, timeout: float) -> int:
    """Run once per county (the scheduler): hand new cases off, file pending links, poll filed ones."""
    with db.session_scope() as session:
        auto_hand_off(session)
        due = due_links(session)
    scope = tenant.current()
    done = 0
    for link_id, state, _due_at in due:
        with tenant.use(scope):
            result = (file_link if state == PENDING else poll_link)(link_id, timeout=timeout)
        done += result not in ("nothing to do", "retry")
    return done
