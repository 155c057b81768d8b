"""City staff (role `city`): each county's and the whole city's figures; a county's cases only where
the county's settings grant the city its residents' personal data (`city_personal_data`)."""
from __future__ import annotations

from pydantic import Field
from sqlalchemy import select

from liaison.case import access, stats
from liaison.case.models import Case
from liaison.tenancy import service as tenancy
from liaison.tenancy.models import City

from . import schemas as s
from . import serializers as out
from .framework import ApiError, Context, endpoint, not_found

CITY = "city"


class FiguresOut(s.Out):
    received: int = Field(description="受理量：除不予受理、并单、撤回外的诉求数")
    concluded: int = Field(description="办结量：已办结（待评价、已销号、未评价）")
    conclusion_rate: float | None = Field(description="办结率 = 办结量 / 受理量")
    rated: int
    satisfaction_rate: float | None = Field(description="满意率 =（满意 + 基本满意）/ 已评价")


class CountyFiguresOut(FiguresOut):
    code: str
    name: str
    personal_data: bool = Field(description="本县是否允许市级查看诉求的群众个人信息")


class CityFiguresOut(s.Out):
    city: s.Ref
    counties: list[CountyFiguresOut]
    total: FiguresOut


def _figures(figures: stats.Figures) -> dict:
    return dict(received=figures.received, concluded=figures.concluded,
                conclusion_rate=figures.conclusion_rate, rated=figures.rated,
                satisfaction_rate=figures.satisfaction_rate)


def _city(ctx: Context) -> City:
    city = ctx.session.get(City, ctx.principal.account.city_id)
    if city is None:
        raise ApiError(403, "no_city", "账号未关联到市")
    return city


@endpoint("GET", "/city/figures", summary="市级：各县和全市的受理量、办结率、满意率（不含个人信息）",
          roles=(CITY,), response=CityFiguresOut, tag="city")
def city_figures(ctx: Context):
    city = _city(ctx)
    counties = tenancy.city_counties(ctx.session, city.id)
    figures = stats.county_figures(ctx.session, [c.id for c in counties])
    total = sum(figures.values(), stats.Figures())
    return CityFiguresOut(
        city=s.Ref(code=city.code, name=city.name),
        counties=[CountyFiguresOut(code=c.code, name=c.name, personal_data=tenancy.grants_city_personal_data(c),
                                   **_figures(figures[c.id])) for c in counties],
        total=FiguresOut(**_figures(total)))


@endpoint("GET", "/city/cases/<public_id>", summary="市级：查看诉求详情（仅限授权市级查看个人信息的县）",
          roles=(CITY,), response=s.CaseDetailOut, tag="city")
def city_case(ctx: Context, public_id: str):
    city = _city(ctx)
    counties = {c.id: c for c in tenancy.city_counties(ctx.session, city.id)}
    case = ctx.session.scalar(select(Case).where(access.case_reference(public_id),
                                                 Case.county_id.in_(list(counties))))
    if case is None:
        raise not_found()
    if not tenancy.grants_city_personal_data(counties[case.county_id]):
        raise ApiError(403, "personal_data_not_granted", "该县未授权市级查看诉求中的群众个人信息，请查看统计数据")
    # Read-only: city staff act on no case (no action of access.ACTION_ROLES is theirs).
    return out.case_detail(ctx.session, access.Scope(ctx.principal, None), case)
