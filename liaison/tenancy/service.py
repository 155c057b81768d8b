"""Counties: add one, find one, and the scope a caller works in.

Adding a county is a row, not a deployment: `python manage.py county add CODE NAME` (or a console
page calling `add_county`) takes effect at once, with no restart.
"""
from __future__ import annotations

import functools
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from liaison.core import db, tenant
from liaison.core.errors import CONFLICT, INVALID, DomainError
from liaison.tenancy.models import City, County

CITY_ROLE = "city"  # liaison.people.service.CITY (tenancy stands below people and cannot import it)
# A county's setting that lets its city's staff open its cases with their personal data.
CITY_PERSONAL_DATA = "city_personal_data"

CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
WECHAT_FIELDS = ("wechat_app_id", "wechat_app_secret", "wechat_token", "wechat_encoding_aes_key")


def add_county(session: Session, code: str, name: str, *, settings: dict[str, Any] | None = None,
               **wechat: str | None) -> County:
    """Register a county (its own official account optional: app id, secret, token, AES key)."""
    code, name = code.strip(), name.strip()
    if not CODE_PATTERN.match(code):
        raise DomainError("县编码只能包含字母、数字、下划线和连字符，最长 32 位", kind=INVALID, field="code")
    if not name:
        raise DomainError("县名称不能为空", kind=INVALID, field="name")
    unknown = set(wechat) - set(WECHAT_FIELDS)
    if unknown:
        raise ValueError(f"unknown county fields: {sorted(unknown)}")
    if session.scalar(select(County.id).where(County.code == code)) is not None:
        raise DomainError(f"县编码 {code} 已存在", kind=CONFLICT, code="county_exists", field="code")
    county = County(code=code, name=name, settings=settings or {}, **wechat)
    session.add(county)
    session.flush()
    return county


def by_code(session: Session, code: str) -> County | None:
    return session.scalar(select(County).where(County.code == code))


def by_app_id(session: Session, app_id: str) -> County | None:
    """The county whose own official account has `app_id` (the webhook per county, the token cache)."""
    return session.scalar(select(County).where(County.wechat_app_id == app_id))


def all_counties(session: Session) -> list[County]:
    return list(session.scalars(select(County).order_by(County.id)))


_ROWS_KEY = "liaison.county_rows"


def county_row(session: Session, county_id: int) -> County | None:
    """The `counties` row `county_id`, read once per transaction of `session`.

    The session's identity map holds unmodified rows only weakly, so `session.get` on a row nobody
    keeps reads it again each time; a case being opened asks for its county's settings three times.
    The rows are kept in `session.info` for the current transaction only: the next one reads afresh.
    """
    held = session.info.get(_ROWS_KEY)
    transaction = session.get_transaction()
    if transaction is not None and held is not None and held[0] is transaction and county_id in held[1]:
        return held[1][county_id]
    with session.no_autoflush:  # a row being written (a case being opened) waits for its own flush
        row = session.get(County, county_id)
    transaction = session.get_transaction()  # the read may have begun it
    if held is None or held[0] is not transaction:
        held = session.info[_ROWS_KEY] = (transaction, {})
    held[1][county_id] = row
    return row


def setting(county: County, name: str, default: Any = None) -> Any:
    """A county's own setting (deadlines, flows, points standards), else the deployment's `default`."""
    return (county.settings or {}).get(name, default)


def add_city(session: Session, code: str, name: str, county_codes: list[str] = ()) -> City:
    """Register a city and put the named counties in it."""
    code, name = code.strip(), name.strip()
    if not CODE_PATTERN.match(code):
        raise DomainError("市编码只能包含字母、数字、下划线和连字符，最长 32 位", kind=INVALID, field="code")
    if not name:
        raise DomainError("市名称不能为空", kind=INVALID, field="name")
    if session.scalar(select(City.id).where(City.code == code)) is not None:
        raise DomainError(f"市编码 {code} 已存在", kind=CONFLICT, code="city_exists", field="code")
    city = City(code=code, name=name)
    session.add(city)
    session.flush()
    for county_code in county_codes:
        join_city(session, county_code, city)
    return city


def join_city(session: Session, county_code: str, city: City) -> County:
    """Put county `county_code` in `city` (its staff see the county's figures at once)."""
    county = by_code(session, county_code)
    if county is None:
        raise DomainError(f"没有编码为 {county_code} 的县", kind=INVALID, field="counties")
    county.city_id = city.id
    session.flush()
    return county


def city_by_code(session: Session, code: str) -> City | None:
    return session.scalar(select(City).where(City.code == code))


def city_counties(session: Session, city_id: int) -> list[County]:
    """The counties of a city, by id."""
    return list(session.scalars(select(County).where(County.city_id == city_id).order_by(County.id)))


def grants_city_personal_data(county: County) -> bool:
    """Whether the county lets its city's staff open its cases with the residents' personal data."""
    return bool(setting(county, CITY_PERSONAL_DATA, False))


def scope_of(principal) -> tenant.Scope:
    """The scope of an authenticated API caller: the county of their account or resident row; for
    city staff, the city scope (`tenant.city`): of the city's counties (read at each request: a county
    joining the city counts at once) only the cases handed up to the city; aggregate views widen to
    `city_aggregate_scope` by name."""
    row = principal.account if principal.account is not None else principal.resident
    if principal.account is not None and principal.role == CITY_ROLE:
        session = object_session(row)
        ids = [c.id for c in city_counties(session, row.city_id)] if row.city_id is not None else []
        if row.city_id is None:
            return tenant.counties([], reason="city staff without a city")
        return tenant.city(row.city_id, ids, write_county=row.county_id)
    return tenant.county(row.county_id)


def city_aggregate_scope(scope: tenant.Scope) -> tenant.Scope:
    """Every case of a city scope's counties, for aggregate views only (figures, the masked 台账):
    what those views show is counts, or rows with personal data masked unless a county grants it."""
    return tenant.counties(scope.city_counties, reason=f"city {scope.city_id} aggregate view")


# ---------------------------------------------------------------------------------------------- workers
def county_ids() -> list[int]:
    """Every county's id (read in a scope of its own: the caller's may be narrower)."""
    with tenant.use(tenant.all_counties("list counties")), db.session_scope() as session:
        return list(session.scalars(select(County.id).order_by(County.id)))


def each_county(work) -> int:
    """Run `work()` once per county, each in that county's scope; the sum of what it returns.

    Sweeps act per county: a county's staff, deputies and deadlines are its own, so a sweep must
    never pick a county-wide recipient (e.g. "the county staff") across counties.
    """
    total = 0
    for county_id in county_ids():
        with tenant.use(tenant.county(county_id)):
            total += work() or 0
    return total


def row_scope(model, row_id) -> tenant.Scope:
    """The scope of the county that owns row `row_id` of `model` (a job handed an id runs there);
    every county, read for what it is, when the row is gone (the job finds nothing to do)."""
    with tenant.use(tenant.all_counties(f"find the county of {model.__tablename__} {row_id}")), \
            db.session_scope() as session:
        county_id = session.scalar(select(model.county_id).where(model.id == row_id))
    if county_id is None:
        return tenant.all_counties(f"{model.__tablename__} {row_id} is gone")
    return tenant.county(county_id)


def per_county(work):
    """Decorator of a sweep: run it once per county, in that county's scope; returns the sum."""
    @functools.wraps(work)
    def run(*args, **kwargs) -> int:
        return each_county(lambda: work(*args, **kwargs))

    return run


def in_row_county(model):
    """Decorator of a job whose first argument is the id of a `model` row: run it in that row's county."""
    def decorate(job):
        @functools.wraps(job)
        def run(row_id, *args, **kwargs):
            with tenant.use(row_scope(model, row_id)):
                return job(row_id, *args, **kwargs)

        return run

    return decorate
