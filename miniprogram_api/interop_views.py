"""随手拍 (代表直通车): a deputy's report from a grid walk becomes a case (liaison.interop.snapshot)."""
from __future__ import annotations

from liaison.case import access
from liaison.interop import snapshot
from liaison.people.models import Grid

from . import schemas as s
from . import serializers as out
from .framework import Context, endpoint
from .views import _by_code


@endpoint("POST", "/snapshots", summary="代表随手拍：文字、位置和照片，作为代表直通车诉求办理（时限更短）",
          roles=("deputy",), body=s.CaseIn, response=s.CaseDetailOut, status=201, tag="cases")
def report_snapshot(ctx: Context):
    body: s.CaseIn = ctx.body
    grid = _by_code(ctx, Grid, body.grid_code, "grid_code", "网格")
    case = snapshot.report(ctx.session, ctx.principal.account, body.text, photos=body.photos,
                           location=body.location.model_dump() if body.location else None, grid=grid)
    return out.case_detail(ctx.session, access.scope_of(ctx.session, ctx.principal), case)
