"""Shared fixtures: real PostgreSQL and Redis, the fake WeChat API, the app over real HTTP, RQ workers.

Take the least a test needs (docs/architecture.md, "Tests"): nothing for a pure function (tests/unit/);
`db_session` or `demo_db` for a domain service (tests/domain/: the database and nothing else); `app`,
`simulator`, `rq_worker` for the web layers and the workers (tests/ top level).

The database is TEST_DATABASE_URL (default: the machine's PostgreSQL, database `test`), migrated with
Alembic once per session and truncated before each test that uses it. Redis is TEST_REDIS_URL
(default DB 1), flushed before each test that uses it.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import create_engine, inspect, text
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL",
                                   "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
# Redis DBs 14 and 15 are taken by tests/test_wechat_client.py for themselves: xdist workers stay below.
FIRST_RESERVED_REDIS_DB = 14


def _per_worker(database_url: str, redis_url: str, worker: str | None) -> tuple[str, str]:
    """Each pytest-xdist worker (`gw0`, `gw1`, ...) gets a database and a Redis DB of its own.

    Worker gwN uses `<database>_gwN` and Redis DB `<base> + N`, so tests that truncate, flush or count
    never see another worker's rows; without xdist the URLs are used as given.
    """
    if not worker:
        return database_url, redis_url
    from sqlalchemy.engine import make_url

    index = int(worker.removeprefix("gw"))
    url = make_url(database_url)
    database_url = url.set(database=f"{url.database}_{worker}").render_as_string(hide_password=False)
    base, _, db = redis_url.rpartition("/")
    redis_db = int(db or 0) + index
    if redis_db >= FIRST_RESERVED_REDIS_DB:
        raise RuntimeError(f"xdist worker {worker} would use Redis DB {redis_db}: lower TEST_REDIS_URL's DB")
    return database_url, f"{base}/{redis_db}"


TEST_DATABASE_URL, TEST_REDIS_URL = _per_worker(TEST_DATABASE_URL, TEST_REDIS_URL,
                                                os.environ.get("PYTEST_XDIST_WORKER"))
TOKEN = "test-token"
APP_ID = "wx_test_app"
APP_SECRET = "s3cret"
MP_APP_ID = "wx_test_mini"
MP_APP_SECRET = "mini_s3cret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
METRICS_TOKEN = "test-metrics-token"
# WeChat gives up on an answer after 5 s (the simulator's default). The functional tests' simulators
# wait longer: how fast the webhook answers is the benchmark's to measure, and a busy machine may be
# slower than WeChat's limit without anything being wrong (tests must not depend on the machine's speed).
SIMULATOR_TIMEOUT = float(os.environ.get("TEST_SIMULATOR_TIMEOUT", "60"))


def settings_env(fake_base_url: str, **overrides: str) -> dict[str, str]:
    """The environment a deployment would set, pointed at the test services."""
    env = {
        "DATABASE_URL": TEST_DATABASE_URL, "REDIS_URL": TEST_REDIS_URL, "SECRET_KEY": "test-secret-key",
        "WECHAT_TOKEN": TOKEN, "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_ENCODING_AES_KEY": AES_KEY, "WECHAT_API_BASE_URL": fake_base_url,
        "MINIPROGRAM_APP_ID": MP_APP_ID, "MINIPROGRAM_APP_SECRET": MP_APP_SECRET,
        "METRICS_TOKEN": METRICS_TOKEN,
        # The fake WeChat API may answer slowly on a busy machine; tests of timeouts set their own.
        "WECHAT_API_TIMEOUT_SECONDS": "60",
    }
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def migrated_database():
    """Recreate the public schema and apply every migration (tests the migrations on PostgreSQL)."""
    from sqlalchemy.engine import make_url

    from liaison import schema

    url = make_url(TEST_DATABASE_URL)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # an xdist worker's database may not exist yet
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": url.database}).scalar():
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    engine = create_engine(TEST_DATABASE_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    schema.upgrade(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


def _truncate(engine, tables: str, attempts: int = 30) -> None:
    """Empty `tables` and add the default county. A process of the previous test that is still
    finishing its last transaction (a worker being stopped, a server thread) can deadlock with the
    TRUNCATE's locks; PostgreSQL then aborts one side, and the TRUNCATE is tried again."""
    from sqlalchemy.exc import OperationalError

    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
                # The default county (migration 0005) owns every row a test writes without naming one.
                conn.execute(text("INSERT INTO counties (code, name, settings, created_at) "
                                  "VALUES ('default', '本县', '{}', now())"))
            return
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != "40P01" or attempt == attempts - 1:  # deadlock_detected
                raise


@contextlib.contextmanager
def rls_bound_engine():
    """Point the domain engine at a role bound by row-level security (not owner, not superuser) for
    the block, then back at the owner: tests of the second line of tenant isolation run in it."""
    from sqlalchemy.engine import make_url

    from liaison.core import db
    from liaison.tenancy import roles

    url = make_url(TEST_DATABASE_URL)
    role = f"{url.database}_app"
    owner = create_engine(TEST_DATABASE_URL)
    with owner.begin() as conn:
        roles.grant_app_role(conn, role)
    owner.dispose()
    engine = db.init_engine(url.set(username=role, password=None).render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            assert not roles.bypasses_rls(conn)
        yield engine
    finally:
        db.init_engine(TEST_DATABASE_URL)


@pytest.fixture
def clean_db(migrated_database):
    """An empty (but migrated) database and an initialised domain engine."""
    from liaison.case import rules
    from liaison.core import db
    from liaison.people import directory
    from liaison.schema import metadata
    from liaison.tenancy import service as tenancy

    engine = create_engine(migrated_database)
    existing = set(inspect(engine).get_table_names())  # tests/test_migrations.py checks they all exist
    tables = ", ".join(t.name for t in metadata.sorted_tables if t.name in existing)
    _truncate(engine, tables)
    engine.dispose()
    db.init_engine(migrated_database)
    directory.invalidate()
    rules.forget()
    tenancy.forget_county_settings()  # the counties were re-created by SQL, not through this process
    yield migrated_database
    db.clear_after_commit_hooks()


@pytest.fixture
def demo_db(clean_db):
    """The migrated database holding the demo county, with the domain engine initialised: all a domain
    service needs. No app, no Redis, no fake WeChat (nothing is delivered: outbox rows just wait)."""
    from liaison import demo
    from liaison.core import db

    with db.session_scope() as session:
        demo.seed_demo(session)
    return clean_db


@pytest.fixture
def db_session(demo_db):
    """A session on the demo county for a domain test; what the test did not commit is rolled back."""
    from liaison.core import db

    session = db.new_session()
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def redis_client():
    client = redis_lib.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def fake_server():
    from wechat_fake.server import FakeWeChatServer

    with FakeWeChatServer(appid=APP_ID, secret=APP_SECRET, mp_appid=MP_APP_ID,
                          mp_secret=MP_APP_SECRET) as fake:
        yield fake


@pytest.fixture
def fake_wechat(fake_server):
    fake_server.reset()
    return fake_server


@pytest.fixture
def settings(clean_db, redis_client, fake_wechat):
    from config.settings import load_settings

    return load_settings(settings_env(fake_wechat.base_url))


@pytest.fixture
def demo_county(settings, demo_db):
    """The demo county for tests of the whole service (the app's settings, Redis, fake WeChat)."""


@pytest.fixture
def app(settings, demo_county):
    from webapp import create_app

    application = create_app(settings, start_background=False)
    application.config["TESTING"] = True
    return application


class LiveServer:
    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live_server(app):
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def simulator(live_server):
    """The simulator on the live app. Every text reply it received is checked at the end of the test:
    none may show a resident the routing's insides (confidence, keywords, arrows, raw codes)."""
    from liaison.messaging.texts import internal_terms
    from wechat_fake.simulator import WeChatSimulator

    sim = WeChatSimulator(url=live_server.url + "/wechat", token=TOKEN, appid=APP_ID,
                          encoding_aes_key=AES_KEY, mode="safe", timeout=SIMULATOR_TIMEOUT)
    yield sim
    leaks = [(content, internal_terms(content)) for content in sim.contents if internal_terms(content)]
    assert not leaks, f"internal terms in replies to residents: {leaks}"


def _children(pid: int) -> list[int]:
    """The live child processes of `pid` (from /proc)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:  # fields: state, ppid, ...
            children.append(int(entry))
    return children


class WorkerProcess:
    """A real `python -m jobs.worker` process (RQ forks a work horse per job).

    RQ puts each work horse in a process group of its own (`os.setpgrp()` in the forked child), so
    signalling the worker's group does not reach the horse: `kill()` takes the horses down too. A
    horse left alive would finish its send after the test and write into the next test's rows
    (ids restart at 1 after each truncation)."""

    def __init__(self, env: dict[str, str]):
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        # Its log goes to a file: a pipe nobody reads fills up and blocks a chatty worker.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=self.log,
                                     start_new_session=True)
        return self

    def stderr(self) -> str:
        """What the worker logged so far."""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def kill(self, sig=signal.SIGKILL) -> None:
        """Signal the worker; SIGKILL kills its work horses with it (a machine losing power)."""
        if not self.proc or self.proc.poll() is not None:
            return
        if sig == signal.SIGKILL:
            os.killpg(self.proc.pid, signal.SIGSTOP)  # no new horse is forked while we look
            for horse in _children(self.proc.pid):
                try:
                    os.killpg(os.getpgid(horse), signal.SIGKILL)
                except ProcessLookupError:  # it has just finished
                    pass
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM: the running job finishes). A worker that ignores it is killed
        with its horses, so that nothing it runs outlives the test, and the test fails."""
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            raise AssertionError("the worker did not stop on SIGTERM within 30 s") from None


@pytest.fixture
def spawn_worker(settings, fake_wechat):
    """Start real worker processes; every one is stopped when the test ends, pass or fail."""
    started: list[WorkerProcess] = []

    def spawn() -> WorkerProcess:
        worker = WorkerProcess(settings_env(fake_wechat.base_url)).start()
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        worker.stop()


@pytest.fixture
def rq_worker(spawn_worker):
    return spawn_worker()


def unreachable_token_store_client(base_url: str):
    """A WeChat client whose access-token store's Redis is down (nothing listens on the port).

    Built without retries: redis-py retries a refused connection ten times with backoff (about 3 s a
    call), which only makes a test slow; the code under test sees the same ConnectionError.
    """
    import socket

    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from liaison.wechat.client import WeChatClient
    from liaison.wechat.tokens import RedisTokenStore

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free: closed again before the client connects
    dead = redis_lib.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5,
                           retry=Retry(NoBackoff(), 0))
    return WeChatClient(APP_ID, APP_SECRET, base_url=base_url, token_store=RedisTokenStore(dead, APP_ID))


# The least time any wait_for gives another process before the test fails. A passing test never waits
# this long; it only bounds a broken one. Under load (two xdist processes, CPU burners, other work on
# the machine) a worker's cold start alone has taken over 15 s, so a short limit made tests depend on
# the machine's speed.
WAIT_FLOOR_SECONDS = float(os.environ.get("TEST_WAIT_FLOOR_SECONDS", "120"))


def wait_for(predicate, timeout: float = WAIT_FLOOR_SECONDS, interval: float = 0.05, message: str = "condition"):
    """Poll until `predicate()` is truthy (for work done by another process); fail after `timeout`
    (never less than WAIT_FLOOR_SECONDS)."""
    deadline = time.monotonic() + max(timeout, WAIT_FLOOR_SECONDS)
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


@pytest.fixture(autouse=True)
def _no_tenant_scope_carried_between_tests():
    """Each test starts outside any county scope, as each request and job does: a scope a test set in
    its own thread's context (a domain call outside `tenant.use`) must not decide the next test's."""
    from liaison.core import tenant

    token = tenant._current.set(None)  # noqa: SLF001 - the harness resets the context it runs tests in
    yield
    tenant._current.reset(token)  # noqa: SLF001
