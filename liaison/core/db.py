"""Engine and session handling for the domain; no Flask here.

Every process calls `init_engine(url)` once at start-up; units of work use `session_scope()`.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Callable, Iterator

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.base import instance_state
from sqlalchemy import bindparam, inspect, select

from liaison.core import driver, tenant  # tenant: installs the tenant scope on every session


class Base(DeclarativeBase):
    """Declarative base of every model."""


_engine: Engine | None = None
_session_factory: sessionmaker[Session] | None = None
_after_commit_hooks: list[Callable[[Session], None]] = []


def init_engine(url: str, **kwargs) -> Engine:
    """Create the process-wide engine (replacing any earlier one) and return it."""
    global _engine, _session_factory
    if _engine is not None:
        _engine.dispose()
    # Statement parameters are openids, phone numbers and complaint texts: keep them out of exception
    # messages, and so out of logs, tracebacks and RQ's failed-job records.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
    else:
        # A pooled connection is pinged before use only when it sat idle (see `_ping_if_idle`).
        ping_idle = not kwargs.get("pool_pre_ping", False)
        # WeChat waits 5 s for the webhook's answer: a hung or unreachable server, or a pool with no
        # free connection, must fail fast enough for the webhook to spool the delivery and answer.
        kwargs.setdefault("connect_args", {"connect_timeout": 2})
        kwargs.setdefault("pool_timeout", 3)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    _engine = create_engine(url, **kwargs)
    if not url.startswith("sqlite") and ping_idle:
        _ping_if_idle(_engine)
    if url.startswith("sqlite"):
        @event.listens_for(_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(_engine, "begin")
        def _sqlite_begin_immediate(conn):
            # pysqlite defers BEGIN; an explicit IMMEDIATE begin makes writers queue on the lock
            # instead of failing with "database is locked" on upgrade from read to write.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    _session_factory = sessionmaker(bind=_engine, expire_on_commit=False)
    return _engine


PING_AFTER_IDLE_SECONDS = 2.0


def _ping_if_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only when it was idle for `PING_AFTER_IDLE_SECONDS`.

    `pool_pre_ping` pings before every checkout: one more round trip per unit of work, which a busy
    process (the webhook) pays for nothing, since a connection used a moment ago is alive. One that
    sat idle may have been closed by a server restart or a proxy: it is pinged, and a dead one is
    replaced before the unit of work sees it (SQLAlchemy's "pessimistic" recipe). A connection that
    dies within the idle time still fails the unit of work as unavailable (the webhook retries it
    once on a fresh connection, then spools), and the pool then drops all its old connections.
    """
    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _used(_dbapi_connection, record):
        record.info["liaison.used_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection, record, _proxy):
        used_at = record.info.get("liaison.used_at")
        if used_at is not None and time.monotonic() - used_at < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.DisconnectionError() from error  # the pool connects afresh
            raise
        if not alive:
            raise exc.DisconnectionError()
        record.info["liaison.used_at"] = time.monotonic()


def adopt(session: Session, cls: type, values: dict):
    """The persistent `cls` object of a row a Core statement of this transaction read or wrote
    (`values`: every mapped column's value by key, as the statement returned them): the session's own
    object when it holds that row already, else a new one, as a load leaves it (every column
    loaded, no history; relationships load lazily). Cheaper than loading the row through the ORM,
    which a hot path pays for each statement; the tenant criteria do not apply, so the statement
    must name its counties itself."""
    mapper = inspect(cls)
    key = mapper.identity_key_from_primary_key([values[column.key] for column in mapper.primary_key])
    existing = session.identity_map.get(key)
    if existing is not None:
        return existing
    obj = mapper.class_manager.new_instance()  # no __init__: no Python defaults over the row's values
    instance_state(obj).dict.update(values)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


def run(session: Session, statement, params: dict[str, Any]) -> list[tuple]:
    """The rows of a Core `statement` built once (an lru-cached construct), executed in the
    session's transaction: on PostgreSQL its SQL, compiled once, goes to the driver's cursor directly,
    without SQLAlchemy's per-execution work (cache key, execution context, result metadata), which
    costs the webhook more than the round trip. The types' bind and result processing is kept, so
    are the engine's `before_cursor_execute` listeners and its error handling (a driver error
    becomes SQLAlchemy's, a lost connection invalidates the pool, parameters stay hidden).

    `params` must name every parameter of the statement: column defaults are not computed here
    (give them, e.g. with `insert_values`). A statement that needs SQLAlchemy at execution (Python
    column defaults, expanding parameters), and any statement elsewhere than PostgreSQL, is run by
    `connection.execute`."""
    connection = session.connection()
    dialect = connection.dialect
    plan = _plan(statement, dialect) if dialect.name == "postgresql" else None
    if plan is None:
        result = connection.execute(statement, params)
        return [tuple(row) for row in result] if result.returns_rows else []  # an INSERT without RETURNING: []
    sql, required, defaults, binders, result_types = plan
    if not required <= params.keys():
        raise ValueError(f"db.run: parameters not given: {sorted(required - params.keys())}")
    values = {**defaults, **params} if defaults else dict(params)
    for name, process in binders:
        value = values.get(name)
        if value is not None:
            values[name] = process(value)
    readers = _readers.get(sql) if result_types else None
    rows, description = driver.execute(connection, sql, values, rows=bool(result_types),
                                       describe=bool(result_types) and readers is None)
    if description is not None:  # the result's processors: known from the first result's types
        found = [kind._cached_result_processor(dialect, column.type_code)
                 for kind, column in zip(result_types, description)]
        _readers[sql] = readers = tuple(found) if any(read is not None for read in found) else ()
    if readers:
        rows = [tuple(value if read is None or value is None else read(value)
                      for value, read in zip(row, readers)) for row in rows]
    return rows


_plans: dict[tuple[int, str], tuple] = {}
_readers: dict[str, tuple] = {}  # a statement's SQL -> its result processors (() for none)


def _plan(statement, dialect):
    """What `run` needs of `statement` on `dialect`, compiled once: (SQL, the names of the required
    parameters, literal parameters, bind processors, the result columns' types); None for a
    statement `run` leaves to SQLAlchemy (Python column defaults, expanding parameters)."""
    key = (id(statement), dialect.name)
    entry = _plans.get(key)
    if entry is None:
        compiled = statement.compile(dialect=dialect)
        binds = compiled.bind_names  # parameter -> its name in the SQL (anonymous ones included)
        plan = None
        if not (compiled.insert_prefetch or compiled.update_prefetch or compiled.escaped_bind_names
                or any(bind.expanding for bind in binds)):
            required = frozenset(name for bind, name in binds.items() if bind.required)
            defaults = {name: bind.effective_value for bind, name in binds.items() if not bind.required}
            binders = tuple((name, process) for bind, name in binds.items()
                            if (process := bind.type._cached_bind_processor(dialect)) is not None)
            plan = (compiled.string, required, defaults, binders,
                    tuple(column.type for column in compiled._result_columns))
        # Keyed by identity, so the statement is kept with its plan: its id is never reused. It is
        # an lru-cached construct, built once per process, so the table stays small.
        _plans[key] = entry = (plan, statement)
    return entry[0]


def insert_values(obj) -> dict[str, Any]:
    """The column values an ORM INSERT of the pending `obj` would send, its Python-side column
    defaults applied (and kept on the object); the primary key and unset server-side defaults are
    left to the database."""
    state = instance_state(obj)
    values: dict[str, Any] = {}
    for prop in state.mapper.column_attrs:
        column = prop.columns[0]
        if column.primary_key:
            continue
        value = state.dict.get(prop.key, _MISSING)
        if value is _MISSING or value is None:  # as the ORM: a None leaves the column to its default
            if column.default is not None:
                value = column.default.arg(None) if column.default.is_callable else column.default.arg
                state.dict[prop.key] = value
            elif column.server_default is not None:
                continue
            else:
                value = None
        values[column.key] = value
    return values


_MISSING = object()


def fetch(session: Session, cls: type, row_id):
    """`session.get(cls, row_id)` for a hot path: the session's own object if it holds the row, else
    one Core SELECT on the session's connection, adopted (`adopt`) instead of loaded by the ORM.
    The row must be in the session's counties (checked in the statement when `cls` is county-owned
    and the scope is not every county); None when there is no such row."""
    mapper = inspect(cls)
    held = session.identity_map.get(mapper.identity_key_from_primary_key([row_id]))
    if held is not None:
        return held
    scope = tenant.of(session)
    scoped = "county_id" in mapper.columns and not scope.every_county
    params = {"row_id": row_id}
    if scoped:
        params["county_ids"] = sorted(scope.county_ids)
    postgresql = session.get_bind().dialect.name == "postgresql"
    rows = run(session, _by_id(cls, scoped, postgresql), params)
    if not rows:
        return None
    return adopt(session, cls, dict(zip([column.key for column in mapper.local_table.columns], rows[0])))


@lru_cache(maxsize=64)
def _by_id(cls: type, scoped: bool, postgresql: bool):
    """SELECT <every column> FROM <cls's table> WHERE id = :row_id [AND county_id in :county_ids]."""
    table = inspect(cls).local_table
    (key,) = table.primary_key.columns
    query = select(table).where(key == bindparam("row_id"))
    if scoped:
        query = query.where(tenant.in_county_ids(table.c.county_id, postgresql))
    return query


def autoflush(session: Session) -> None:
    """What the ORM's autoflush does before a query, for a Core statement run on the session's
    connection that reads rows the session may hold unwritten: flush them, unless autoflush is off
    (`session.no_autoflush`) or nothing is pending."""
    if session.autoflush and (session.new or session.dirty or session.deleted):
        session.flush()


def is_unavailable(error: BaseException) -> bool:
    """True when `error` says the database cannot be reached or written right now, so the same work
    should be retried later (server down or restarting, connection lost, pool exhausted, lock or
    statement timeout) — as opposed to a refusal of this particular write (a constraint, bad data)."""
    if isinstance(error, exc.TimeoutError):  # no pool connection within pool_timeout
        return True
    if isinstance(error, exc.DBAPIError):
        return error.connection_invalidated or isinstance(error, (exc.OperationalError, exc.InterfaceError))
    return False


def get_engine() -> Engine:
    if _engine is None:
        raise RuntimeError("database engine not initialised: call liaison.db.init_engine first")
    return _engine


def new_session() -> Session:
    if _session_factory is None:
        raise RuntimeError("database engine not initialised: call liaison.db.init_engine first")
    return _session_factory()


def on_after_commit(hook: Callable[[Session], None]) -> None:
    """Register a hook run after every successful `session_scope` commit (e.g. outbox kick)."""
    _after_commit_hooks.append(hook)


def clear_after_commit_hooks() -> None:
    _after_commit_hooks.clear()


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error, always close."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    else:
        for hook in list(_after_commit_hooks):
            hook(session)
    finally:
        session.close()
