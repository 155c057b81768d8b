"""The tenant scope: which counties a unit of work may see and which county it writes in.

Every county-owned table carries `county_id` (the `TenantOwned` mixin). Isolation is enforced twice:

1. In the domain: every ORM statement a session executes (SELECT, and ORM-enabled UPDATE/DELETE)
   gets `county_id IN (<scope>)` on every county-owned entity it touches (`with_loader_criteria`
   on the mixin, so joins, relationship loads and `session.get` are covered), and every new row
   gets its county before it is flushed (its parent's county, else the scope's write county; a
   row with neither is refused).
2. In PostgreSQL: row-level security policies on `county_id` read the transaction-local settings
   `liaison.county_ids` ("1,2"), `liaison.all_counties` ("on" for system work) and
   `liaison.county_id` (the write county, also the column's server default), which `after_begin` sets from the same scope. The app connects with a
   role that cannot bypass them (see `liaison.tenancy.roles`).

The scope of a session is taken from the context variable when the session first needs it and
stays with the session (`session.info`); `switch()` changes it mid-transaction (the API
authenticates across counties, then narrows to the caller's county). With no scope set anywhere
the single default county applies: the embedded SQLite default, the CLI and the tests stay
single-county without naming it. Workers, sweeps and migrations ask for every county by name
(`all_counties(reason)`).

Statements not covered by (1): `text()` SQL, and Core statements on a `Table` rather than a mapped
class, also when loaded as entities (`from_statement`: the webhook's find-or-insert of a resident);
the subquery of `insert().from_select()`. PostgreSQL's policies cover
them; on SQLite there is one county.
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

from sqlalchemy import FetchedValue, ForeignKey, Integer, any_, bindparam, event, false, inspect
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, Session, mapped_column, with_loader_criteria

from liaison.core import driver

DEFAULT_COUNTY_ID = 1
IDS_SETTING = "liaison.county_ids"
ALL_SETTING = "liaison.all_counties"
WRITE_SETTING = "liaison.county_id"
CITY_SETTING = "liaison.city_id"
_SCOPE_KEY = "liaison.tenant_scope"


class TenantScopeError(RuntimeError):
    """A write without a county, or into a county outside the scope: a programming error."""


@dataclass(frozen=True)
class Scope:
    """`county_ids` None means every county (system work). `write_county` is where rows without a
    parent land; None refuses them."""

    county_ids: frozenset[int] | None
    write_county: int | None
    reason: str = ""
    # City staff (三级联动): no county wholesale, only the rows `CITY_RULES` lets city `city_id` see
    # in its counties `city_counties` (the cases handed up to it, their timelines, the registry).
    city_id: int | None = None
    city_counties: frozenset[int] = frozenset()

    @property
    def every_county(self) -> bool:
        return self.county_ids is None

    def allows(self, county_id: int) -> bool:
        return (self.county_ids is None or county_id in self.county_ids
                or (self.city_id is not None and county_id in self.city_counties))

    @cached_property  # a frozen scope: computed once (asked several times per unit of work)
    def ids_setting(self) -> str:
        return "all" if self.county_ids is None else ",".join(str(i) for i in sorted(self.county_ids))

    @cached_property
    def key(self) -> str:
        """A short string naming what the scope sees (cache keys per scope)."""
        return self.ids_setting if self.city_id is None else f"city:{self.city_id}"


def county(county_id: int) -> Scope:
    """One county's scope: its staff, deputies, handlers and residents."""
    return Scope(frozenset({county_id}), county_id)


def counties(county_ids, write_county: int | None = None, reason: str = "") -> Scope:
    """Several counties (city staff); writes only where `write_county` says."""
    return Scope(frozenset(county_ids), write_county, reason)


def city(city_id: int, county_ids, write_county: int | None = None, reason: str = "") -> Scope:
    """City staff of `city_id`: no county's rows wholesale; the rows of its counties `county_ids` that
    `CITY_RULES` names (a case handed up to the city, its timeline, the registry); `write_county` (the
    staff account's own county) holds their idempotency keys. Aggregate views
    widen explicitly to `counties(county_ids)` and show counts or masked rows only."""
    return Scope(frozenset(), write_county, reason or f"city {city_id} staff", city_id, frozenset(county_ids))


def all_counties(reason: str, write_county: int | None = None) -> Scope:
    """Every county, asked for by name (workers, sweeps, migrations, authentication)."""
    if not reason:
        raise ValueError("say why a unit of work needs every county")
    return Scope(None, write_county, reason)


DEFAULT = county(DEFAULT_COUNTY_ID)
_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("liaison_tenant_scope", default=None)
_fallback: Scope | None = DEFAULT
_criteria_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("liaison_tenant_criteria",
                                                                          default=True)


def current() -> Scope:
    """The scope new sessions get: the context's, else the single-county fallback."""
    scope = _current.get() or _fallback
    if scope is None:
        raise TenantScopeError("no tenant scope: set one with liaison.core.tenant.use(...)")
    return scope


def set_fallback(scope: Scope | None) -> None:
    """The scope of units of work that name none (default: the default county). A multi-county
    deployment may pass None so that any such unit of work fails loudly."""
    global _fallback
    _fallback = scope


@contextmanager
def use(scope: Scope) -> Iterator[Scope]:
    """Run the block (and the sessions it creates) in `scope`."""
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def of(session: Session) -> Scope:
    """The session's scope (captured from the context when first asked)."""
    scope = session.info.get(_SCOPE_KEY)
    if scope is None:
        scope = session.info[_SCOPE_KEY] = current()
    return scope


def switch(session: Session, scope: Scope) -> None:
    """Move `session` (and the rest of this context) to `scope`, inside its transaction too."""
    session.info[_SCOPE_KEY] = scope
    _current.set(scope)
    if session.in_transaction():
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            _set_pg(connection, scope)


@contextmanager
def widened(session: Session, scope: Scope) -> Iterator[None]:
    """Run a block of a unit of work in another scope, then return to the session's own."""
    before = of(session)
    token = _current.set(scope)
    switch(session, scope)
    try:
        yield
    finally:
        switch(session, before)
        _current.reset(token)


@contextmanager
def without_domain_criteria() -> Iterator[None]:
    """Tests only: drop the domain's criteria so that row-level security alone is what isolates."""
    token = _criteria_enabled.set(False)
    try:
        yield
    finally:
        _criteria_enabled.reset(token)


class TenantOwned:
    """Mixin of every county-owned table: `county_id`, NOT NULL, indexed, filled by the scope.

    The database default (`FetchedValue`: the write county on PostgreSQL, 1 on SQLite) serves Core
    inserts; ORM inserts get it from `_fill_county` before the flush.
    """

    county_id: Mapped[int] = mapped_column(ForeignKey("counties.id"), index=True,
                                           server_default=FetchedValue())


# ---------------------------------------------------------------------------------------------- hooks
# What city staff may see of each county-owned class, by class: a function of the city's id giving a
# condition on the class (its counties' ids are checked besides). Registered next to the models
# (`city_rule`); a class not registered shows city staff nothing. Migration 0019's `city_access`
# policies say the same in PostgreSQL.
CITY_RULES: dict[type, object] = {}


def city_rule(cls):
    """Decorator of `rule(city_id) -> condition`: what city staff see of `cls` (see `CITY_RULES`)."""
    def register(rule):
        CITY_RULES[cls] = rule
        return rule

    return register


SCOPE_SQL = ("SELECT set_config(%(ids_name)s, %(ids)s, true), set_config(%(all_name)s, %(all)s, true),"
             " set_config(%(write_name)s, %(write)s, true), set_config(%(city_name)s, %(city)s, true)")


def _set_pg(connection, scope: Scope) -> None:
    write = "" if scope.write_county is None else str(scope.write_county)
    ids = "" if scope.county_ids is None else scope.ids_setting
    # Straight to the driver: the first statement of every transaction, so of every delivery.
    driver.execute(connection, SCOPE_SQL, {
        "ids_name": IDS_SETTING, "ids": ids, "all_name": ALL_SETTING,
        "all": "on" if scope.county_ids is None else "off", "write_name": WRITE_SETTING, "write": write,
        "city_name": CITY_SETTING, "city": "" if scope.city_id is None else str(scope.city_id)})


@event.listens_for(Session, "after_begin")
def _begin_in_scope(session: Session, _transaction, connection) -> None:
    if connection.dialect.name == "postgresql":
        _set_pg(connection, of(session))


@event.listens_for(Session, "do_orm_execute")
def _add_tenant_criteria(state) -> None:
    if state.is_column_load or not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_from_statement:
        # Its SQL is given (a Core statement loaded as entities): loader criteria cannot change it,
        # only cost a copy whose cache key is computed afresh. Loads from its rows pass here again.
        return
    scope = of(state.session)
    if scope.every_county or not _criteria_enabled.get():
        return
    if scope.city_id is not None:
        state.statement = state.statement.options(*_city_criteria(state.session, scope))
        return
    state.statement = state.statement.options(_county_criteria(tuple(sorted(scope.county_ids))))


_county_criteria_options: dict[tuple[int, ...], object] = {}


def _county_criteria(ids: tuple[int, ...]):
    """`county_id IN ids` on every county-owned entity, as a statement option: built once per set of
    counties (an option is immutable; building one per SELECT cost the webhook ~2 % of its CPU)."""
    option = _county_criteria_options.get(ids)
    if option is None:
        option = with_loader_criteria(TenantOwned, lambda cls: cls.county_id.in_(ids), include_aliases=True)
        if len(_county_criteria_options) < 1024:  # scopes are few; a bound, not an eviction policy
            _county_criteria_options[ids] = option
    return option


def _city_criteria(session: Session, scope: Scope) -> list:
    """One criterion per county-owned class for city staff: its `CITY_RULES` entry within the city's
    counties, else nothing at all."""
    counties = tuple(sorted(scope.city_counties))
    options = []
    for cls in _tenant_classes():
        rule = CITY_RULES.get(cls)
        condition = false() if rule is None or not counties else (cls.county_id.in_(counties)
                                                                   & rule(scope.city_id))
        options.append(with_loader_criteria(cls, condition, include_aliases=True))
    return options


def _tenant_classes() -> list[type]:
    """Every mapped county-owned class (the subclasses of `TenantOwned` that have a table)."""
    found, todo = [], list(TenantOwned.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if "__mapper__" in vars(cls) or hasattr(cls, "__table__"):
            found.append(cls)
    return found


def _parent_county(session: Session, obj) -> int | None:
    """The county of a row `obj` points at (a many-to-one parent that is county-owned)."""
    mapper = inspect(obj).mapper
    for rel in mapper.relationships:
        if rel.direction.name != "MANYTOONE" or not issubclass(rel.mapper.class_, TenantOwned):
            continue
        parent = inspect(obj).attrs[rel.key].loaded_value
        if isinstance(parent, TenantOwned) and parent.county_id is not None:
            return parent.county_id
    for column in mapper.columns:
        for fk in column.foreign_keys:
            if fk.target_fullname.startswith("counties."):
                continue
            target = fk.column.table
            if "county_id" not in target.c:
                continue
            value = getattr(obj, mapper.get_property_by_column(column).key, None)
            if value is None:
                continue
            with session.no_autoflush:
                found = session.connection().execute(
                    target.select().with_only_columns(target.c.county_id).where(fk.column == value)
                ).scalar()
            if found is not None:
                return found
    return None


def in_county_ids(column, postgresql: bool):
    """`column` among the parameter `county_ids` (the scope's counties, which a given statement names
    itself): `= ANY(:county_ids)` on PostgreSQL, one array parameter, so the statement's SQL is the
    same for any number of counties (`db.run` takes it); `IN (…)` elsewhere."""
    if postgresql:
        return column == any_(bindparam("county_ids", type_=ARRAY(Integer)))
    return column.in_(bindparam("county_ids", expanding=True))


def writes_by_statement(session: Session) -> bool:
    """Whether a Core statement may write county-owned rows in place of the ORM's flush: on
    PostgreSQL (its policies check the county), in a scope of whole counties (city staff's rules are
    the ORM's criteria, which a given statement does not get)."""
    return of(session).city_id is None and session.get_bind().dialect.name == "postgresql"


def county_for_new(session: Session, obj) -> int:
    """The county a new county-owned row `obj` is written in: its own, else (several counties
    visible: a worker, city staff) its parent's, else the scope's write county; checked against the
    scope. What `_fill_county` gives every new row before a flush, for a row a statement writes."""
    scope = of(session)
    county_id = obj.county_id
    if county_id is None and scope.county_ids != frozenset({scope.write_county}):
        # Several counties are visible (a worker, city staff): the row belongs where its parent is.
        county_id = _parent_county(session, obj)
    if county_id is None:
        county_id = scope.write_county
    if county_id is None:
        raise TenantScopeError(f"a new {type(obj).__name__} has no county (scope: {scope.reason or scope.key})")
    if not scope.allows(county_id):
        raise TenantScopeError(f"a new {type(obj).__name__} of county {county_id} is outside the scope")
    return county_id


@event.listens_for(Session, "before_flush")
def _fill_county(session: Session, _context, _instances) -> None:
    for obj in session.new:
        if isinstance(obj, TenantOwned):
            obj.county_id = county_for_new(session, obj)
