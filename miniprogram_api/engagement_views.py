"""API of the engagement features: registry import/export, 一键找代表 codes and notice boards, broadcast
notices, scan-to-rate surveys and livelihood-project votes. Views parse, call the domain, serialise.

Files travel as base64 inside JSON (`content_base64`): the API is JSON-only and the mini-program writes
them with `FileSystemManager.writeFile(…, "base64")`.
"""
from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import select

from liaison.case import access
from liaison.engagement import broadcasts, noticeboard, qrcodes, surveys, votes
from liaison.people import registry
from liaison.people.models import DEPUTY_LEVEL_NAMES, Deputy, DeputyGrid, Enterprise, Grid, Station

from . import schemas as s
from .framework import ALL_ROLES, ApiError, Context, endpoint, require_county_staff

RESIDENT, DEPUTY, STAFF = "resident", "deputy", "staff"
WRITERS = (DEPUTY, STAFF)


def _wechat():
    from liaison import runtime

    return runtime.current().wechat_here()  # the caller's county's official account


def _content_check():
    """msg_sec_check through the mini-program client (the official account's when none)."""
    from liaison import runtime

    rt = runtime.current()
    client = rt.miniprogram or rt.wechat_here()
    return lambda openid, text: client.msg_sec_check(openid, text)


def _enqueue():
    """The broadcast-chunk enqueuer the app factory wired in (the API never imports jobs)."""
    from flask import current_app

    return current_app.extensions["liaison.enqueue_broadcast_chunk"]


def _file(filename: str, content_type: str, content: bytes) -> "FileOut":
    return FileOut(filename=filename, content_type=content_type,
                   content_base64=base64.b64encode(content).decode("ascii"))


# ---------------------------------------------------------------------------------------------- models
class FileOut(s.Out):
    filename: str
    content_type: str
    content_base64: str


class RegistryImportIn(s.Request):
    filename: str = Field(min_length=5, max_length=100, description="以 .xlsx 或 .csv 结尾")
    content_base64: str = Field(min_length=1, description="文件内容（base64）")
    dry_run: bool = Field(default=False, description="只校验不导入")


class RowErrorOut(s.Out):
    sheet: str
    row: int
    field: str | None
    message: str


class RegistryImportOut(s.Out):
    imported: bool = Field(description="false：文件有错误，未导入任何数据（见 errors）")
    dry_run: bool
    created: dict[str, int]
    updated: dict[str, int]
    errors: list[RowErrorOut] = Field(description="出错的行（最多列出前 100 处）")
    error_count: int = Field(default=0, description="出错的行总数（可能多于 errors 列出的）")


class ExportQuery(s.Request):
    format: Literal["xlsx", "csv"] = "xlsx"
    sheet: Literal["departments", "stations", "grids", "deputies"] | None = Field(
        default=None, description="CSV 时导出哪一张表（默认代表）")


class QrCodeOut(s.Out):
    scene: str
    url: str = Field(description="二维码内容（微信 ticket 的 url）")
    ticket: str
    image_png_base64: str


class EnterpriseOut(s.Out):
    code: str
    name: str
    grid: s.Ref = Field(description="所属企业网格（企业点单交该网格的代表）")
    contact_name: str | None
    contact_phone: str | None


class QrUsageOut(s.Out):
    used: int
    cap: int
    available: int


class BoardQuery(s.Request):
    format: Literal["pdf", "png"] = "pdf"


class BroadcastIn(s.Request):
    title: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1, max_length=broadcasts.MAX_TEXT)
    grid_codes: list[str] = Field(default_factory=list, max_length=200,
                                  description="不填：本人联系的全部网格（代表）或辖区全部网格（工委）")


class MassReportOut(s.Out):
    batches: int = Field(description="群发请求数")
    reported: int = Field(description="微信已回报结果的群发请求数（MASSSENDJOBFINISH）")
    submitted: int = Field(description="提交群发的粉丝数")
    sent: int = Field(description="微信回报发送成功的粉丝数")
    filtered: int = Field(description="微信过滤未发送的粉丝数（已取关、拒收等）")
    errors: int = Field(description="微信回报发送失败的粉丝数")


class ProgressOut(s.Out):
    total: int
    settled: int
    fraction: float
    by_status: dict[str, int]
    by_channel: dict[str, int]
    mass: MassReportOut


class BroadcastOut(s.Out):
    id: str
    title: str
    text: str
    signature: str
    status: str
    content_check: str
    grids: list[s.Ref]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: ProgressOut


class RecipientOut(s.Out):
    resident_id: str
    status: str
    channel: str | None
    sent_at: datetime | None
    errcode: int | None


class RecipientQuery(s.PageQuery):
    status: Literal["pending", "sending", "sent", "miniprogram", "unknown", "cancelled", "mass_retry"] | None = None


class InboxItemOut(s.Out):
    id: str
    title: str
    text: str
    signature: str
    channel: str | None
    created_at: datetime


class SurveyIn(s.Request):
    kind: Literal["station", "report", "case"]
    title: str | None = Field(default=None, min_length=1, max_length=100)
    station_code: str | None = Field(default=None, min_length=1, max_length=32)
    deputy_code: str | None = Field(default=None, min_length=1, max_length=32)
    case_id: str | None = Field(default=None, min_length=1, max_length=32)
    closes_at: datetime | None = None


class SurveyOut(s.Out):
    id: str
    kind: str
    kind_label: str
    title: str
    closes_at: datetime | None


class SurveyVoteIn(s.Request):
    value: s.RatingValue
    comment: str | None = Field(default=None, max_length=500)


class SurveyVoteOut(s.Out):
    survey_id: str
    value: str
    created_at: datetime


class ResultsQuery(s.Request):
    since: datetime | None = None
    until: datetime | None = None


class RatedOut(s.Out):
    counts: dict[str, int]
    rated: int
    satisfaction_rate: float | None = Field(description="满意率 =（满意 + 基本满意）/ 已评价")


class SurveyResultOut(RatedOut):
    id: str
    kind: str
    title: str


class DeputyResultOut(RatedOut):
    code: str
    name: str
    follow_up: bool = Field(description="满意率低于阈值：限期整改")
    report_rate: float | None = Field(None, description="述职评议的满意率（单列）")
    case_rate: float | None = Field(None, description="诉求办理评价的满意率（单列）")


class StationResultOut(RatedOut):
    code: str
    name: str


class SurveyResultsOut(s.Out):
    surveys: list[SurveyResultOut]
    deputies: list[DeputyResultOut]
    stations: list[StationResultOut]
    threshold: float


class CandidateIn(s.Request):
    code: str = s.Code
    title: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)


class ProjectVoteIn(s.Request):
    title: str = Field(min_length=1, max_length=100)
    level: Literal["national", "province", "city", "county", "township"]
    max_choices: int = Field(default=1, ge=1, le=50)
    candidates: list[CandidateIn] = Field(min_length=2, max_length=50)


class BallotIn(s.Request):
    candidates: list[str] = Field(min_length=1, max_length=50, description="所选候选项目编码")


class CandidateOut(s.Out):
    code: str
    title: str
    description: str | None


class TallyOut(s.Out):
    code: str
    title: str
    votes: int
    chosen: bool = Field(description="是否入选（得票超过全体代表半数，或本县设定的多数）")


class ProjectVoteOut(s.Out):
    id: str
    title: str
    level: str
    level_label: str
    max_choices: int
    status: str
    candidates: list[CandidateOut]
    electorate: int
    ballots: int
    published: bool
    tally: list[TallyOut] | None
    eligible: bool = Field(description="当前用户能否投票")


class BallotOut(s.Out):
    vote_id: str
    candidates: list[str]


# ---------------------------------------------------------------------------------------------- registry
@endpoint("POST", "/registry/import", summary="导入联络站、网格、代表、部门（XLSX/CSV，按编码更新或新增；有错误则整份不导入）",
          roles=(STAFF,), body=RegistryImportIn, response=RegistryImportOut, tag="registry")
def import_registry(ctx: Context):
    require_county_staff(ctx)
    try:
        content = base64.b64decode(ctx.body.content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "validation_error", "文件内容不是有效的 base64", "content_base64") from None
    try:
        summary = registry.import_file(ctx.session, ctx.body.filename, content, dry_run=ctx.body.dry_run)
    except registry.ImportRejected as rejected:
        empty = {sheet.key: 0 for sheet in registry.SHEETS}
        return RegistryImportOut(imported=False, dry_run=ctx.body.dry_run, created=empty, updated=empty,
                                 errors=[RowErrorOut(**e.as_dict()) for e in rejected.errors],
                                 error_count=rejected.total)
    return RegistryImportOut(imported=not summary.dry_run, dry_run=summary.dry_run, created=summary.created,
                             updated=summary.updated, errors=[])


@endpoint("GET", "/registry/export", summary="导出登记信息（XLSX 全部表，或 CSV 单表；联络站工委只导出本站的）", roles=(STAFF,),
          query=ExportQuery, response=FileOut, tag="registry")
def export_registry(ctx: Context):
    # A station's staff export their station's part only (deputies' phone numbers stay in it).
    return _file(*registry.export_file(ctx.session, ctx.query.format, ctx.query.sheet,
                                       station_id=ctx.principal.account.station_id))


# ---------------------------------------------------------------------------------------------- QR codes
def _deputy_grid_ids(ctx: Context) -> set[int]:
    return set(ctx.session.scalars(select(DeputyGrid.grid_id).where(
        DeputyGrid.deputy_id == ctx.principal.account.deputy_id)))


def _may_see(ctx: Context, kind: str, row) -> bool:
    """Deputies: themselves and their grids; staff: their jurisdiction."""
    scope = access.scope_of(ctx.session, ctx.principal)
    if ctx.principal.role == DEPUTY:
        if kind == "deputy":
            return row.id == ctx.principal.account.deputy_id
        if kind == "enterprise":
            return row.grid_id in _deputy_grid_ids(ctx)
        return kind == "grid" and row.id in _deputy_grid_ids(ctx)
    if scope.grid_ids is None:
        return True
    station_id = ctx.principal.account.station_id
    if kind == "grid":
        return row.id in scope.grid_ids
    if kind == "enterprise":
        return row.grid_id in scope.grid_ids
    if kind == "deputy":
        return row.station_id == station_id or bool(
            {link.grid_id for link in row.grid_links} & set(scope.grid_ids))
    return row.id == station_id


def _target(ctx: Context, kind: str, code: str):
    model = {"grid": Grid, "deputy": Deputy, "station": Station, "enterprise": Enterprise}[kind]
    row = ctx.session.scalar(select(model).where(model.code == code))
    if row is None or not _may_see(ctx, kind, row):
        raise ApiError(404, "not_found", {"grid": "网格", "deputy": "代表", "station": "联络站",
                                          "enterprise": "企业"}[kind] + "不存在")
    return row


def _qr_out(code) -> QrCodeOut:
    return QrCodeOut(scene=code.scene, url=code.url, ticket=code.ticket,
                     image_png_base64=base64.b64encode(qrcodes.qr_png(code.url)).decode("ascii"))


def _qr(ctx: Context, kind: str, code: str) -> QrCodeOut:
    _target(ctx, kind, code)
    return _qr_out(qrcodes.get_or_create(ctx.session, _wechat(), kind, code))


@endpoint("GET", "/grids/<public_id>/qrcode", summary="网格的一键找代表二维码（永久码，首次生成后复用）",
          roles=WRITERS, response=QrCodeOut, tag="qrcodes")
def grid_qrcode(ctx: Context, public_id: str):
    return _qr(ctx, "grid", public_id)


@endpoint("GET", "/deputies/<public_id>/qrcode", summary="代表的一键找代表二维码", roles=WRITERS,
          response=QrCodeOut, tag="qrcodes")
def deputy_qrcode(ctx: Context, public_id: str):
    return _qr(ctx, "deputy", public_id)


@endpoint("GET", "/stations/<public_id>/qrcode", summary="联络站二维码", roles=(STAFF,), response=QrCodeOut,
          tag="qrcodes")
def station_qrcode(ctx: Context, public_id: str):
    return _qr(ctx, "station", public_id)


@endpoint("GET", "/enterprises", summary="企业网格的登记企业（代表：本人网格的；工委：辖区内的）", roles=WRITERS,
          response=list[EnterpriseOut], tag="qrcodes")
def list_enterprises(ctx: Context):
    rows = ctx.session.scalars(select(Enterprise).order_by(Enterprise.code))
    return [EnterpriseOut(code=e.code, name=e.name, grid=s.Ref(code=e.grid.code, name=e.grid.name),
                          contact_name=e.contact_name, contact_phone=e.contact_phone)
            for e in rows if _may_see(ctx, "enterprise", e)]


@endpoint("GET", "/enterprises/<public_id>/qrcode", summary="企业码：企业的一键找代表二维码（扫码即进入该企业网格，"
          "诉求交网格代表）", roles=WRITERS, response=QrCodeOut, tag="qrcodes")
def enterprise_qrcode(ctx: Context, public_id: str):
    return _qr(ctx, "enterprise", public_id)


@endpoint("GET", "/qrcodes/usage", summary="永久二维码用量（微信上限 100,000 个）", roles=(STAFF,),
          response=QrUsageOut, tag="qrcodes")
def qrcode_usage(ctx: Context):
    return QrUsageOut(**qrcodes.usage(ctx.session))


@endpoint("GET", "/deputies/<public_id>/notice-board", summary="代表公示牌（PDF 或 PNG，含一键找代表二维码）",
          roles=WRITERS, query=BoardQuery, response=FileOut, tag="qrcodes")
def notice_board(ctx: Context, public_id: str):
    deputy = _target(ctx, "deputy", public_id)
    card = noticeboard.card_for(ctx.session, _wechat(), deputy)
    if ctx.query.format == "png":
        return _file(f"公示牌-{deputy.code}.png", "image/png", noticeboard.render_png(card))
    return _file(f"公示牌-{deputy.code}.pdf", "application/pdf", noticeboard.render_pdf(card))


# ---------------------------------------------------------------------------------------------- broadcasts
def _replay_check(resolve):
    """A `visible` hook for the replay of a stored answer: resolve the path's object for the caller
    again, with the domain's refusals answered as API errors."""
    def check(ctx: Context, public_id: str) -> None:
        resolve(ctx, public_id)

    return check


_BROADCAST_VISIBLE = _replay_check(lambda ctx, public_id: broadcasts.get(ctx.session, ctx.principal, public_id))
_VOTE_VISIBLE = _replay_check(lambda ctx, public_id: votes.by_public_id(ctx.session, public_id))


def _broadcast_out(ctx: Context, broadcast) -> BroadcastOut:
    grids = ctx.session.scalars(select(Grid).where(Grid.id.in_(broadcast.grid_ids or [])).order_by(Grid.code))
    return BroadcastOut(id=broadcast.public_id, title=broadcast.title, text=broadcast.text,
                        signature=broadcast.signature, status=broadcast.status,
                        content_check=broadcast.content_check,
                        grids=[s.Ref(code=g.code, name=g.name) for g in grids], created_at=broadcast.created_at,
                        started_at=broadcast.started_at, finished_at=broadcast.finished_at,
                        progress=ProgressOut(**broadcasts.progress(ctx.session, broadcast)))


@endpoint("POST", "/broadcasts", summary="发布通知（代表：本人联系的网格；工委：辖区网格）；内容先经安全检查",
          roles=WRITERS, body=BroadcastIn, response=BroadcastOut, status=201, tag="broadcasts")
def create_broadcast(ctx: Context):
    body: BroadcastIn = ctx.body
    broadcast = broadcasts.submit(ctx.session, ctx.principal, body.title, body.text, body.grid_codes,
                                  _content_check(), _enqueue())
    return _broadcast_out(ctx, broadcast)


@endpoint("GET", "/broadcasts", summary="通知列表（代表：本人发布的；工委：辖区内的）", roles=WRITERS,
          response=list[BroadcastOut], tag="broadcasts")
def list_broadcasts(ctx: Context):
    return [_broadcast_out(ctx, b) for b in broadcasts.list_for(ctx.session, ctx.principal, limit=100)]


@endpoint("GET", "/broadcasts/<public_id>", summary="通知详情与发送进度", roles=WRITERS, response=BroadcastOut,
          tag="broadcasts")
def get_broadcast(ctx: Context, public_id: str):
    return _broadcast_out(ctx, broadcasts.get(ctx.session, ctx.principal, public_id))


@endpoint("GET", "/broadcasts/<public_id>/recipients", summary="逐人送达状态", roles=WRITERS,
          query=RecipientQuery, response=s.Page[RecipientOut], tag="broadcasts")
def broadcast_recipients(ctx: Context, public_id: str):
    broadcast = broadcasts.get(ctx.session, ctx.principal, public_id)
    query: RecipientQuery = ctx.query
    rows, total = broadcasts.recipients(ctx.session, broadcast, status=query.status, page=query.page,
                                        page_size=query.page_size)
    items = [RecipientOut(resident_id=pid, status=r.status, channel=r.channel, sent_at=r.sent_at,
                          errcode=r.errcode) for r, pid in rows]
    return s.Page[RecipientOut](items=items, page=query.page, page_size=query.page_size, total=total)


@endpoint("POST", "/broadcasts/<public_id>/approve", summary="工委审核通过（内容安全检查建议人工复核的通知）",
          roles=(STAFF,), response=BroadcastOut, tag="broadcasts", visible=_BROADCAST_VISIBLE)
def approve_broadcast(ctx: Context, public_id: str):
    broadcast = broadcasts.get(ctx.session, ctx.principal, public_id)
    return _broadcast_out(ctx, broadcasts.approve(ctx.session, ctx.principal, broadcast, _enqueue()))


@endpoint("POST", "/broadcasts/<public_id>/cancel", summary="撤回通知（尚未送达的群众不再收到）", roles=WRITERS,
          response=BroadcastOut, tag="broadcasts", visible=_BROADCAST_VISIBLE)
def cancel_broadcast(ctx: Context, public_id: str):
    broadcast = broadcasts.get(ctx.session, ctx.principal, public_id)
    return _broadcast_out(ctx, broadcasts.cancel(ctx.session, ctx.principal, broadcast))


@endpoint("POST", "/broadcasts/<public_id>/resume", summary="继续发送（工作进程中断后；不会重复送达）",
          roles=(STAFF,), response=BroadcastOut, tag="broadcasts", visible=_BROADCAST_VISIBLE)
def resume_broadcast(ctx: Context, public_id: str):
    broadcast = broadcasts.get(ctx.session, ctx.principal, public_id)
    broadcasts.resume(ctx.session, broadcast.id, _enqueue())
    ctx.session.refresh(broadcast)
    return _broadcast_out(ctx, broadcast)


@endpoint("GET", "/broadcast-inbox", summary="我收到的通知（小程序内，每条通知每人一份）", roles=(RESIDENT,),
          query=s.PageQuery, response=s.Page[InboxItemOut], tag="resident")
def broadcast_inbox(ctx: Context):
    query: s.PageQuery = ctx.query
    rows, total = broadcasts.inbox(ctx.session, ctx.principal.resident, page=query.page,
                                   page_size=query.page_size)
    items = [InboxItemOut(id=b.public_id, title=b.title, text=b.text, signature=b.signature, channel=r.channel,
                          created_at=b.created_at) for r, b in rows]
    return s.Page[InboxItemOut](items=items, page=query.page, page_size=query.page_size, total=total)


# ---------------------------------------------------------------------------------------------- surveys
def _survey_out(survey) -> SurveyOut:
    return SurveyOut(id=survey.public_id, kind=survey.kind, kind_label=surveys.KIND_LABELS[survey.kind],
                     title=survey.title, closes_at=survey.closes_at)


def _visible_survey(ctx: Context, public_id: str):
    survey = surveys.by_public_id(ctx.session, public_id)
    if not surveys.visible_to(ctx.principal, survey):
        raise ApiError(404, "not_found", "评价不存在")
    return survey


def _open_survey(ctx: Context, public_id: str):
    """The survey if the caller may see it (a case survey: the case's residents and handlers), else 404."""
    survey = surveys.by_public_id(ctx.session, public_id)
    if not surveys.open_to(ctx.session, ctx.principal, survey):
        raise ApiError(404, "not_found", "评价不存在")
    return survey


@endpoint("POST", "/surveys", summary="创建扫码评价（联络站服务、代表述职、单个诉求）", roles=WRITERS,
          body=SurveyIn, response=SurveyOut, status=201, tag="surveys")
def create_survey(ctx: Context):
    body: SurveyIn = ctx.body
    survey = surveys.create(ctx.session, ctx.principal, body.kind, body.title, station_code=body.station_code,
                            deputy_code=body.deputy_code, case_public_id=body.case_id, closes_at=body.closes_at)
    return _survey_out(survey)


@endpoint("GET", "/surveys/<public_id>", summary="评价详情（扫码进入小程序时）", roles=ALL_ROLES,
          response=SurveyOut, tag="surveys")
def get_survey(ctx: Context, public_id: str):
    return _survey_out(_open_survey(ctx, public_id))


@endpoint("POST", "/surveys/<public_id>/votes", summary="群众评价（满意/基本满意/不满意，每人一次）",
          roles=(RESIDENT,), body=SurveyVoteIn, response=SurveyVoteOut, status=201, tag="surveys",
          visible=_replay_check(_open_survey))
def vote_survey(ctx: Context, public_id: str):
    survey = _open_survey(ctx, public_id)
    row = surveys.vote(ctx.session, survey, ctx.principal.resident, ctx.body.value, ctx.body.comment)
    return SurveyVoteOut(survey_id=survey.public_id, value=row.value, created_at=row.created_at)


@endpoint("GET", "/surveys/<public_id>/qrcode", summary="评价二维码（永久码）", roles=WRITERS,
          response=QrCodeOut, tag="surveys")
def survey_qrcode(ctx: Context, public_id: str):
    survey = _visible_survey(ctx, public_id)
    return _qr_out(qrcodes.get_or_create(ctx.session, _wechat(), "survey", survey.public_id))


@endpoint("GET", "/survey-results", summary="满意率（按评价、代表、联络站）；低于 90% 的代表标记限期整改",
          roles=WRITERS, query=ResultsQuery, response=SurveyResultsOut, tag="surveys")
def survey_results(ctx: Context):
    return SurveyResultsOut(**surveys.results(ctx.session, ctx.principal, since=ctx.query.since,
                                              until=ctx.query.until))


# ---------------------------------------------------------------------------------------------- votes
def _vote_out(ctx: Context, vote) -> ProjectVoteOut:
    summary = votes.summary(ctx.session, vote)
    return ProjectVoteOut(
        id=vote.public_id, title=vote.title, level=vote.level, level_label=DEPUTY_LEVEL_NAMES[vote.level],
        max_choices=vote.max_choices, status=vote.status,
        candidates=[CandidateOut(code=c.code, title=c.title, description=c.description)
                    for c in votes.candidates_of(ctx.session, vote)],
        electorate=summary["electorate"], ballots=summary["ballots"], published=summary["published"],
        tally=[TallyOut(**t) for t in summary["tally"]] if summary["tally"] is not None else None,
        eligible=votes.eligible(ctx.session, ctx.principal, vote))


@endpoint("POST", "/project-votes", summary="发起民生实事票决（县级工委）", roles=(STAFF,), body=ProjectVoteIn,
          response=ProjectVoteOut, status=201, tag="votes")
def create_project_vote(ctx: Context):
    body: ProjectVoteIn = ctx.body
    vote = votes.create(ctx.session, ctx.principal, body.title, body.level,
                        [c.model_dump() for c in body.candidates], body.max_choices)
    return _vote_out(ctx, vote)


@endpoint("GET", "/project-votes", summary="民生实事票决列表", roles=WRITERS, response=list[ProjectVoteOut],
          tag="votes")
def list_project_votes(ctx: Context):
    from liaison.engagement.models import ProjectVote

    rows = ctx.session.scalars(select(ProjectVote).order_by(ProjectVote.id.desc()).limit(100))
    return [_vote_out(ctx, v) for v in rows]


@endpoint("GET", "/project-votes/<public_id>", summary="票决详情（结束后公布结果）", roles=WRITERS,
          response=ProjectVoteOut, tag="votes")
def get_project_vote(ctx: Context, public_id: str):
    return _vote_out(ctx, votes.by_public_id(ctx.session, public_id))


@endpoint("POST", "/project-votes/<public_id>/ballots", summary="代表投票（仅该层级代表，每人一票）",
          roles=(DEPUTY,), body=BallotIn, response=BallotOut, status=201, tag="votes",
          visible=_VOTE_VISIBLE)
def cast_ballot(ctx: Context, public_id: str):
    vote = votes.by_public_id(ctx.session, public_id)
    votes.cast(ctx.session, ctx.principal, vote, ctx.body.candidates)
    return BallotOut(vote_id=vote.public_id, candidates=list(dict.fromkeys(ctx.body.candidates)))


@endpoint("POST", "/project-votes/<public_id>/close", summary="结束票决并公布结果（县级工委）", roles=(STAFF,),
          response=ProjectVoteOut, tag="votes", visible=_VOTE_VISIBLE)
def close_project_vote(ctx: Context, public_id: str):
    vote = votes.by_public_id(ctx.session, public_id)
    return _vote_out(ctx, votes.close(ctx.session, ctx.principal, vote))

