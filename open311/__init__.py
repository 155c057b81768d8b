"""The Open311 GeoReport v2 interface at /open311/v2 (JSON and XML, by the path's extension).

Formats and HTTP live here; what a service or a request says comes from `liaison.interop`. Every
refusal is the spec's error list (`[{"code": 400, "description": "..."}]`) with a 4xx status.
"""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from typing import Any

from flask import Blueprint, Response, json, request
from werkzeug.exceptions import HTTPException

from liaison.core import db, ratelimit, tenant
from liaison.core.errors import DomainError
from liaison.interop import access
from liaison.interop import service as interop

log = logging.getLogger(__name__)
bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
FORMATS = ("json", "xml")
KIND_STATUS = {"invalid": 400, "not_found": 404, "forbidden": 403, "conflict": 409, "too_large": 413,
               "rate_limited": 429, "unavailable": 503}


class Refused(Exception):
    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status, self.description = status, description


# ------------------------------------------------------------------------------------------ formats
def _xml_value(parent: ET.Element, name: str, value: Any) -> None:
    node = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, item in value.items():
            _xml_value(node, key, item)
    elif isinstance(value, list):
        child = {"attributes": "attribute", "values": "value", "timeline": "note", "formats": "format",
                 "endpoints": "endpoint"}.get(name, "item")
        for item in value:
            _xml_value(node, child, item)
    elif isinstance(value, bool):
        node.text = "true" if value else "false"
    elif value is not None:
        node.text = str(value)


def to_xml(root: str, item: str | None, data: Any) -> bytes:
    """The spec's XML: a list under `root` with one `item` element each, or one document."""
    top = ET.Element(root)
    if item is None:
        for key, value in data.items():
            _xml_value(top, key, value)
    else:
        for entry in data:
            _xml_value(top, item, entry)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(top, encoding="utf-8")


def answer(fmt: str, data: Any, root: str, item: str | None, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(to_xml(root, item, data), status=status, mimetype="text/xml")
    body = json.dumps(data, ensure_ascii=False)
    return Response(body, status=status, mimetype="application/json")


def errors(fmt: str, status: int, description: str) -> Response:
    return answer(fmt if fmt in FORMATS else "json", [{"code": status, "description": description}],
                  "errors", "error", status)


def _fmt(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Refused(400, f"format {fmt} is not supported: use .json or .xml")
    return fmt


def _params() -> dict[str, str]:
    merged = dict(request.args.items())
    if request.method == "POST":
        merged.update(request.form.items())
    if any(len(k) > 100 or len(v) > 8000 for k, v in merged.items()):
        raise Refused(400, "a parameter is too long")
    return merged


# ------------------------------------------------------------------------------------- unit of work
def _with_partner(fmt: str, work):
    """Authenticate the partner key, count the call against its limit, run `work(session, partner,
    params)` in the partner's county, and log the call with its answer's status. A refusal rolls
    the work back (a savepoint) but keeps the log line."""
    fmt = _fmt(fmt)
    params = _params()
    with tenant.use(tenant.all_counties("Open311 call before its key is known")), db.session_scope() as session:
        partner = access.authenticate(session, params.get("api_key"))
        try:
            if not ratelimit.hit(ratelimit.OPEN311_PER_PARTNER, partner.public_id):
                raise Refused(429, "too many requests for this api_key; try again later")
            interop.jurisdiction(session, partner, params.get("jurisdiction_id"))
            with session.begin_nested():
                response = work(session, partner, params)
        except DomainError as error:
            response = errors(fmt, KIND_STATUS.get(error.kind, 400), error.message or error.code)
        except Refused as refused:
            response = errors(fmt, refused.status, refused.description)
        interop.log_call(session, partner, request.method, request.path, response.status_code)
        log.info("open311 %s %s partner=%s status=%s", request.method, request.path, partner.key_prefix,
                 response.status_code)
    return response


@bp.errorhandler(Refused)
def _refused(error: Refused):
    return errors(_request_fmt(), error.status, error.description)


@bp.errorhandler(DomainError)
def _domain(error: DomainError):
    return errors(_request_fmt(), KIND_STATUS.get(error.kind, 400), error.message or error.code)


@bp.errorhandler(HTTPException)
def _http(error: HTTPException):
    return errors(_request_fmt(), error.code or 400, error.description or error.name)


def _request_fmt() -> str:
    return "xml" if request.path.endswith(".xml") else "json"


# ---------------------------------------------------------------------------------------- endpoints
@bp.get("/discovery.<fmt>")
def discovery(fmt):
    fmt = _fmt(fmt)
    base = request.url_root.rstrip("/") + bp.url_prefix
    data = {"changeset": "2026-12-01T00:00:00Z", "contact": "所在县人大常委会代表工作室",
            "key_service": "api_key 由县人大代表工作室签发和停用", "endpoints": [{
                "specification": "http://wiki.open311.org/GeoReport_v2", "url": base,
                "changeset": "2026-12-01T00:00:00Z", "type": "production", "formats": [
                    "application/json", "text/xml"]}]}
    return answer(fmt, data, "discovery", None)


def _public_service(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "category"}


@bp.get("/services.<fmt>")
def services(fmt):
    fmt = _fmt(fmt)
    return answer(fmt, [_public_service(s) for s in interop.services()], "services", "service")


@bp.get("/services/<code>.<fmt>")
def service_definition(code, fmt):
    fmt = _fmt(fmt)
    return answer(fmt, interop.service_definition(code), "service_definition", None)


@bp.get("/requests.<fmt>")
def list_requests(fmt):
    return _with_partner(fmt, lambda s, p, params: answer(
        fmt, interop.list_requests(s, params), "service_requests", "request"))


@bp.post("/requests.<fmt>")
def post_request(fmt):
    def work(session, partner, params):
        return answer(fmt, [interop.file_request(session, partner, params)], "service_requests", "request",
                      201)

    return _with_partner(fmt, work)


@bp.get("/requests/<number>.<fmt>")
def get_request(number, fmt):
    return _with_partner(fmt, lambda s, p, params: answer(
        fmt, [interop.get_request(s, number)], "service_requests", "request"))


@bp.post("/requests/<number>/rating.<fmt>")
def rate_request(number, fmt):
    def work(session, partner, params):
        view = interop.rate_request(session, partner, number, params.get("rating") or "",
                                    (params.get("comment") or "")[:500] or None)
        return answer(fmt, [view], "service_requests", "request")

    return _with_partner(fmt, work)


@bp.get("/tokens/<token>.<fmt>")
def token(token, fmt):
    return _with_partner(fmt, lambda s, p, params: answer(
        fmt, [interop.token_lookup(s, p, token)], "service_requests", "request"))


@bp.post("/callbacks/<token>")
def status_callback(token):
    """A hand-off target pushes a status change of the request we filed with it (signed)."""
    body = request.get_data(cache=False)
    with tenant.use(tenant.all_counties("status callback before its link is known")), \
            db.session_scope() as session:
        result = interop.receive_callback(session, token, body, request.headers.get("X-Open311-Timestamp"),
                                          request.headers.get("X-Open311-Signature"))
    log.info("open311 callback result=%s", result)
    return answer("json", {"result": result}, "callback", None)


def init_app(app) -> None:
    app.register_blueprint(bp)
