"""Per-message cost of the webhook's full pipeline, in load-independent counts.

Runs the app in this process (Flask's test client, no gunicorn, no network client) against the bench
database, sends the same kind of distinct safe-mode text messages as `bench_webhook.py`, and prints
per message: SQL statements (a SQLAlchemy `before_cursor_execute` listener on the engine, plus the
pool's pings), ORM flushes that wrote something, transactions, and Redis round trips (every packed command a redis-py connection
sends, one per command or per pipeline). `--statements` lists the statements of one message;
`--profile` prints the top functions by cumulative CPU time (cProfile).

The counters are installed here, around the app: no production code path counts anything.

    python bench/profile_webhook.py [--messages 200] [--warmup 20] [--statements] [--profile] [--accounts]
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_webhook import AES_KEY, APP_ID, DB_URL, REDIS_URL, SECRET, TOKEN, build_requests  # noqa: E402


class Counters:
    """Statements, transactions and Redis round trips seen since the last `reset`."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.statements = 0
        self.begins = 0
        self.flushes = 0
        self.redis = 0
        self.redis_commands: collections.Counter = collections.Counter()
        self.log: list[str] = []


def install_counters(counters: Counters, engine) -> None:
    """Listen on the engine and wrap redis-py's connection send (one call = one round trip)."""
    import redis.connection
    from sqlalchemy import event

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(conn, cursor, statement, parameters, context, executemany):
        counters.statements += 1
        counters.log.append(" ".join(statement.split())[:160])

    @event.listens_for(engine, "begin")
    def _begin(conn):
        counters.begins += 1

    from sqlalchemy.orm import Session

    @event.listens_for(Session, "after_flush")
    def _flush(session, flush_context):  # a flush that had work (an empty flush sends nothing)
        counters.flushes += 1

    original = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self, command, check_health=True):
        counters.redis += 1
        try:
            packed = command if isinstance(command, (bytes, bytearray)) else b"".join(command)
            name = packed.split(b"\r\n")[2].decode(errors="replace").upper()
        except Exception:  # noqa: BLE001 - only a label for the report
            name = "?"
        counters.redis_commands[name] += 1
        counters.log.append(f"REDIS {name}")
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send_packed_command

    # The pool's pre-ping is a statement too, issued by the dialect outside cursor events.
    from sqlalchemy.engine import default

    original_ping = default.DefaultDialect.do_ping

    def do_ping(self, dbapi_connection):
        counters.statements += 1
        counters.log.append("PING (pool_pre_ping)")
        return original_ping(self, dbapi_connection)

    default.DefaultDialect.do_ping = do_ping
    engine.dialect.do_ping = do_ping.__get__(engine.dialect)


def add_accounts() -> None:
    """One active account per deputy and per department, and one county staff account."""
    from sqlalchemy import select

    from liaison.core import db
    from liaison.people.models import Account, Department, Deputy

    with db.session_scope() as session:
        for deputy_id, name in session.execute(select(Deputy.id, Deputy.name)):
            session.add(Account(role="deputy", name=name, deputy_id=deputy_id, active=True))
        for department_id, name in session.execute(select(Department.id, Department.name)):
            session.add(Account(role="department", name=f"{name} 承办人", department_id=department_id, active=True))
        session.add(Account(role="staff", name="工委", active=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--statements", action="store_true", help="list one message's statements")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured messages")
    parser.add_argument("--no-prepare", action="store_true", help="reuse the bench database as it is")
    parser.add_argument("--accounts", action="store_true",
                        help="give every deputy and department one active account and the county one staff"
                             " account, as in a staffed county (the demo has none): handler pushes are measured")
    args = parser.parse_args()

    from wechat_fake.server import FakeWeChatServer

    if not args.no_prepare:
        from bench.bench_webhook import prepare_database

        prepare_database()
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        if args.accounts:
            add_accounts()
    fake = FakeWeChatServer(appid=APP_ID, secret=SECRET).start()
    os.environ.update({"DATABASE_URL": DB_URL, "REDIS_URL": REDIS_URL, "SECRET_KEY": "bench",
                       "WECHAT_TOKEN": TOKEN, "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": SECRET,
                       "WECHAT_ENCODING_AES_KEY": AES_KEY, "WECHAT_API_BASE_URL": fake.base_url})
    from liaison.core import db
    from webapp import create_app

    app = create_app()
    counters = Counters()
    install_counters(counters, db.get_engine())
    client = app.test_client()
    offset = 5_000_000 + (os.getpid() % 1000) * 10_000  # fresh MsgIds and residents on a reused database
    reqs = build_requests(args.warmup + args.messages, offset)

    def post(path, body):
        response = client.post(path, data=body, headers={"Content-Type": "text/xml"})
        if response.status_code != 200 or b"<Encrypt>" not in response.data:
            raise SystemExit(f"unexpected answer {response.status_code}: {response.data[:200]!r}")

    for path, body in reqs[:args.warmup]:
        post(path, body)
    if args.statements:
        counters.reset()
        post(*reqs[args.warmup])
        print("one message:")
        for line in counters.log:
            print("   ", line)
        reqs = reqs[:args.warmup] + reqs[args.warmup + 1:]
    measured = reqs[args.warmup:]
    counters.reset()
    # CPU time, not wall time: the machine is shared, waits on the database are not this process's cost.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    cpu_started = time.process_time()
    if profiler:
        profiler.enable()
    for path, body in measured:
        post(path, body)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - cpu_started
    n = len(measured)
    fake.stop()
    print(f"per message (mean of {n} new residents' first messages):")
    print(f"  SQL statements      {counters.statements / n:6.2f}")
    print(f"  CPU ms (this process){cpu / n * 1000:6.2f}" + ("   (inflated by cProfile)" if profiler else ""))
    print(f"  ORM flushes         {counters.flushes / n:6.2f}")
    print(f"  transactions        {counters.begins / n:6.2f}")
    print(f"  Redis round trips   {counters.redis / n:6.2f}   "
          + ", ".join(f"{k} {v / n:.2f}" for k, v in counters.redis_commands.most_common()))
    if profiler:
        profiler.dump_stats(os.environ.get("PROFILE_OUT", "/tmp/profile_webhook.prof"))
        stats = pstats.Stats(profiler)
        print(f"  Python calls        {stats.total_calls / n:6.0f}   (cProfile: every function call)")
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
