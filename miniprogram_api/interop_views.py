"""Interop endpoints: deputies' 随手拍 (代表直通车, liaison.interop.snapshot) and the Open311 partner
keys county staff issue and revoke (liaison.interop.service)."""
from __future__ import annotations

from datetime import datetime

from pydantic import Field

from liaison.case import access
from liaison.interop import service as interop
from liaison.interop import snapshot
from liaison.people.models import Grid

from . import schemas as s
from . import serializers as out
from .framework import Context, endpoint, not_found, require_county_staff
from .views import _by_code


@endpoint("POST", "/snapshots", summary="代表随手拍：文字、位置和照片，作为代表直通车诉求办理（时限更短）",
          roles=("deputy",), body=s.CaseIn, response=s.CaseDetailOut, status=201, tag="cases")
def report_snapshot(ctx: Context):
    body: s.CaseIn = ctx.body
    grid = _by_code(ctx, Grid, body.grid_code, "grid_code", "网格")
    case = snapshot.report(ctx.session, ctx.principal.account, body.text, photos=body.photos,
                           location=body.location.model_dump() if body.location else None, grid=grid)
    return out.case_detail(ctx.session, access.scope_of(ctx.session, ctx.principal), case)


# ------------------------------------------------------------------ Open311 partner keys (county staff)
PARTNERS_STAFF_ONLY = "只有县级工委账号可以签发和停用对接密钥"


class PartnerIn(s.Request):
    name: str = Field(min_length=1, max_length=100, description="对接方名称，如 县12345热线")


class PartnerOut(s.Out):
    id: str
    name: str
    key_prefix: str
    active: bool
    created_at: datetime


class IssuedPartnerOut(PartnerOut):
    api_key: str = Field(description="只在签发时显示一次；系统只保存其摘要")


def _partner_out(partner, model=PartnerOut, **extra):
    return model(id=partner.public_id, name=partner.name, key_prefix=partner.key_prefix,
                 active=partner.revoked_at is None, created_at=partner.created_at, **extra)


@endpoint("GET", "/open311/partners", summary="Open311 对接方及其密钥状态", roles=("staff",),
          response=list[PartnerOut], tag="interop")
def list_partners(ctx: Context):
    require_county_staff(ctx, PARTNERS_STAFF_ONLY)
    return [_partner_out(p) for p in interop.partners(ctx.session)]


@endpoint("POST", "/open311/partners", summary="签发 Open311 对接密钥（只显示一次）", roles=("staff",),
          body=PartnerIn, response=IssuedPartnerOut, status=201, tag="interop")
def issue_partner(ctx: Context):
    require_county_staff(ctx, PARTNERS_STAFF_ONLY)
    partner, key = interop.issue_key(ctx.session, ctx.body.name, created_by=ctx.principal.account.id)
    return _partner_out(partner, IssuedPartnerOut, api_key=key)


@endpoint("POST", "/open311/partners/<public_id>/revoke", summary="停用 Open311 对接密钥（立即生效）",
          roles=("staff",), response=PartnerOut, tag="interop",
          visible=lambda ctx, public_id: require_county_staff(ctx, PARTNERS_STAFF_ONLY))
def revoke_partner(ctx: Context, public_id: str):
    require_county_staff(ctx, PARTNERS_STAFF_ONLY)
    try:
        partner = interop.revoke_key(ctx.session, public_id)
    except interop.Open311Error:
        raise not_found("对接方") from None
    return _partner_out(partner)
