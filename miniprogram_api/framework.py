"""The plumbing every endpoint shares: declaration (`endpoint`), authentication, request parsing and
validation, the unit of work, idempotency keys, response serialisation and JSON errors.

Each view is declared once with its method, path, roles and models; the same declaration registers the
Flask route and feeds the OpenAPI document, so the two cannot drift apart.
"""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import Blueprint, Response, current_app, g, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError

from liaison.core import db, tenant
from liaison.core import errors as domain
from liaison.core.errors import DomainError
from liaison.people import service as accounts
from liaison.people.service import Principal
from liaison.tenancy import service as tenancy
from liaison.wechat.errors import WeChatAPIError

log = logging.getLogger(__name__)

bp = Blueprint("miniprogram_api", __name__, url_prefix="/api")

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 100
MAX_JSON_DEPTH = 32  # no request model nests deeper than a few levels

ALL_ROLES = ("resident", "deputy", "department", "staff")
ACCOUNT_ROLES = ("deputy", "department", "staff")


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message", "field"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def not_found(what: str = "诉求") -> ApiError:
    return ApiError(404, "not_found", f"{what}不存在")


def require_county_staff(ctx, message: str = "只有县级工委账号可以登记") -> None:
    """County-wide changes (registry, classifier rules) are for county staff, not a station's."""
    if ctx.principal.account.station_id is not None:
        raise forbidden(message, "county_staff_only")


def forbidden(message: str = "无权执行此操作", code: str = "forbidden") -> ApiError:
    return ApiError(403, code, message)


def error_response(error: ApiError) -> Response:
    body = {"error": {"code": error.code, "message": error.message, "field": error.field}}
    return _json(body, error.status)


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    response = current_app.response_class(json.dumps(body, ensure_ascii=False, default=str),
                                          status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


@dataclass
class Endpoint:
    """One declared API operation (also one OpenAPI operation)."""

    method: str
    path: str  # Flask syntax, relative to /api
    name: str
    summary: str
    roles: tuple[str, ...] | None  # None: no login needed
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    tag: str = "api"
    idempotent: bool = False
    path_params: list[str] = field(default_factory=list)
    # Re-checks that the caller may still see the object in the path, `visible(ctx, **path_values)`
    # (raises NotFound or an ApiError): run before a stored Idempotency-Key answer is replayed.
    visible: Callable[..., Any] | None = None

    @property
    def full_path(self) -> str:
        return bp.url_prefix + self.path


ENDPOINTS: list[Endpoint] = []

# The one place a domain refusal's kind becomes an HTTP status (every kind in liaison.core.errors.KINDS).
DOMAIN_ERROR_STATUS = {
    domain.INVALID: 422, domain.NOT_FOUND: 404, domain.FORBIDDEN: 403, domain.CONFLICT: 409,
    domain.TOO_LARGE: 413, domain.UNSUPPORTED: 415, domain.RATE_LIMITED: 429, domain.UNAVAILABLE: 503,
}


def domain_error(error: DomainError) -> ApiError:
    """A domain refusal as the API answers it: the kind's status, the same code, message and field."""
    return ApiError(DOMAIN_ERROR_STATUS[error.kind], error.code, error.message, error.field)


def endpoint(method: str, path: str, *, summary: str, roles: tuple[str, ...] | None,
             body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
             response: Any = None, status: int = 200, tag: str = "api",
             visible: Callable[..., Any] | None = None) -> Callable:
    """Declare a view. The view is called as `view(ctx, **path_params)` and returns a pydantic model
    (or a plain JSON-able value) that is validated against `response`.

    `visible(ctx, **path_params)` repeats the view's access check on the object in the path; a POST
    with path parameters needs one, because a stored Idempotency-Key answer is replayed only to a
    caller who may still see that object (tests/test_api_authz.py checks every such endpoint has it).
    """

    def decorator(view: Callable) -> Callable:
        params = [part[1:-1].split(":")[-1] for part in path.split("/") if part.startswith("<")]
        spec = Endpoint(method=method, path=path, name=view.__name__, summary=summary, roles=roles,
                        body=body, query=query, response=response, status=status, tag=tag,
                        idempotent=method == "POST" and roles is not None, path_params=params,
                        visible=visible)
        ENDPOINTS.append(spec)

        @functools.wraps(view)
        def handler(**path_values):
            try:
                return _run(spec, view, path_values)
            except ApiError as error:
                return error_response(error)

        bp.add_url_rule(path, endpoint=view.__name__, view_func=handler, methods=[method])
        return view

    return decorator


@dataclass
class Context:
    """What a view receives: the unit of work's session, the caller and the parsed input."""

    session: Any
    principal: Principal | None
    body: Any = None
    query: Any = None

    @property
    def settings(self):
        return current_app.config["SETTINGS"]


def _run(spec: Endpoint, view: Callable, path_values: dict[str, str]) -> Response:
    # The token names a row in some county: find it across counties, then work in the caller's.
    with tenant.use(AUTHENTICATION_SCOPE):
        return _run_in_scope(spec, view, path_values)


# Before the caller is known: every county is read (an account is found by its public id or openid in
# any county); a row written here (a new mini-program resident) lands in the default county unless
# the view names another (login's `county`).
AUTHENTICATION_SCOPE = tenant.all_counties("authenticate the caller", write_county=tenant.DEFAULT_COUNTY_ID)


def _run_in_scope(spec: Endpoint, view: Callable, path_values: dict[str, str]) -> Response:
    token = _bearer_token() if spec.roles is not None else None
    idem_key = request.headers.get(IDEMPOTENCY_HEADER) if spec.idempotent else None
    if idem_key is not None and not 1 <= len(idem_key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key 长度应为 1–100 个字符",
                       IDEMPOTENCY_HEADER)
    _reject_nul(path_values)
    if idem_key is not None:
        _reject_nul(idem_key, IDEMPOTENCY_HEADER)
    fingerprint = accounts.request_fingerprint(request.method, request.path, request.get_data())
    principal_ref = None
    try:
        with db.session_scope() as session:
            principal = _authenticate(session, spec, token)
            if principal is not None:
                tenant.switch(session, tenancy.scope_of(principal))
            principal_ref = principal.ref if principal is not None else None
            # Validate after authenticating: a caller without the role learns nothing from a 422.
            body = _parse_body(spec.body) if spec.body is not None else None
            query = _parse_query(spec.query) if spec.query is not None else None
            reserved = None
            if idem_key is not None:
                stored = accounts.stored_idempotent_response(session, principal_ref, idem_key)
                if stored is not None:
                    _still_visible(spec, session, principal, path_values)
                    return _replay(stored, fingerprint)
                reserved = accounts.reserve_idempotency_key(session, principal_ref, idem_key, fingerprint)
            g.principal = principal
            ctx = Context(session=session, principal=principal, body=body, query=query)
            try:
                result = view(ctx, **path_values)
            except DomainError as error:
                raise domain_error(error) from None
            except WeChatAPIError:  # a WeChat call the view needed (QR code, content check) failed
                raise ApiError(409, "wechat_unavailable", "微信接口暂时不可用，请稍后再试") from None
            except ValueError as error:
                raise ApiError(422, "invalid", f"请求无效：{error}") from None
            data = _serialise(spec, result)
            if reserved is not None:
                reserved.status_code, reserved.response_body = spec.status, data
                session.flush()
    except IntegrityError:
        # Another request with the same Idempotency-Key committed first: answer with its response.
        if idem_key is None or principal_ref is None:
            raise
        with db.session_scope() as session:
            stored = accounts.stored_idempotent_response(session, principal_ref, idem_key)
            if stored is None:
                raise
            _still_visible(spec, session, _authenticate(session, spec, token), path_values)
            return _replay(stored, fingerprint)
    return _json(data, spec.status)


def _still_visible(spec: Endpoint, session, principal: Principal | None, path_values: dict[str, str]) -> None:
    """A stored answer describes the object in the path as it was: replay it only to a caller who may
    still see that object (a deputy whose grid was taken away gets a 404, not the old answer)."""
    if spec.visible is None:
        return
    try:
        spec.visible(Context(session=session, principal=principal), **path_values)
    except DomainError as error:
        raise domain_error(error) from None


def _replay(stored, fingerprint: str) -> Response:
    if stored.request_hash != fingerprint:
        raise ApiError(422, "idempotency_key_reused", "该 Idempotency-Key 已用于另一个请求",
                       IDEMPOTENCY_HEADER)
    if stored.status_code is None:
        raise ApiError(409, "request_in_progress", "相同的请求正在处理，请稍后重试")
    return _json(stored.response_body, stored.status_code, {"Idempotent-Replayed": "true"})


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "请先登录", "Authorization")
    return token.strip()


def _authenticate(session, spec: Endpoint, token: str | None) -> Principal | None:
    if spec.roles is None:
        return None
    settings = current_app.config["SETTINGS"]
    principal = accounts.principal_from_token(session, settings.secret_key, token,
                                              settings.session_token_max_age_seconds)
    if principal is None:
        raise ApiError(401, "invalid_token", "登录已失效，请重新登录", "Authorization")
    if principal.role not in spec.roles:
        raise forbidden("当前身份无权使用此功能", "role_forbidden")
    return principal


def _parse_body(model: type[BaseModel]) -> BaseModel:
    raw = request.get_data(cache=True)
    if not raw.strip():
        payload: Any = {}
    else:
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            # RecursionError: the C decoder gives up on very deep nesting; a client's fault, not ours.
            raise ApiError(400, "invalid_json", "请求体不是有效的 JSON") from None
        if _depth_exceeds(payload, MAX_JSON_DEPTH):
            raise ApiError(400, "invalid_json", "请求体嵌套层级过深")
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "请求体应为 JSON 对象")
    _reject_nul(payload)
    return _validate(model, payload)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True when containers nest deeper than `limit` (iterative: deep input must not recurse here)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _parse_query(model: type[BaseModel]) -> BaseModel:
    args = {}
    for name, values in request.args.lists():
        args[name] = values[-1]
    _reject_nul(args)
    return _validate(model, args)


def _reject_nul(value: Any, where: str | None = None) -> None:
    """NUL characters are refused everywhere: PostgreSQL cannot store them in text."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ApiError(422, "validation_error", "内容包含非法字符", where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key, where or str(key))
            _reject_nul(item, where or str(key))
    elif isinstance(value, list):
        for item in value:
            _reject_nul(item, where)


def _validate(model: type[BaseModel], payload: dict) -> BaseModel:
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or None
        message = _validation_message(first)
        raise ApiError(422, "validation_error", message, where) from None


def _validation_message(detail: dict) -> str:
    kind = detail.get("type", "")
    messages = {
        "missing": "缺少必填字段", "extra_forbidden": "不支持的字段", "string_too_short": "内容不能为空",
        "string_too_long": "内容过长", "literal_error": "取值无效", "int_parsing": "应为整数",
        "bool_parsing": "应为 true 或 false", "greater_than_equal": "数值过小", "less_than_equal": "数值过大",
        "string_type": "应为字符串", "list_type": "应为数组", "dict_type": "应为对象",
        "too_long": "数量过多", "too_short": "数量过少", "string_pattern_mismatch": "格式无效",
    }
    return messages.get(kind, "字段无效：" + str(detail.get("msg", "")))


def _serialise(spec: Endpoint, result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if spec.response is not None and result is not None:
        from pydantic import TypeAdapter

        return TypeAdapter(spec.response).dump_python(
            TypeAdapter(spec.response).validate_python(result), mode="json")
    return result


# ------------------------------------------------------------------------------------------ app-level
@bp.app_errorhandler(404)
def _api_404(error):
    if request.path.startswith(bp.url_prefix + "/") or request.path == bp.url_prefix:
        return error_response(ApiError(404, "not_found", "接口不存在"))
    return error


@bp.app_errorhandler(405)
def _api_405(error):
    if request.path.startswith(bp.url_prefix + "/"):
        return error_response(ApiError(405, "method_not_allowed", "不支持该请求方法"))
    return error


@bp.app_errorhandler(413)
def _api_413(error):
    if request.path.startswith(bp.url_prefix + "/"):
        return error_response(ApiError(413, "payload_too_large", "请求体过大"))
    return error


@bp.errorhandler(Exception)
def _api_500(error):
    from werkzeug.exceptions import HTTPException

    if isinstance(error, HTTPException):
        return error_response(ApiError(error.code or 500, error.name.lower().replace(" ", "_"),
                                       error.description or error.name))
    log.exception("unhandled error in %s %s", request.method, request.path)
    return error_response(ApiError(500, "internal_error", "服务器内部错误，请稍后重试"))
