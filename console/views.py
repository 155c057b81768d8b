"""Console pages: sign-in, the 台账 with its export, the case page and its staff actions, statistics,
and the people page that prints one-time password links. No rules here: every check is the
domain's (scopes and permissions from `liaison.case.access`, transitions from the case services).
"""
from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import Any, Callable
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask import session as cookie
from flask_wtf.csrf import CSRFError
from sqlalchemy import select

from liaison.case import access, lifecycle, referrals
from liaison.case import handling as casework
from liaison.case import service as cases
from liaison.case.lifecycle import STATUS_LABELS, TRANSITIONS, IllegalTransition
from liaison.case.models import Case, CaseEvent, ExtensionRequest
from liaison.case.timers import local_day
from liaison.console import auth, ledger
from liaison.console import service as figures
from liaison.core import db, tenant
from liaison.core.errors import RATE_LIMITED, DomainError
from liaison.core.workcalendar import CHINA_TZ
from liaison.media import service as media
from liaison.media import storage as media_storage
from liaison.media.models import STORED as MEDIA_STORED
from liaison.people.models import Account, Department, Deputy, Station
from liaison.people.service import DEPARTMENT, DEPUTY, ROLE_LABELS, STAFF, Principal
from liaison.tenancy import service as tenancy

from . import export, forms

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")

TOKEN_KEY = "console_token"
# The pages a department handler's account (`auth.DESK_ROLES`) may open: the suggestion and project
# pages add theirs; every other page refuses it (a new page is closed to departments by default).
DESK_PAGES: set[str] = set()
# The console's staff actions. Each is an action of `liaison.case.access` under its own name: who
# may attempt it is `access.ACTION_ROLES`, from which statuses the lifecycle table says.
CONSOLE_ACTIONS = ("reassign", "urge", "reject", "merge", "hand_up")
ACTION_DONE = {"reassign": "已改派", "urge": "已督办", "reject": "已作不予受理处理", "merge": "已并单",
               "hand_up": "已上报市级协调"}
EVENT_LABELS = {
    "media_lost": "图片或语音已过期，未能保存",
    "submit": "提交诉求", "attach": "上传图片", "add_information": "补充信息", "follow": "附议（并单）",
    "merged_in": "并入诉求", "reroute": "重新分派", "request_information": "请群众补充信息",
    "hand_up": "上报市级协调", "city_answer": "市级答复/批示", "hand_down": "市级交回县级办理",
    "urge": "督办", "extension_requested": "申请延期", "extension_approved": "延期获批",
    "extension_rejected": "延期未获批准", "follower_rating": "附议人评价", "recategorize": "更正分类",
    "escalate": "升级督办", "remind": "到期提醒",
}
ERROR_STATUS = {"invalid": 422, "not_found": 404, "forbidden": 403, "conflict": 409, "too_large": 413,
                "rate_limited": 429, "unavailable": 503}


# ---------------------------------------------------------------------------------------------- plumbing
@bp.before_request
def _check_csrf():
    if request.method == "POST":
        current_app.extensions["console.csrf"].protect()


@bp.errorhandler(CSRFError)
def _csrf_refused(error):
    return render_template("console/error.html", title="请求已失效",
                           message="页面已过期或请求不完整，请刷新页面后重试。"), 400


@bp.app_template_filter("day")
def _day(moment: datetime | None) -> str:
    return local_day(moment)


@bp.app_template_filter("when")
def _when(moment: datetime | None) -> str:
    return moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M") if moment else "—"


@bp.app_template_filter("pct")
def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


# Before the caller is known every county is read; nothing is written in this scope but rows of an
# account found there (a console session), which take that account's county.
AUTHENTICATION_SCOPE = tenant.all_counties("authenticate a console user")


def signed_in(view: Callable) -> Callable:
    """One unit of work per request, with the signed-in principal and their scope on `g`."""

    @functools.wraps(view)
    def wrapper(**kwargs):
        # The token names a session in some county: found across counties, then the unit of work
        # narrows to the account's county (the API does the same).
        with tenant.use(AUTHENTICATION_SCOPE), db.session_scope() as session:
            principal = auth.principal_for(session, cookie.get(TOKEN_KEY))
            if principal is None:
                cookie.pop(TOKEN_KEY, None)
                if request.method == "GET":
                    return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
                abort(401)
            if principal.role == tenancy.CITY_ROLE and not getattr(view, "city_page", False):
                # City staff have the 县（区） page of their city, nothing of a county's console.
                if request.method == "GET":
                    return redirect(url_for("console.counties_page"))
                abort(403)
            if principal.role in auth.DESK_ROLES and request.endpoint not in DESK_PAGES:
                if request.method == "GET" and request.endpoint == "console.ledger_page":
                    return redirect(desk_home())  # /console/ leads here
                return render_template("console/error.html", title="无权访问",
                                       message="承办单位账号在办公台只能办理交本单位的代表建议和民生实事。"), 403
            session.flush()  # the session's idle clock, written in its own county before narrowing
            g.county_scope = tenancy.scope_of(principal)
            tenant.switch(session, g.county_scope)  # from here on: the account's county only
            g.principal = principal
            g.scope = access.scope_of(session, principal)
            g.session = session
            return view(session, **kwargs)

    return wrapper


def _scope_label(principal: Principal, session) -> str:
    account = principal.account
    if principal.role == STAFF:
        if account.station_id is None:
            return "全县"
        station = session.get(Station, account.station_id)
        return station.name if station else "本站"
    if principal.role == DEPUTY:
        return "所联系网格（只读）"
    if principal.role == tenancy.CITY_ROLE:
        return "全市"
    if principal.role == DEPARTMENT and account.department_id is not None:
        department = session.get(Department, account.department_id)
        return department.name if department else "本单位"
    return ""


@bp.context_processor
def _chrome() -> dict[str, Any]:
    principal = g.get("principal")
    return {"me": principal, "role_label": ROLE_LABELS.get(principal.role) if principal else None,
            "scope_label": _scope_label(principal, g.session) if principal else None,
            "plain_form": forms.PlainForm(), "STATUS_LABELS": STATUS_LABELS}


def _error_status(error: Exception) -> int:
    if isinstance(error, DomainError):
        return ERROR_STATUS.get(error.kind, 422)
    if isinstance(error, cases.NotFound):
        return 404
    if isinstance(error, access.Forbidden):
        return 403
    if isinstance(error, IllegalTransition):
        return 409
    return 422


def _error_message(error: Exception) -> str:
    if isinstance(error, DomainError) and error.message:
        return error.message
    if isinstance(error, cases.NotFound):
        return "诉求不存在"
    if isinstance(error, access.Forbidden):
        return str(error) or "无权执行此操作"
    if isinstance(error, IllegalTransition):
        message = str(error)
        if any("\u4e00" <= ch <= "\u9fff" for ch in message):
            return message
        return f"当前状态（{STATUS_LABELS.get(error.status, error.status)}）不能执行该操作"
    return "提交的内容无效"


# ---------------------------------------------------------------------------------------------- sign-in
def _safe_next(target: str | None) -> str:
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return url_for("console.ledger_page")


@bp.route("/login", methods=["GET", "POST"])
def sign_in():
    form = forms.SignInForm()
    status = 200
    if form.validate_on_submit():
        try:
            with tenant.use(AUTHENTICATION_SCOPE), db.session_scope() as session:
                done = auth.sign_in(session, form.login.data, form.password.data, address=request.remote_addr)
                name = done.account.name
        except auth.ConsoleAuthError as error:
            flash(error.message, "error")
            status = 429 if error.kind == RATE_LIMITED else 401
        else:
            cookie.clear()  # a fresh cookie (and CSRF token) for the signed-in session
            cookie[TOKEN_KEY] = done.token
            log.info("console sign-in of account %s", done.account.public_id)
            flash(f"{name}，欢迎使用", "info")
            if done.account.role in auth.DESK_ROLES and not request.args.get("next"):
                return redirect(desk_home(), 303)
            return redirect(_safe_next(request.args.get("next")), 303)
    elif request.method == "POST":
        status = 422
    return render_template("console/login.html", form=form), status


@bp.post("/logout")
def sign_out():
    with tenant.use(AUTHENTICATION_SCOPE), db.session_scope() as session:
        auth.sign_out(session, cookie.get(TOKEN_KEY))
    cookie.clear()
    flash("已退出登录", "info")
    return redirect(url_for("console.sign_in"), 303)


@bp.route("/password/<token>", methods=["GET", "POST"])
def set_password(token: str):
    form = forms.SetPasswordForm()
    with tenant.use(AUTHENTICATION_SCOPE), db.session_scope() as session:
        try:
            account = auth.link_account(session, token)
        except auth.ConsoleAuthError as error:
            return render_template("console/error.html", title="链接无效", message=error.message), 404
        tenant.switch(session, tenant.county(account.county_id))
        credential = auth.credential_of(session, account)
        if form.validate_on_submit():
            try:
                auth.redeem_password_link(session, token, form.password.data)
            except auth.ConsoleAuthError as error:
                flash(error.message, "error")
                return render_template("console/password.html", form=form, account=account,
                                       login=credential.login), _error_status(error)
            flash("密码已设置，请登录", "info")
            return redirect(url_for("console.sign_in"), 303)
        status = 422 if request.method == "POST" else 200
        return render_template("console/password.html", form=form, account=account,
                               login=credential.login), status


@bp.get("/")
def home():
    return redirect(url_for("console.ledger_page"))


def desk_home() -> str:
    """Where a department handler lands: the suggestions handed to their department."""
    return url_for("console.suggestions_page")


# ---------------------------------------------------------------------------------------------- ledger
def _params() -> dict[str, str]:
    return {k: v for k, v in request.args.items()}


def _filter_widgets(session) -> list[dict[str, Any]]:
    values = _params()
    widgets = []
    for field in ledger.FILTER_FIELDS:
        choices = field.choices(session, g.scope) if field.choices else None
        widgets.append({"name": field.name, "label": field.label, "widget": field.widget,
                        "value": values.get(field.name, ""), "choices": choices})
    return widgets


@bp.get("/cases")
@signed_in
def ledger_page(session):
    try:
        number = max(int(request.args.get("page", "1")), 1)
    except ValueError:
        number = 1
    try:
        rows, has_next = ledger.page_rows(session, g.scope, _params(), number)
    except ledger.BadFilter as error:
        return render_template("console/ledger.html", rows=[], page=1, has_next=False,
                               widgets=_filter_widgets(session), active={}, error=error.message), 400
    active = ledger.active_filters(_params())
    return render_template("console/ledger.html", rows=rows, page=number, has_next=has_next,
                           widgets=_filter_widgets(session), active=active, error=None,
                           figure_label=_figure_label(active.get("figure")))


@bp.get("/cases/count")
@signed_in
def ledger_count(session):
    """How many rows the 台账's filters match (capped at COUNT_CAP: "1000+"), and so how many pages:
    the ledger page fills these in after its rows."""
    try:
        total = ledger.count(session, g.scope, _params())
    except ledger.BadFilter as error:
        return jsonify({"error": error.message}), 400
    shown = min(total, ledger.COUNT_CAP)
    return jsonify({"total": shown, "capped": total > ledger.COUNT_CAP,
                    "pages": max((shown + ledger.PAGE_SIZE - 1) // ledger.PAGE_SIZE, 1)})


def _figure_label(value: str | None) -> str | None:
    if not value:
        return None
    name, _, part = value.partition(".")
    figure = figures.FIGURES.get(name)
    if figure is None:
        return None
    return f"{figure.label}（{'分子' if part == 'numerator' else '分母'}）：{figure.definition}"


@bp.get("/cases/export.xlsx")
@signed_in
def export_ledger(session):
    params = _params()
    try:
        ledger.conditions(session, g.scope, params)  # refuse a bad filter before streaming starts
    except ledger.BadFilter as error:
        return render_template("console/error.html", title="筛选条件无效", message=error.message), 400
    principal_account_id, county_scope = g.principal.account.id, g.county_scope
    filename = f"诉求台账-{datetime.now(CHINA_TZ):%Y%m%d-%H%M}.xlsx"

    def rows():
        # The export outlives the request's unit of work: it reads in its own session, with the
        # scope rebuilt from the same account, in the same county.
        with tenant.use(county_scope), db.session_scope() as reading:
            account = reading.get(Account, principal_account_id)
            scope = access.scope_of(reading, Principal(account.role, account=account))
            yield from export.ledger_workbook(ledger.all_rows(reading, scope, params))

    response = Response(stream_with_context(rows()), mimetype=export.XLSX_MIME)
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"ledger.xlsx\"; filename*=UTF-8''{quote(filename)}")
    return response


# ---------------------------------------------------------------------------------------------- case page
def _actor_label(session, event: CaseEvent) -> str:
    kind = event.actor_kind
    if kind == "resident":
        return "群众"
    if kind == "system":
        return "系统"
    if kind == DEPUTY and event.actor_id:
        deputy = session.get(Deputy, event.actor_id)
        return f"代表 {deputy.name}" if deputy else "代表"
    if kind == DEPARTMENT and event.actor_id:
        department = session.get(Department, event.actor_id)
        return department.name if department else "承办单位"
    if kind == STAFF and event.actor_id:
        account = session.get(Account, event.actor_id)
        return f"工委 {account.name}" if account else "工委"
    return ROLE_LABELS.get(kind, kind)


def _event_label(action: str) -> str:
    transition = TRANSITIONS.get(action)
    return transition.label if transition else EVENT_LABELS.get(action, action)


DETAIL_LABELS = {"text": "内容", "reason": "理由", "note": "意见", "summary": "办理情况", "handler": "承办",
                 "department": "部门", "category": "类别", "rating": "评价", "comment": "留言",
                 "question": "问题", "into": "并入", "merged_case": "并入诉求", "working_days": "工作日",
                 "channel": "渠道", "round": "轮次", "level": "督办级别"}


def _timeline(session, case: Case) -> list[dict[str, Any]]:
    entries = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))
    out = []
    for event in entries:
        detail = dict(event.detail or {})
        photos = [p for p in detail.pop("photos", None) or [] if isinstance(p, str)]
        shown = []
        for key, value in detail.items():
            if key in DETAIL_LABELS and value not in (None, "", []):
                if key == "rating":
                    value = ledger.RATING_LABELS.get(value, value)
                if key == "channel":
                    value = ledger.CHANNEL_LABELS.get(value, value)
                if key == "deadline":
                    continue
                shown.append((DETAIL_LABELS[key], value))
        out.append({"at": event.at, "label": _event_label(event.action), "actor": _actor_label(session, event),
                    "status": STATUS_LABELS.get(event.to_status, "") if event.to_status != event.from_status else "",
                    "detail": shown, "photos": photos})
    return out


def _action_forms(session, case: Case) -> dict[str, Any]:
    """The staff actions possible on this case now (the domain's permission and transition table)."""
    if g.principal.role != STAFF:
        return {}
    allowed = set(access.allowed_actions(g.scope, case))
    found: dict[str, Any] = {}
    if "reassign" in allowed:
        form = forms.ReassignForm(prefix="reassign")
        form.deputy.choices = [("", "（不变）")] + [(d.code, d.name) for d in session.scalars(
            select(Deputy).order_by(Deputy.code))]
        form.department.choices = [("", "（不变）")] + [(d.code, d.name) for d in session.scalars(
            select(Department).order_by(Department.code))]
        found["reassign"] = form
    if "urge" in allowed and case.handler_kind == "department":
        found["urge"] = forms.UrgeForm(prefix="urge")
    if "reject" in allowed:
        found["reject"] = forms.RejectForm(prefix="reject")
    if "merge" in allowed:
        found["merge"] = forms.MergeForm(prefix="merge")
    if _may_hand_up(session, case):
        found["hand_up"] = forms.HandUpForm(prefix="hand_up")
    return found


def _may_hand_up(session, case: Case) -> bool:
    """三级联动: offered while the case is worked, its county is in a city and it is not with the city."""
    return (lifecycle.allows("hand_up", case.status) and referrals.city_of(session, case) is not None
            and referrals.open_referral(session, case) is None)


def _render_case(session, case: Case, *, status: int = 200, error: str | None = None,
                 action_forms: dict[str, Any] | None = None):
    forms_now = _action_forms(session, case)
    forms_now.update({k: v for k, v in (action_forms or {}).items() if k in forms_now})
    extensions = session.scalars(select(ExtensionRequest).where(ExtensionRequest.case_id == case.id)
                                 .order_by(ExtensionRequest.id)).all()
    row = ledger.row_of_case(session, case)
    _case, media_rows = media.of_case(session, g.scope, case.public_id)
    return render_template(
        "console/case.html", case=case, row=row, timeline=_timeline(session, case), media=media_rows,
        media_lost=media.LOST_REASON,
        ratings=ledger.rating_rows(session, case), extensions=extensions, forms=forms_now,
        handler=cases.handler_label(case), overdue=access.is_overdue(case), error=error,
        status_label=STATUS_LABELS.get(case.status, case.status),
        rating_labels=ledger.RATING_LABELS, read_only=g.principal.role != STAFF), status


@bp.get("/cases/<public_id>")
@signed_in
def case_page(session, public_id: str):
    try:
        case = access.get_case(session, g.scope, public_id)
    except cases.NotFound:
        return render_template("console/error.html", title="诉求不存在", message="诉求不存在或不在您的辖区内。"), 404
    return _render_case(session, case)


@bp.get("/cases/<public_id>/media/<media_id>")
@signed_in
def case_media(session, public_id: str, media_id: str):
    """A stored photo or voice of a case the caller sees, under the case's media rule (else 404)."""
    try:
        _case, rows = media.of_case(session, g.scope, public_id)
    except cases.NotFound:
        abort(404)
    row = next((r for r in rows if r.public_id == media_id and r.state == MEDIA_STORED), None)
    if row is None:
        abort(404)
    data = media_storage.current().get(row.storage_key)
    return Response(data, mimetype=row.content_type or "application/octet-stream",
                    headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"})


@bp.post("/cases/<public_id>/<action>")
@signed_in
def case_action(session, public_id: str, action: str):
    if action not in CONSOLE_ACTIONS:
        abort(404)
    try:
        case = access.get_case(session, g.scope, public_id, lock=True)
    except cases.NotFound:
        return render_template("console/error.html", title="诉求不存在", message="诉求不存在或不在您的辖区内。"), 404
    if g.principal.role != STAFF:
        return _render_case(session, case, status=403, error="代表账号在办公台只能查看，请在小程序中办理。")
    form_class = {"reassign": forms.ReassignForm, "urge": forms.UrgeForm, "reject": forms.RejectForm,
                  "merge": forms.MergeForm, "hand_up": forms.HandUpForm}[action]
    form = form_class(prefix=action)
    if action == "reassign":
        form.deputy.choices = [("", "")] + [(d.code, d.name) for d in session.scalars(select(Deputy))]
        form.department.choices = [("", "")] + [(d.code, d.name) for d in session.scalars(select(Department))]
    if not form.validate():
        message = next(iter(m for errors in form.errors.values() for m in errors), "提交的内容无效")
        return _render_case(session, case, status=422, error=message, action_forms={action: form})
    actor = g.principal.actor()
    try:
        with session.begin_nested():  # a refusal leaves the case as it was
            if action != "hand_up":  # staff hand up any case in their scope (the service checks the rest)
                access.check(g.scope, action, case)
            _perform(session, action, case, actor, form)
    except (DomainError, cases.NotFound, access.Forbidden, IllegalTransition, ValueError) as error:
        session.refresh(case)
        return _render_case(session, case, status=_error_status(error), error=_error_message(error),
                            action_forms={action: form})
    flash(ACTION_DONE[action], "info")
    return redirect(url_for("console.case_page", public_id=case.public_id), 303)


def _perform(session, action: str, case: Case, actor, form) -> None:
    if action == "reassign":
        deputy = (session.scalar(select(Deputy).where(Deputy.code == form.deputy.data))
                  if form.deputy.data else None)
        department = (session.scalar(select(Department).where(Department.code == form.department.data))
                      if form.department.data else None)
        if deputy is None and department is None:
            raise ValueError("请选择改派的代表或承办单位")
        cases.reassign(session, case, actor, deputy=deputy, department=department,
                       reason=(form.reason.data or "").strip() or None)
    elif action == "urge":
        casework.urge(session, case, actor, (form.note.data or "").strip() or None)
    elif action == "reject":
        cases.reject(session, case, actor, form.reason.data.strip())
    elif action == "merge":
        target = ledger.visible_case_by_number(session, g.scope, form.into.data)
        cases.merge(session, case, target, actor, form.reason.data.strip())
    elif action == "hand_up":
        referrals.hand_up(session, case, g.principal.account.id, form.reason.data)


# ---------------------------------------------------------------------------------------------- statistics
@bp.get("/stats")
@signed_in
def stats_page(session):
    params = _params()
    dimension = params.get("by") or "station"
    if dimension not in figures.DIMENSIONS:
        dimension = "station"
    try:
        where = ledger.conditions(session, g.scope, params)
    except ledger.BadFilter as error:
        return render_template("console/error.html", title="筛选条件无效", message=error.message), 400
    total, groups, months = figures.overview(session, g.scope, where, dimension)
    trend = {"months": [m.key for m in months],
             "received": [m.figures["received"] for m in months],
             "closed_rate": [_rounded(m.figures["closed_rate"]) for m in months],
             "satisfaction_rate": [_rounded(m.figures["satisfaction_rate"]) for m in months]}
    active = {k: v for k, v in ledger.active_filters(params).items() if k != "figure"}
    return render_template("console/stats.html", total=total, groups=groups, dimension=dimension,
                           dimensions=figures.DIMENSIONS, figures=figures.FIGURES, trend=trend,
                           widgets=[w for w in _filter_widgets(session) if w["name"] in ("since", "until")],
                           active=active, ranking=figures.ranking(groups, "satisfaction_rate"),
                           definitions=figures.definitions(), month_bounds=_month_bounds)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _month_bounds(month: str) -> dict[str, str]:
    """since/until of a `2026-03` group, for its drill-down link."""
    start = datetime.strptime(month + "-01", "%Y-%m-%d").date()
    end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return {"since": start.isoformat(), "until": end.isoformat()}


# ---------------------------------------------------------------------------------------------- people
def _manageable(session) -> list[Account]:
    """The accounts this staff member may give console access: county staff all deputy and staff
    accounts, station staff those of their station."""
    account = g.principal.account
    query = select(Account).where(Account.role.in_(auth.CONSOLE_ROLES)).order_by(Account.role, Account.id)
    if account.station_id is not None:
        query = query.where((Account.station_id == account.station_id)
                            | Account.deputy_id.in_(select(Deputy.id).where(Deputy.station_id == account.station_id)))
    return list(session.scalars(query))


def _managed_account(session, public_id: str) -> Account:
    if g.principal.role != STAFF:
        abort(403)
    for account in _manageable(session):
        if account.public_id == public_id:
            return account
    abort(404)


@bp.get("/accounts")
@signed_in
def accounts_page(session):
    if g.principal.role != STAFF:
        return render_template("console/error.html", title="无权访问", message="只有工委账号可以管理人员。"), 403
    rows = [(a, auth.credential_of(session, a)) for a in _manageable(session)]
    return render_template("console/accounts.html", rows=rows, link=None)


@bp.post("/accounts/<public_id>/link")
@signed_in
def issue_link(session, public_id: str):
    account = _managed_account(session, public_id)
    try:
        credential, token = auth.issue_password_link(session, account)
    except auth.ConsoleAuthError as error:
        flash(error.message, "error")
        return redirect(url_for("console.accounts_page"), 303)
    link = url_for("console.set_password", token=token, _external=True)
    rows = [(a, auth.credential_of(session, a)) for a in _manageable(session)]
    return render_template("console/accounts.html", rows=rows,
                           link={"name": account.name, "login": credential.login, "url": link})


@bp.post("/accounts/<public_id>/disable")
@signed_in
def disable(session, public_id: str):
    account = _managed_account(session, public_id)
    if account.id == g.principal.account.id:
        flash("不能停用自己的账号", "error")
    else:
        auth.disable_account(session, account)
        flash(f"已停用 {account.name}，其登录已全部失效", "info")
    return redirect(url_for("console.accounts_page"), 303)
