"""The mini-program API views: parse (done by `endpoint`), call the domain, serialise. No rules here."""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import func, select

from liaison.case import access, referrals
from liaison.case import handling as casework
from liaison.case import service as cases
from liaison.case.lifecycle import STATUS_LABELS
from liaison.case.models import Case, ExtensionRequest, Notice
from liaison.core import tenant
from liaison.media import service as media
from liaison.people import registry
from liaison.people import service as accounts
from liaison.people.models import Account, Department, Deputy, Grid, Station
from liaison.tenancy import service as tenancy
from liaison.wechat.errors import WeChatAPIError
from liaison.wechat.privacy import mask

from . import ratelimit as limits
from . import schemas as s
from . import serializers as out
from .framework import ALL_ROLES, ApiError, Context, endpoint, not_found, require_county_staff

log = logging.getLogger(__name__)

RESIDENT, DEPUTY, DEPARTMENT, STAFF = "resident", "deputy", "department", "staff"
HANDLERS = (DEPUTY, DEPARTMENT)
INVALID_CODE_ERRCODES = {40029, 40163, 40226}


# ---------------------------------------------------------------------------------------------- helpers
def _scope(ctx: Context) -> access.Scope:
    return access.scope_of(ctx.session, ctx.principal)


def _sees_case(ctx: Context, public_id: str) -> None:
    """The replay check of the case endpoints: the caller may still see the case (else NotFound)."""
    access.get_case(ctx.session, _scope(ctx), public_id)


def _acting_on(ctx: Context, public_id: str, action: str):
    """The visible case, locked, after checking the caller may attempt `action` on it."""
    scope = _scope(ctx)
    case = access.get_case(ctx.session, scope, public_id, lock=True)
    access.check(scope, action, case)
    return scope, case


def _done(ctx: Context, scope: access.Scope, case, entry=None) -> s.ActionOut:
    ctx.session.flush()
    ctx.session.refresh(case)
    return s.ActionOut(case=out.case_detail(ctx.session, scope, case),
                       event=out.event_out(entry, scope) if entry is not None else None)


def _page(query: s.PageQuery, items: list, total: int) -> dict:
    return {"items": items, "page": query.page, "page_size": query.page_size, "total": total}


def _by_code(ctx: Context, model, code: str | None, field: str, what: str):
    if code is None:
        return None
    row = ctx.session.scalar(select(model).where(model.code == code))
    if row is None:
        raise ApiError(422, "unknown_" + field.removesuffix("_code"), f"{what}不存在：{code}", field)
    return row


def _token_response(ctx: Context, principal: accounts.Principal) -> s.LoginOut:
    settings = ctx.settings
    return s.LoginOut(token=accounts.issue_token(settings.secret_key, principal),
                      expires_in=settings.session_token_max_age_seconds,
                      me=out.me_out(ctx.session, principal))


# ---------------------------------------------------------------------------------------------- session
@endpoint("POST", "/login", summary="小程序登录：用 wx.login 的 code 换取会话令牌", roles=None,
          body=s.LoginIn, response=s.LoginOut, tag="session")
def login(ctx: Context):
    from liaison import runtime

    client = runtime.current().miniprogram
    if client is None:
        raise ApiError(503, "miniprogram_not_configured", "小程序未配置")
    try:
        answer = client.jscode2session(ctx.body.code)
    except WeChatAPIError as error:
        if error.errcode in INVALID_CODE_ERRCODES:
            raise ApiError(401, "invalid_code", "登录凭证无效或已使用，请重新登录", "code") from None
        log.warning("jscode2session failed: %s", error)
        raise ApiError(502, "wechat_unavailable", "微信登录暂时不可用，请稍后再试") from None
    openid = answer.get("openid")
    if not openid:
        raise ApiError(502, "wechat_unavailable", "微信登录暂时不可用，请稍后再试")
    # session_key is deliberately dropped: nothing here decrypts user data, and it must never reach
    # the client.
    if ctx.body.county is not None:  # the mini-program's county: where a new resident belongs
        county = tenancy.by_code(ctx.session, ctx.body.county)
        if county is None:
            raise ApiError(422, "unknown_county", f"县（区）不存在：{ctx.body.county}", "county")
        tenant.switch(ctx.session, tenant.all_counties("log in", write_county=county.id))
    principal = accounts.login(ctx.session, openid, answer.get("unionid"))
    tenant.switch(ctx.session, tenancy.scope_of(principal))
    log.info("mini-program login %s as %s", mask(openid), principal.role)
    return _token_response(ctx, principal)


@endpoint("POST", "/bind", summary="代表、部门、工委用一次性绑定码绑定微信", roles=(RESIDENT,),
          body=s.BindIn, response=s.LoginOut, tag="session")
@limits.binding_per_identity
@limits.binding_per_address
def bind(ctx: Context):
    # A binding code names its account in whichever county registered it.
    with tenant.widened(ctx.session, tenant.all_counties("bind an account by its code")):
        account = accounts.bind(ctx.session, ctx.principal.resident, ctx.body.binding_code)
    tenant.switch(ctx.session, tenancy.scope_of(accounts.Principal(account.role, account=account)))
    return _token_response(ctx, accounts.Principal(account.role, account=account))


@endpoint("GET", "/me", summary="当前用户", roles=ALL_ROLES + ("city",), response=s.MeOut, tag="session")
def me(ctx: Context):
    return out.me_out(ctx.session, ctx.principal)


@endpoint("POST", "/consents", summary="记录订阅消息授权结果（wx.requestSubscribeMessage）", roles=ALL_ROLES,
          body=s.ConsentIn, response=s.ConsentListOut, tag="session")
def record_consents(ctx: Context):
    rows = accounts.record_consents(ctx.session, ctx.principal, ctx.body.results)
    return s.ConsentListOut(items=[s.ConsentOut.model_validate(r) for r in rows])


@endpoint("GET", "/consents", summary="我的订阅消息授权与剩余条数", roles=ALL_ROLES,
          response=s.ConsentListOut, tag="session")
def list_consents(ctx: Context):
    rows = accounts.consents_of(ctx.session, ctx.principal)
    return s.ConsentListOut(items=[s.ConsentOut.model_validate(r) for r in rows])


# ---------------------------------------------------------------------------------------------- cases
@endpoint("GET", "/cases", summary="诉求列表：群众看自己的，代表看网格内和经办的，部门看本部门的，工委看辖区内的",
          roles=ALL_ROLES, query=s.CaseListQuery, response=s.Page[s.CaseItem], tag="cases")
def list_cases(ctx: Context):
    query: s.CaseListQuery = ctx.query
    statuses = None
    if query.status:
        statuses = [part.strip() for part in query.status.split(",") if part.strip()]
        unknown = [x for x in statuses if x not in STATUS_LABELS]
        if unknown or not statuses:
            raise ApiError(422, "validation_error", f"未知状态：{','.join(unknown)}", "status")
    scope = _scope(ctx)
    rows, total = access.list_cases(ctx.session, scope, statuses=statuses, overdue=query.overdue,
                                    category=query.category, page=query.page, page_size=query.page_size)
    return s.Page[s.CaseItem](**_page(query, [out.case_out(ctx.session, scope, c) for c in rows], total))


@endpoint("POST", "/cases", summary="群众提交诉求", roles=(RESIDENT,), body=s.CaseIn,
          response=s.CaseDetailOut, status=201, tag="cases")
@limits.cases_per_identity
@limits.cases_per_address
def submit_case(ctx: Context):
    body: s.CaseIn = ctx.body
    grid = _by_code(ctx, Grid, body.grid_code, "grid_code", "网格")
    case = casework.submit_case(ctx.session, ctx.principal.resident, body.text, photos=body.photos,
                                location=body.location.model_dump() if body.location else None, grid=grid)
    return out.case_detail(ctx.session, _scope(ctx), case)


@endpoint("GET", "/cases/<public_id>", summary="诉求详情与办理时间线（附议群众只看到办理状态与答复）",
          roles=ALL_ROLES, response=s.CaseView, tag="cases")
def get_case(ctx: Context, public_id: str):
    scope = _scope(ctx)
    return out.case_detail(ctx.session, scope, access.get_case(ctx.session, scope, public_id))


@endpoint("POST", "/cases/<public_id>/information", summary="群众补充信息", roles=(RESIDENT,),
          body=s.InformationIn, response=s.ActionOut, visible=_sees_case, tag="resident")
def add_information(ctx: Context, public_id: str):
    scope, case = _acting_on(ctx, public_id, "add_information")
    entry = casework.add_information(ctx.session, case, ctx.principal.resident, ctx.body.text,
                                     photos=ctx.body.photos)
    return _done(ctx, scope, case, entry)


@endpoint("POST", "/cases/<public_id>/rating", summary="群众评价已办结的诉求", roles=(RESIDENT,),
          body=s.RatingIn, response=s.ActionOut, visible=_sees_case, tag="resident")
def rate_case(ctx: Context, public_id: str):
    scope, case = _acting_on(ctx, public_id, "rate")
    entry = cases.rate(ctx.session, case, ctx.principal.resident, ctx.body.value, channel="miniprogram",
                       comment=ctx.body.comment)
    return _done(ctx, scope, case, entry)


@endpoint("POST", "/cases/<public_id>/withdraw", summary="群众撤回诉求", roles=(RESIDENT,),
          response=s.ActionOut, visible=_sees_case, tag="resident")
def withdraw_case(ctx: Context, public_id: str):
    scope, case = _acting_on(ctx, public_id, "withdraw")
    entry = cases.withdraw(ctx.session, case, ctx.principal.resident)
    return _done(ctx, scope, case, entry)


@endpoint("POST", "/cases/<public_id>/accept", summary="受理", roles=HANDLERS, response=s.ActionOut,
          visible=_sees_case, tag="handling")
def accept_case(ctx: Context, public_id: str):
    scope, case = _acting_on(ctx, public_id, "accept")
    return _done(ctx, scope, case, cases.accept(ctx.session, case, ctx.principal.actor()))


@endpoint("POST", "/cases/<public_id>/reply", summary="答复群众（可附本人上传的办理照片）", roles=HANDLERS, body=s.ReplyIn,
          response=s.ActionOut, visible=_sees_case, tag="handling")
def reply_case(ctx: Context, public_id: str):
    scope, case = _acting_on(ctx, public_id, "reply")
    entry = media.reply(ctx.session, case, ctx.principal, ctx.body.text, ctx.body.attachments)
    return _done(ctx, scope, case, entry)


@endpoint("POST", "/cases/<public_id>/information-requests", summary="请群众补充信息", roles=HANDLERS,
          body=s.QuestionIn, response=s.ActionOut, visible=_sees_case, tag="handling")
def request_information(ctx: Context, public_id: str):
    scope, case = _acting_on(ctx, public_id, "request_information")
    entry = casework.request_information(ctx.session, case, ctx.principal.actor(), ctx.body.question)
    return _done(ctx, scope, case, entry)


@endpoint("POST", "/cases/<public_id>/dispatch", summary="派单给职能部门（限期办结）", roles=(DEPUTY, STAFF),
          body=s.DispatchIn, response=s.ActionOut, visible=_sees_case, tag="handling")
def dispatch_case(ctx: Context, public_id: str):
    scope, case = _acting_on(ctx, public_id, "dispatch")
    department = _by_code(ctx, Department, ctx.body.department_code, "department_code", "部门")
    entry = cases.dispatch(ctx.session, case, ctx.principal.actor(), department,
                           working_days=ctx.body.working_days, note=ctx.body.note)
    return _done(ctx, scope, case, entry)


@endpoint("POST", "/cases/<public_id>/urge", summary="督办承办部门", roles=(DEPUTY, STAFF),
          body=s.UrgeIn, response=s.ActionOut, visible=_sees_case, tag="handling")
def urge_case(ctx: Context, public_id: str):
    scope, case = _acting_on(ctx, public_id, "urge")
    return _done(ctx, scope, case, casework.urge(ctx.session, case, ctx.principal.actor(), ctx.body.note))


@endpoint("POST", "/cases/<public_id>/hand-up", summary="上报市级协调（三级联动，附理由）", roles=(STAFF,),
          body=s.ReasonIn, response=s.ActionOut, visible=_sees_case, tag="handling")
def hand_up_case(ctx: Context, public_id: str):
    scope = _scope(ctx)
    case = access.get_case(ctx.session, scope, public_id, lock=True)
    return _done(ctx, scope, case, referrals.hand_up(ctx.session, case, ctx.principal.account.id,
                                                     ctx.body.reason))


@endpoint("POST", "/cases/<public_id>/close", summary="办结（附办理情况，可附本人上传的办理照片）", roles=HANDLERS, body=s.CloseIn,
          response=s.ActionOut, visible=_sees_case, tag="handling")
def close_case(ctx: Context, public_id: str):
    scope, case = _acting_on(ctx, public_id, "close")
    entry = media.close(ctx.session, case, ctx.principal, ctx.body.summary, ctx.body.attachments)
    return _done(ctx, scope, case, entry)


@endpoint("POST", "/cases/<public_id>/category", summary="更正诉求分类（并记录供分类器学习）",
          roles=(DEPUTY, STAFF), body=s.CategoryIn, response=s.ActionOut, visible=_sees_case, tag="handling")
def correct_category(ctx: Context, public_id: str):
    if ctx.body.category not in casework.known_categories():
        raise ApiError(422, "unknown_category", f"未知分类：{ctx.body.category}", "category")
    scope, case = _acting_on(ctx, public_id, "correct_category")
    entry = casework.correct_category(ctx.session, case, ctx.principal.actor(), ctx.body.category,
                                      ctx.body.reason)
    return _done(ctx, scope, case, entry)


@endpoint("POST", "/cases/<public_id>/return", summary="部门退单（附理由）", roles=(DEPARTMENT,),
          body=s.ReasonIn, response=s.ActionOut, visible=_sees_case, tag="handling")
def return_case(ctx: Context, public_id: str):
    scope, case = _acting_on(ctx, public_id, "return")
    entry = cases.return_case(ctx.session, case, ctx.principal.actor(), ctx.body.reason)
    return _done(ctx, scope, case, entry)


@endpoint("POST", "/cases/<public_id>/extension-requests", summary="部门申请延期", roles=(DEPARTMENT,),
          body=s.ExtensionIn, response=s.ExtensionOut, status=201, visible=_sees_case, tag="handling")
def request_extension(ctx: Context, public_id: str):
    _scope_, case = _acting_on(ctx, public_id, "request_extension")
    request = casework.request_extension(ctx.session, case, ctx.principal.actor(), ctx.principal.account.id,
                                         ctx.body.working_days, ctx.body.reason)
    return out.extension_out(request)


@endpoint("POST", "/cases/<public_id>/reassign", summary="工委改派（换代表、部门或分类）", roles=(STAFF,),
          body=s.ReassignIn, response=s.ActionOut, visible=_sees_case, tag="staff")
def reassign_case(ctx: Context, public_id: str):
    body: s.ReassignIn = ctx.body
    if body.deputy_code is None and body.department_code is None and body.category is None:
        raise ApiError(422, "validation_error", "请指定代表、部门或分类", "deputy_code")
    if body.category is not None and body.category not in casework.known_categories():
        raise ApiError(422, "unknown_category", f"未知分类：{body.category}", "category")
    scope, case = _acting_on(ctx, public_id, "reassign")
    deputy = _by_code(ctx, Deputy, body.deputy_code, "deputy_code", "代表")
    department = _by_code(ctx, Department, body.department_code, "department_code", "部门")
    entry = cases.reassign(ctx.session, case, ctx.principal.actor(), deputy=deputy, department=department,
                           category=body.category, reason=body.reason)
    return _done(ctx, scope, case, entry)


@endpoint("POST", "/cases/<public_id>/merge", summary="工委并单：把重复诉求并入另一件诉求（附理由，群众随主诉求获知进展）",
          roles=(STAFF,), body=s.MergeIn, response=s.ActionOut, visible=_sees_case, tag="staff")
def merge_case(ctx: Context, public_id: str):
    scope = _scope(ctx)
    case = access.get_case(ctx.session, scope, public_id)
    access.check(scope, "merge", case)
    into = _case_by_reference(ctx, scope, ctx.body.into)
    entry = cases.merge(ctx.session, case, into, ctx.principal.actor(), ctx.body.reason)
    return _done(ctx, scope, case, entry)


@endpoint("POST", "/cases/<public_id>/reject", summary="工委不予受理（附理由，告知群众）", roles=(STAFF,),
          body=s.RejectIn, response=s.ActionOut, visible=_sees_case, tag="staff")
def reject_case(ctx: Context, public_id: str):
    scope, case = _acting_on(ctx, public_id, "reject")
    entry = cases.reject(ctx.session, case, ctx.principal.actor(), ctx.body.reason)
    return _done(ctx, scope, case, entry)


def _case_by_reference(ctx: Context, scope: access.Scope, reference: str):
    """A case the caller can see, named by its number (2026-000123) or its id; else 404."""
    public_id = ctx.session.scalar(select(Case.public_id).where(Case.number == reference)) or reference
    try:
        return access.get_case(ctx.session, scope, public_id)
    except cases.NotFound:
        raise ApiError(404, "not_found", f"要并入的诉求不存在：{reference}", "into") from None


# ---------------------------------------------------------------------------------------------- extensions
def _extension(ctx: Context, public_id: str) -> ExtensionRequest:
    request = ctx.session.scalar(select(ExtensionRequest).where(ExtensionRequest.public_id == public_id))
    if request is None:
        raise not_found("延期申请")
    try:
        access.get_case(ctx.session, _scope(ctx), request.case.public_id)
    except cases.NotFound:
        raise not_found("延期申请") from None
    return request


@endpoint("GET", "/extension-requests", summary="延期申请列表（工委：辖区内；部门：本部门）",
          roles=(DEPARTMENT, STAFF), query=s.ExtensionListQuery, response=s.Page[s.ExtensionOut],
          tag="staff")
def list_extensions(ctx: Context):
    query: s.ExtensionListQuery = ctx.query
    conditions = [access.case_condition(_scope(ctx))]
    if ctx.principal.role == DEPARTMENT:
        conditions.append(ExtensionRequest.department_id == ctx.principal.account.department_id)
    if query.status:
        conditions.append(ExtensionRequest.status == query.status)
    base = select(ExtensionRequest).join(Case, Case.id == ExtensionRequest.case_id).where(*conditions)
    total = ctx.session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = ctx.session.scalars(base.order_by(ExtensionRequest.id.desc())
                               .offset((query.page - 1) * query.page_size).limit(query.page_size)).all()
    return s.Page[s.ExtensionOut](**_page(query, [out.extension_out(r) for r in rows], total))


@endpoint("POST", "/extension-requests/<public_id>/approve", summary="批准延期（按工作日顺延时限）",
          roles=(STAFF,), body=s.DecisionIn, response=s.ExtensionOut, tag="staff", visible=_extension)
def approve_extension(ctx: Context, public_id: str):
    request = _extension(ctx, public_id)
    casework.decide_extension(ctx.session, request, ctx.principal.actor(), ctx.principal.account.id,
                              approve=True, note=ctx.body.note)
    return out.extension_out(request)


@endpoint("POST", "/extension-requests/<public_id>/reject", summary="不批准延期", roles=(STAFF,),
          body=s.DecisionIn, response=s.ExtensionOut, tag="staff", visible=_extension)
def reject_extension(ctx: Context, public_id: str):
    request = _extension(ctx, public_id)
    casework.decide_extension(ctx.session, request, ctx.principal.actor(), ctx.principal.account.id,
                              approve=False, note=ctx.body.note)
    return out.extension_out(request)


# ---------------------------------------------------------------------------------------------- notices
@endpoint("GET", "/notices", summary="给代表、部门、工作人员的通知（督办、提醒、预警、延期审批）",
          roles=(*HANDLERS, "staff"),
          query=s.PageQuery, response=s.Page[s.NoticeOut], tag="handling")
def list_notices(ctx: Context):
    query: s.PageQuery = ctx.query
    account = ctx.principal.account
    if ctx.principal.role == DEPUTY:
        condition = Notice.deputy_id == account.deputy_id
    elif ctx.principal.role == "staff":
        condition = Notice.account_id == account.id
    else:
        condition = Notice.department_id == account.department_id
    total = ctx.session.scalar(select(func.count()).select_from(Notice).where(condition)) or 0
    rows = ctx.session.scalars(select(Notice).where(condition).order_by(Notice.id.desc())
                               .offset((query.page - 1) * query.page_size).limit(query.page_size)).all()
    return s.Page[s.NoticeOut](**_page(query, [out.notice_out(n) for n in rows], total))


# ---------------------------------------------------------------------------------------------- registry
@endpoint("GET", "/departments", summary="职能部门列表", roles=(DEPUTY, DEPARTMENT, STAFF),
          response=list[s.DepartmentOut], tag="registry")
def list_departments(ctx: Context):
    rows = ctx.session.scalars(select(Department).order_by(Department.code)).all()
    return [s.DepartmentOut(code=d.code, name=d.name) for d in rows]


@endpoint("POST", "/departments", summary="登记职能部门", roles=(STAFF,), body=s.DepartmentIn,
          response=s.DepartmentOut, status=201, tag="registry")
def create_department(ctx: Context):
    require_county_staff(ctx)
    department = registry.create_department(ctx.session, ctx.body.code, ctx.body.name)
    return s.DepartmentOut(code=department.code, name=department.name)


@endpoint("GET", "/stations", summary="联络站列表", roles=(STAFF,), response=list[s.StationOut],
          tag="registry")
def list_stations(ctx: Context):
    return [out.station_out(x) for x in ctx.session.scalars(select(Station).order_by(Station.code))]


@endpoint("POST", "/stations", summary="登记联络站", roles=(STAFF,), body=s.StationIn,
          response=s.StationOut, status=201, tag="registry")
def create_station(ctx: Context):
    require_county_staff(ctx)
    station = registry.create_station(ctx.session, **ctx.body.model_dump())
    return out.station_out(station)


@endpoint("GET", "/grids", summary="网格列表", roles=(DEPUTY, STAFF), response=list[s.GridOut],
          tag="registry")
def list_grids(ctx: Context):
    return [out.grid_out(x) for x in ctx.session.scalars(select(Grid).order_by(Grid.code))]


@endpoint("POST", "/grids", summary="登记网格", roles=(STAFF,), body=s.GridIn, response=s.GridOut,
          status=201, tag="registry")
def create_grid(ctx: Context):
    require_county_staff(ctx)
    grid = registry.create_grid(ctx.session, ctx.body.code, ctx.body.name, ctx.body.aliases,
                                ctx.body.station_code, kind=ctx.body.kind)
    return out.grid_out(grid)


@endpoint("GET", "/deputies", summary="代表列表", roles=(STAFF,), response=list[s.DeputyOut],
          tag="registry")
def list_deputies(ctx: Context):
    return [out.deputy_out(x) for x in ctx.session.scalars(select(Deputy).order_by(Deputy.code))]


@endpoint("POST", "/deputies", summary="登记代表及其网格", roles=(STAFF,), body=s.DeputyIn,
          response=s.DeputyOut, status=201, tag="registry")
def create_deputy(ctx: Context):
    require_county_staff(ctx)
    body: s.DeputyIn = ctx.body
    deputy = registry.create_deputy(
        ctx.session, body.code, body.name, body.level, station_code=body.station_code,
        duties=body.duties, reception_hours=body.reception_hours, phone=body.phone,
        grids=[(link.grid_code, link.role) for link in body.grids])
    return out.deputy_out(deputy)


@endpoint("GET", "/accounts", summary="账号列表", roles=(STAFF,), query=s.PageQuery,
          response=s.Page[s.AccountOut], tag="registry")
def list_accounts(ctx: Context):
    query: s.PageQuery = ctx.query
    condition = accounts.staff_account_condition(ctx.principal.account)
    total = ctx.session.scalar(select(func.count()).select_from(Account).where(condition)) or 0
    rows = ctx.session.scalars(select(Account).where(condition).order_by(Account.id)
                               .offset((query.page - 1) * query.page_size).limit(query.page_size)).all()
    return s.Page[s.AccountOut](**_page(query, [out.account_out(a) for a in rows], total))


def _managed_account(ctx: Context, public_id: str) -> Account:
    """An account the calling staff member manages (a station's staff: their station's), else 404."""
    account = ctx.session.scalar(select(Account).where(
        Account.public_id == public_id, accounts.staff_account_condition(ctx.principal.account)))
    if account is None:
        raise not_found("账号")
    return account


@endpoint("POST", "/accounts/<public_id>/disable", summary="停用账号（其所有登录立即失效）", roles=(STAFF,),
          response=s.AccountOut, tag="registry", visible=lambda ctx, public_id: _managed_account(ctx, public_id))
def disable_account(ctx: Context, public_id: str):
    account = _managed_account(ctx, public_id)
    if account.id == ctx.principal.account.id:
        raise ApiError(409, "cannot_disable_self", "不能停用自己的账号")
    return out.account_out(accounts.set_active(ctx.session, account, False))


@endpoint("POST", "/accounts/<public_id>/enable", summary="重新启用账号（需重新登录）", roles=(STAFF,),
          response=s.AccountOut, tag="registry", visible=lambda ctx, public_id: _managed_account(ctx, public_id))
def enable_account(ctx: Context, public_id: str):
    return out.account_out(accounts.set_active(ctx.session, _managed_account(ctx, public_id), True))


@endpoint("POST", "/accounts", summary="登记代表、部门或工委账号（返回一次性绑定码）", roles=(STAFF,),
          body=s.AccountIn, response=s.AccountCreatedOut, status=201, tag="registry")
def create_account(ctx: Context):
    require_county_staff(ctx)
    body: s.AccountIn = ctx.body
    deputy = _by_code(ctx, Deputy, body.deputy_code, "deputy_code", "代表")
    department = _by_code(ctx, Department, body.department_code, "department_code", "部门")
    station = _by_code(ctx, Station, body.station_code, "station_code", "联络站")
    account, code = accounts.create_account(ctx.session, body.role, body.name, deputy=deputy,
                                            department=department, station=station)
    return s.AccountCreatedOut(account=out.account_out(account), binding_code=code)


@endpoint("POST", "/accounts/<public_id>/binding-code", summary="重新发放绑定码（旧码作废）",
          roles=(STAFF,), response=s.BindingCodeOut, status=201, tag="registry",
          visible=lambda ctx, public_id: require_county_staff(ctx))
def reissue_binding_code(ctx: Context, public_id: str):
    require_county_staff(ctx)
    account = ctx.session.scalar(select(Account).where(Account.public_id == public_id))
    if account is None:
        raise not_found("账号")
    return s.BindingCodeOut(binding_code=accounts.new_binding_code(ctx.session, account))


@endpoint("GET", "/openapi.json", summary="本接口的 OpenAPI 3 文档", roles=None, tag="meta")
def openapi_document(ctx: Context):
    from .openapi import build_document

    return build_document(current_app.config.get("API_SERVER_URL"))
