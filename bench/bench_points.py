"""The annual 履职积分 recomputation for 1,000 deputies with a year of events each, as a ratio to one
bare aggregate query over the same events.

Loads, per deputy: a year of Wednesday duty shifts (kept or missed), grid visits, cases accepted by the
deputy (in time or late) with ratings, and approved offline activities. Then times, each the best of
`--repeat` runs:
  1. the baseline: one bare aggregate (count per deputy and source) over the same event tables;
  2. `points.recompute` for every deputy (events → per-item totals under the caps);
  3. the first `points.sync` (every event into the ledger) and an idle `sync` (nothing new).
Printed as ratios to the baseline measured in the same run.

    python bench/bench_points.py [--deputies 1000] [--repeat 3]

Needs PostgreSQL on 127.0.0.1 (BENCH_DATABASE_URL, default database `bench_points`, recreated).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_points")
YEAR = 2026

LOAD = [
    "INSERT INTO stations (code, name, county_id) VALUES ('S001', '城关镇人大代表联络站', 1)",
    "INSERT INTO grids (code, name, aliases, station_id, county_id) VALUES ('G001', '幸福里', '[]', 1, 1)",
    """INSERT INTO deputies (code, name, level, station_id, county_id)
       SELECT 'D' || lpad(g::text, 5, '0'), '代表' || g, 'county', 1, 1 FROM generate_series(1, :n) g""",
    """INSERT INTO residents (public_id, oa_openid, grid_id, subscribed, created_at, window_used, county_id)
       VALUES ('bench-resident', 'o_bench', 1, true, now(), 0, 1)""",
    # 52 Wednesdays; every deputy on every shift, 90 % checked in.
    """INSERT INTO duty_shifts (public_id, station_id, kind, title, day, planned_for, starts_at, ends_at, status,
                               created_at, county_id)
       SELECT 'shift' || w, 1, 'reception', '代表周三见', d, d, d + time '09:00', d + time '11:30', 'kept', now(), 1
       FROM (SELECT w, date '2026-01-07' + 7 * (w - 1) AS d FROM generate_series(1, 52) w) x""",
    """INSERT INTO shift_assignments (shift_id, deputy_id, status, checked_in_at, county_id)
       SELECT s.id, dep.id, CASE WHEN (s.id + dep.id) % 10 = 0 THEN 'missed' ELSE 'checked_in' END,
              CASE WHEN (s.id + dep.id) % 10 = 0 THEN NULL ELSE s.starts_at END, 1
       FROM duty_shifts s CROSS JOIN deputies dep""",
    # 60 grid visits a deputy (more than the cap allows).
    """INSERT INTO grid_visits (public_id, deputy_id, grid_id, visited_at, method, created_at, county_id)
       SELECT 'v' || dep.id || '-' || g, dep.id, 1, timestamptz '2026-01-05 10:00+08' + g * interval '5 days',
              'scan', now(), 1
       FROM deputies dep CROSS JOIN generate_series(1, 60) g""",
    # 30 cases a deputy, each accepted (every fifth late) and rated (every fourth unsatisfied).
    """INSERT INTO cases (public_id, number, resident_id, text, routing, signature, handler_kind, deputy_id,
                         grid_id, status, round, accept_deadline, escalation_level, alert, accept_reminded,
                         rating_reminded, created_at, updated_at, last_message_at, county_id)
       SELECT 'c' || dep.id || '-' || g, '2026-' || lpad((dep.id * 100 + g)::text, 7, '0'), 1, '路灯坏了',
              '{}', ARRAY['路灯']::varchar[], 'deputy', dep.id, 1, 'archived', 1,
              timestamptz '2026-01-10 18:00+08' + g * interval '10 days', 0, 'none', false, false,
              timestamptz '2026-01-09 10:00+08' + g * interval '10 days', now(), now(), 1
       FROM deputies dep CROSS JOIN generate_series(1, 30) g""",
    """INSERT INTO case_events (case_id, at, actor_kind, actor_id, action, from_status, to_status, detail, county_id)
       SELECT c.id, CASE WHEN c.id % 5 = 0 THEN c.accept_deadline + interval '1 day'
                         ELSE c.accept_deadline - interval '3 hours' END,
              'deputy', c.deputy_id, 'accept', 'assigned', 'accepted', '{}', 1 FROM cases c""",
    """INSERT INTO ratings (case_id, round, resident_id, value, channel, created_at, county_id)
       SELECT c.id, 1, 1, CASE WHEN c.id % 4 = 0 THEN 'unsatisfied' ELSE 'satisfied' END, 'chat',
              c.accept_deadline + interval '5 days', 1 FROM cases c""",
]
ACTIVITIES = """
INSERT INTO activity_reports (public_id, deputy_id, standard_id, year, item_code, title, happened_on, evidence,
                              photo_media_ids, chain, step, status, decided_at, created_at, county_id)
SELECT 'a' || dep.id || '-' || g, dep.id, :standard, 2026, (ARRAY['meeting', 'training', 'research'])[1 + g % 3],
       '活动', date '2026-03-01' + g * 20, '佐证', '[]', '[]', 3, 'approved',
       timestamptz '2026-03-10 10:00+08' + g * interval '20 days', now(), 1
FROM deputies dep CROSS JOIN generate_series(1, 6) g
"""
BASELINE = """
SELECT deputy_id, source, count(*) FROM (
    SELECT e.actor_id AS deputy_id, 'accept' AS source FROM case_events e JOIN cases c ON c.id = e.case_id
      WHERE e.action = 'accept' AND e.actor_kind = 'deputy' AND e.at >= :start AND e.at < :end
    UNION ALL SELECT c.deputy_id, 'rating' FROM ratings r JOIN cases c ON c.id = r.case_id
      WHERE r.created_at >= :start AND r.created_at < :end
    UNION ALL SELECT a.deputy_id, a.status FROM shift_assignments a JOIN duty_shifts s ON s.id = a.shift_id
      WHERE s.ends_at >= :start AND s.ends_at < :end
    UNION ALL SELECT deputy_id, 'visit' FROM grid_visits WHERE visited_at >= :start AND visited_at < :end
    UNION ALL SELECT deputy_id, 'activity' FROM activity_reports WHERE status = 'approved' AND year = 2026
) events GROUP BY deputy_id, source
"""


def best(runs: int, work) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        began = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - began)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deputies", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from sqlalchemy import delete, func, select, text

    from bench._db import recreate_database
    from liaison.core import db, tenant
    from liaison.points import service as points
    from liaison.points.models import PointsEntry

    recreate_database(DB_URL)
    db.init_engine(DB_URL)
    began = time.perf_counter()
    with tenant.use(tenant.all_counties("bench load", write_county=1)), db.session_scope() as session:
        for statement in LOAD:
            session.execute(text(statement), {"n": args.deputies})
        standard = points.publish_standard(session, None, YEAR, title="基准", items=points.DEFAULT_ITEMS)
        session.execute(text(ACTIVITIES), {"standard": standard.id})
        session.execute(delete(PointsEntry))
    start, end = points._year_bounds(YEAR)
    bounds = {"start": start, "end": end}
    with db.session_scope() as session:
        session.execute(text("ANALYZE"))
        groups = session.execute(text(f"SELECT count(*) FROM ({BASELINE}) x"), bounds).scalar()
        total = session.execute(text(f"SELECT sum(count) FROM ({BASELINE}) x"), bounds).scalar()
    print(f"loaded {args.deputies} deputies, {total} events ({groups} deputy×source groups) "
          f"in {time.perf_counter() - began:.1f}s")

    with db.session_scope() as session:
        baseline, _ = best(args.repeat, lambda: session.execute(text(BASELINE), bounds).all())
        recompute, totals = best(args.repeat, lambda: points.recompute(session, YEAR))

    def first_sync():
        with db.session_scope() as session:
            session.execute(delete(PointsEntry))
            return points.sync(session, YEAR)

    synced, lines = best(args.repeat, first_sync)
    with db.session_scope() as session:
        idle, _ = best(args.repeat, lambda: points.sync(session, YEAR))
        same = points.ledger_totals(session, YEAR) == totals
        stored = session.scalar(select(func.count()).select_from(PointsEntry))
    print(f"baseline (one aggregate query)      {baseline * 1000:9.1f} ms  1.0")
    print(f"recompute, {len(totals)} deputies            {recompute * 1000:9.1f} ms  {recompute / baseline:.1f}×")
    print(f"first sync ({lines} ledger lines)   {synced * 1000:9.1f} ms  {synced / baseline:.1f}×")
    print(f"idle sync (nothing new)             {idle * 1000:9.1f} ms  {idle / baseline:.1f}×")
    print(f"ledger ({stored} lines) equals the recomputation: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
