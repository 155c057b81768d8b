"""Counties: add one, find one, and the scope a caller works in.

Adding a county is a row, not a deployment: `python manage.py county add CODE NAME` (or a console
page calling `add_county`) takes effect at once, with no restart.
"""
from __future__ import annotations

import functools
import re
import threading
import time
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.util import identity_key

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


def add_city_county(session: Session, city_id: int, code: str, name: str, *, personal_data: bool = False,
                    **wechat: str | None) -> County:
    """A county added by its city's staff (the console's 县（区） page): in the city at once, its own
    official account optional but complete (all four WeChat fields or none), `personal_data` its
    `city_personal_data` setting. Its webhook `/wechat/<code>` answers at once (no restart)."""
    wechat = {k: (v or "").strip() or None for k, v in wechat.items()}
    given = [k for k in WECHAT_FIELDS if wechat.get(k)]
    if given and len(given) != len(WECHAT_FIELDS):
        raise DomainError("公众号的 AppID、AppSecret、Token 和 EncodingAESKey 须全部填写，或全部留空（使用全市公众号）",
                          kind=INVALID, field="wechat")
    key = wechat.get("wechat_encoding_aes_key")
    if key is not None and not re.fullmatch(r"[A-Za-z0-9+/]{43}", key):
        raise DomainError("EncodingAESKey 应为 43 位（字母、数字、+ 或 /）", kind=INVALID, field="wechat_encoding_aes_key")
    app_id = wechat.get("wechat_app_id")
    if app_id is not None and session.scalar(select(County.id).where(County.wechat_app_id == app_id)) is not None:
        raise DomainError("该公众号 AppID 已被其他县使用", kind=CONFLICT, code="app_id_taken", field="wechat_app_id")
    city = session.get(City, city_id)
    if city is None:
        raise DomainError("账号未关联到市", kind=INVALID, field="city")
    county = add_county(session, code, name, settings={CITY_PERSONAL_DATA: bool(personal_data)}, **wechat)
    county.city_id = city.id
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


SETTINGS_TTL_SECONDS = 30.0  # like the registry snapshot (liaison.people.directory.TTL_SECONDS)
_settings_lock = threading.Lock()
_settings_cache: dict[tuple[str, str, int], tuple[float, dict[str, Any] | None]] = {}
_settings_generation = [0]  # bumped whenever this process writes a county: a read begun before is not kept
_WROTE_COUNTY_KEY = "liaison.wrote_county"


def county_settings(session: Session, county_id: int) -> dict[str, Any] | None:
    """The `settings` of county `county_id` (None: no such county in the session's scope). Read only.

    Every case opened asks for its county's flow and deadlines: the settings are kept in this process
    for `SETTINGS_TTL_SECONDS` (per database, tenant scope and county), so the webhook does not read
    the row on every delivery. A county written through this process is seen at once (its flush and
    its commit empty the cache), and a row this session holds (read or being changed) is used as it
    is; a change made by another process is believed within the TTL, as for the registry snapshot.
    """
    held = session.identity_map.get(identity_key(County, county_id))
    if held is not None:
        return held.settings or {}
    key = (str(session.get_bind().url), tenant.of(session).key, county_id)
    now = time.monotonic()
    cached = _settings_cache.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    generation = _settings_generation[0]
    row = county_row(session, county_id)
    value = None if row is None else (row.settings or {})
    with _settings_lock:
        if generation == _settings_generation[0]:  # no county written by this process meanwhile
            _settings_cache[key] = (now + SETTINGS_TTL_SECONDS, value)
    return value


def forget_county_settings() -> None:
    """Empty the county settings cache (a county was written; tests between databases)."""
    with _settings_lock:
        _settings_generation[0] += 1
        _settings_cache.clear()


@event.listens_for(Session, "after_flush")
def _county_written(session: Session, _context) -> None:
    if any(isinstance(obj, County) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info[_WROTE_COUNTY_KEY] = True
        forget_county_settings()


@event.listens_for(Session, "after_commit")
def _county_committed(session: Session) -> None:
    # Another thread may have read the old row between the flush and the commit: forget it again.
    if session.info.pop(_WROTE_COUNTY_KEY, False):
        forget_county_settings()


@event.listens_for(Session, "after_soft_rollback")
def _county_rolled_back(session: Session, _previous) -> None:
    session.info.pop(_WROTE_COUNTY_KEY, None)


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
