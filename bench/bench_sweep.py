"""The reminder/escalation sweep over 1,000,000 cases in PostgreSQL: its time and its query plan.

Loads N cases (default 1,000,000) with a realistic mix — most archived, some open with timers in the
future, a share due now — then times:
  1. an idle sweep (nothing due): the steady-state cost the scheduler pays every minute;
  2. the sweep that fires every due timer (reminders and escalations, with their timeline entries,
     notices and outbox rows);
and prints EXPLAIN (ANALYZE, BUFFERS) of the due-case query, to show which index it uses.

    python bench/bench_sweep.py [--cases 1000000] [--due 10000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/liaison_sweep_bench")


def recreate_database() -> None:
    from bench._db import recreate_database as recreate

    recreate(DB_URL)


LOAD_SQL = """
INSERT INTO cases (public_id, number, resident_id, text, category, routing, signature, handler_kind,
                   deputy_id, grid_id, status, round, deadline, accept_deadline, next_action_at,
                   escalation_level, alert, accept_reminded, rating_reminded, created_at, updated_at,
                   last_message_at, closed_at, county_id)
SELECT 'b' || g, '2026-' || lpad(g::text, 7, '0'), 1, '小区路灯坏了', '城乡建设', '{}'::json,
       ARRAY['路灯']::varchar[], 'deputy', 1, 1,
       CASE WHEN g % 100 < 80 THEN 'archived' WHEN g % 100 < 95 THEN 'accepted' ELSE 'assigned' END,
       1,
       CASE WHEN g % 100 >= 80 THEN :now + ((g % 20) - 3) * interval '1 day' END,
       CASE WHEN g % 100 >= 95 THEN :now + interval '1 day' END,
       CASE WHEN g % 100 < 80 THEN NULL
            WHEN g <= :due_span THEN :now - interval '1 hour'
            ELSE :now + (1 + g % 30) * interval '1 day' END,
       0, 'none', false, false, :now - interval '30 days', :now - interval '30 days',
       :now - interval '30 days', NULL, 1  -- the demo county: a raw load sets what the tenant scope would
FROM generate_series(1, :n) AS g
"""


def load(n: int, due: int, now) -> int:
    from sqlalchemy import text

    from liaison import demo
    from liaison.core import db
    from liaison.people.models import Resident

    with db.session_scope() as session:
        demo.seed_demo(session)
        session.add(Resident(oa_openid="o_bench_resident"))
    # Rows g with g % 100 >= 80 and g <= due_span are due: pick the span that gives `due` of them.
    due_span = due * 5
    with db.get_engine().begin() as conn:
        conn.execute(text(LOAD_SQL), {"n": n, "now": now, "due_span": due_span})
        conn.execute(text("ANALYZE cases"))
        return conn.execute(text("SELECT count(*) FROM cases WHERE next_action_at <= :now"), {"now": now}).scalar()


def explain(now) -> str:
    from sqlalchemy import text

    from liaison.core import db

    with db.get_engine().connect() as conn:
        rows = conn.execute(text(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM cases WHERE next_action_at <= :now "
            "ORDER BY next_action_at LIMIT 500 FOR UPDATE SKIP LOCKED"), {"now": now}).all()
        conn.rollback()
    return "\n".join(r[0] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    args = parser.parse_args()

    from liaison.case import sweep
    from liaison.core import db
    from liaison.core.clock import utcnow

    recreate_database()
    db.init_engine(DB_URL)
    now = utcnow()
    started = time.perf_counter()
    due = load(args.cases, args.due, now)
    print(f"loaded {args.cases:,} cases in {time.perf_counter() - started:.1f} s; {due:,} have a timer due")

    print("\nquery plan of the sweep's due-case query (with rows due):")
    print(explain(now))

    started = time.perf_counter()
    with db.session_scope() as session:
        handled = sweep.run_due(session, now)
    elapsed = time.perf_counter() - started
    print(f"\nsweep firing due timers: {handled:,} cases in {elapsed:.2f} s "
          f"({handled / elapsed:,.0f} cases/s, {elapsed / max(handled, 1) * 1000:.2f} ms per case)")

    idle_runs = []
    for _ in range(5):
        started = time.perf_counter()
        with db.session_scope() as session:
            assert sweep.run_due(session, now) == 0
        idle_runs.append(time.perf_counter() - started)
    print(f"idle sweep (nothing due, {args.cases:,} cases): best {min(idle_runs) * 1000:.2f} ms of 5")
    print("\nquery plan when nothing is due:")
    print(explain(now))
    later = now + timedelta(days=1)
    print(f"\n(at {later:%Y-%m-%d} more timers fall due; the sweep only ever reads due rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
