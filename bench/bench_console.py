"""The office console over 1,000,000 cases in PostgreSQL: the 台账 and the statistics against bare SQL
of the same rows in the same run, and the XLSX export's memory against its row count.

Creates its own database (BENCH_DATABASE_URL, default liaison_console_bench), loads N cases (default
1,000,000) over the last year with generate_series — a realistic mix of statuses, a timeline `submit`
and `accept` per case, ratings — then prints, each the best of several runs:
  1. the 台账's first page (`liaison.console.ledger.page_rows`: the rows with their names; the page
     fetches its capped count apart, `ledger.count`, measured against a bare capped count) against a
     bare indexed `SELECT` of the same 50 rows (and against a hand-written SELECT with the names);
  2. a filtered page (grid, status, period) against the bare SELECT with the same WHERE;
  3. the statistics page's figures (`liaison.console.service.overview`: every figure by station and
     by month) against one bare `GROUP BY` station over the same rows;
  4. the export (`console.export.ledger_workbook` over `ledger.all_rows`) of about 10,000, 30,000 and
     100,000 rows: peak Python memory (tracemalloc) per row count — flat means it does not grow.

    python bench/bench_console.py [--cases 1000000] [--runs 5]

Ratios only; the targets are ≤ 3× for the pages and ≤ 2× for the statistics. No test asserts them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/liaison_console_bench")
RESIDENTS = 10_000

LOAD_RESIDENTS = """
INSERT INTO residents (public_id, oa_openid, subscribed, created_at, window_used, county_id)
SELECT 'rb' || g, 'o_bench_' || g, true, :now, 0, 1 FROM generate_series(1, :n) AS g
"""

# g % 100 decides the status: 55 % archived, 10 % unrated, 5 % closed, 5 % reopened, 15 % accepted,
# 5 % assigned, 2 % merged, 2 % rejected, 1 % withdrawn. Spread over the last 365 days.
LOAD_CASES = """
INSERT INTO cases (public_id, number, resident_id, text, category, routing, signature, handler_kind,
                   deputy_id, department_id, grid_id, status, round, deadline, accept_deadline,
                   escalation_level, alert, accept_reminded, rating_reminded, created_at, updated_at,
                   last_message_at, closed_at, accepted_at, rating, source, resident_tag, county_id)
SELECT 'cb' || g, '2026-' || lpad(g::text, 7, '0'), :first_resident + g % :residents,
       '幸福里小区' || g || '号楼门口的路灯坏了', (ARRAY['城乡建设','生态环境','交通出行','教育','社会保障','市场监管'])[1 + g % 6],
       '{}'::json, ARRAY['路灯']::varchar[],
       CASE WHEN g % 4 = 0 THEN 'department' ELSE 'deputy' END,
       (ARRAY[:d1, :d2, :d3])[1 + g % 3],
       CASE WHEN g % 4 = 0 THEN :first_department + g % 7 END,
       (ARRAY[:g1, :g2, :g3])[1 + g % 3],
       CASE WHEN g % 100 < 55 THEN 'archived' WHEN g % 100 < 65 THEN 'unrated' WHEN g % 100 < 70 THEN 'closed'
            WHEN g % 100 < 75 THEN 'reopened' WHEN g % 100 < 90 THEN 'accepted' WHEN g % 100 < 95 THEN 'assigned'
            WHEN g % 100 < 97 THEN 'merged' WHEN g % 100 < 99 THEN 'rejected' ELSE 'withdrawn' END,
       CASE WHEN g % 100 BETWEEN 70 AND 74 THEN 2 ELSE 1 END,
       t.created + interval '10 days', t.created + interval '1 day',
       0, 'none', false, false, t.created, t.created, t.created,
       CASE WHEN g % 100 < 70 THEN t.created + (g % 15) * interval '1 day' END,
       CASE WHEN NOT (g % 100 BETWEEN 90 AND 96 OR g % 100 = 99) THEN t.created + (g % 3) * interval '1 day' END,
       CASE WHEN g % 100 BETWEEN 70 AND 74 THEN 'unsatisfied' WHEN g % 100 < 55 AND g % 7 = 0
            THEN 'basically_satisfied' WHEN g % 100 < 55 THEN 'satisfied' END,
       'wechat', substr(encode(sha256(convert_to('o_bench_' || (1 + g % :residents), 'UTF8')), 'hex'), 1, 6), 1
FROM generate_series(1, :n) AS g,
     LATERAL (SELECT :now - ((g::bigint * 7919) % (365 * 86400)) * interval '1 second' AS created) AS t
"""

# The case row carries its timeline's facts (受理时间, 评价, 来源) as the domain writes them
# (liaison.case.service); the timeline and the ratings below are the entries they repeat.
LOAD_EVENTS = """
INSERT INTO case_events (case_id, at, actor_kind, action, from_status, to_status, detail, county_id)
SELECT id, created_at, 'resident', 'submit', NULL, 'submitted', json_build_object('channel', source), 1
FROM cases;
INSERT INTO case_events (case_id, at, actor_kind, actor_id, action, from_status, to_status, detail, county_id)
SELECT id, accepted_at, 'deputy', deputy_id, 'accept', 'assigned', 'accepted', '{}'::json, 1
FROM cases WHERE accepted_at IS NOT NULL;
INSERT INTO ratings (case_id, round, resident_id, value, channel, created_at, county_id)
SELECT id, 1, resident_id, rating, 'chat', coalesce(closed_at, created_at + interval '5 days'), 1
FROM cases WHERE rating IS NOT NULL;
"""


def load(n: int):
    from sqlalchemy import select, text

    from liaison import demo
    from liaison.core import db
    from liaison.core.clock import utcnow
    from liaison.people import service as people
    from liaison.people.models import Department, Deputy, Grid

    now = utcnow()
    with db.session_scope() as session:
        demo.seed_demo(session)
        account, _ = people.create_account(session, people.STAFF, "县人大工委（基准）")
        account_id = account.id
        grids = [session.scalar(select(Grid.id).where(Grid.code == c)) for c in ("G001", "G002", "G003")]
        deputies = [session.scalar(select(Deputy.id).where(Deputy.code == c)) for c in ("D001", "D002", "D003")]
        first_department = session.scalar(select(Department.id).order_by(Department.id))
    with db.get_engine().begin() as conn:
        conn.execute(text(LOAD_RESIDENTS), {"n": RESIDENTS, "now": now})
        first_resident = conn.execute(text("SELECT min(id) FROM residents")).scalar()
        conn.execute(text(LOAD_CASES), {
            "n": n, "now": now, "first_resident": first_resident, "residents": RESIDENTS,
            "first_department": first_department, "g1": grids[0], "g2": grids[1], "g3": grids[2],
            "d1": deputies[0], "d2": deputies[1], "d3": deputies[2]})
        for statement in LOAD_EVENTS.split(";"):
            if statement.strip():
                conn.execute(text(statement))
    with db.get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE cases"))
        conn.execute(text("VACUUM ANALYZE case_events"))
        conn.execute(text("VACUUM ANALYZE ratings"))
    return account_id, now


def recount() -> None:
    """What the scheduler's `recount_console_summary` does after the load marked every day stale."""
    from sqlalchemy import text

    from liaison.console import service as figures
    from liaison.core import db, tenant

    started = time.perf_counter()
    with tenant.use(tenant.all_counties("bench: the first recount")), db.session_scope() as session:
        days = figures.recount_summary(session)
    with db.get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        rows = conn.execute(text("SELECT count(*) FROM console_daily_figures")).scalar()
        conn.execute(text("VACUUM ANALYZE console_daily_figures"))
    print(f"daily summary: {days} days recounted into {rows:,} rows in {time.perf_counter() - started:.1f} s")


WARMUP = 10


def best(runs: int, work) -> float:
    """Best wall time of `runs` calls of `work()`, after WARMUP calls that are dropped: they warm the
    caches and let psycopg prepare the statement on the pooled connection (it does so from a
    statement's 5th execution on a connection, `prepare_threshold`), as in a server that has been up
    for a while. The bare SQL gets the same warm-up, so both sides are measured in steady state."""
    for _ in range(WARMUP):
        work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep the loaded database of an earlier run")
    parser.add_argument("--skip-export", action="store_true", help="measure the pages only")
    args = parser.parse_args()

    from sqlalchemy import text

    from bench._db import recreate_database
    from console import export
    from liaison.case import access
    from liaison.console import ledger
    from liaison.console import service as figures
    from liaison.core import db
    from liaison.core.workcalendar import CHINA_TZ
    from liaison.people.models import Account
    from liaison.people.service import Principal

    started = time.perf_counter()
    if args.reuse:
        from liaison.core.clock import utcnow

        db.init_engine(DB_URL)
        with db.get_engine().connect() as conn:
            account_id = conn.execute(text("SELECT min(id) FROM accounts WHERE role = 'staff'")).scalar()
            now = conn.execute(text("SELECT max(created_at) FROM cases")).scalar() or utcnow()
    else:
        recreate_database(DB_URL)
        db.init_engine(DB_URL)
        account_id, now = load(args.cases)
    with db.get_engine().connect() as conn:
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                  for t in ("cases", "case_events", "ratings")}
    print(f"loaded {counts['cases']:,} cases, {counts['case_events']:,} timeline rows, "
          f"{counts['ratings']:,} ratings in {time.perf_counter() - started:.0f} s")
    recount()
    print()

    def scoped(work):
        """`work(session, scope)` as the 台账 runs it in a request: one unit of work in the county
        (BEGIN, the tenant settings, the page's statement, COMMIT) for a staff member whose sign-in
        is already resolved (that look-up is every console page's, and the bare SQL has none)."""
        with db.session_scope() as session:
            account = session.get(Account, account_id)
            scope = access.scope_of(session, Principal(account.role, account=account))
            session.expunge(account)

        def run():
            with db.session_scope() as session:
                return work(session, scope)
        return run

    def signed_in(work):
        """The same with the staff account looked up and its scope computed inside the unit of work."""
        def run():
            with db.session_scope() as session:
                account = session.get(Account, account_id)
                return work(session, access.scope_of(session, Principal(account.role, account=account)))
        return run

    def bare(sql: str, params: dict | None = None):
        def run():
            with db.get_engine().connect() as conn:
                return conn.execute(text(sql), params or {}).all()
        return run

    results = []

    def report(label: str, measured: float, baseline: float, target: float) -> None:
        ratio = measured / baseline
        results.append((label, ratio, target))
        print(f"{label}: {measured * 1000:.1f} ms vs bare {baseline * 1000:.1f} ms → {ratio:.2f}× "
              f"(target ≤ {target:g}×)")

    # 1. The first page.
    first_page = scoped(lambda s, scope: ledger.page_rows(s, scope, {}, 1))
    rows, has_next = first_page()
    assert len(rows) == ledger.PAGE_SIZE and has_next
    total = scoped(lambda s, scope: ledger.count(s, scope, {}))()
    print(f"台账 first page: {len(rows)} rows, then the count the page fetches: {min(total, ledger.COUNT_CAP):,}"
          f"{'+' if total > ledger.COUNT_CAP else ''}")
    page_time = best(args.runs, first_page)
    bare_first = best(args.runs, bare("SELECT * FROM cases ORDER BY created_at DESC, id DESC LIMIT 50"))
    named_first = best(args.runs, bare(NAMED_PAGE.format(where="TRUE")))
    report("台账 first page", page_time, bare_first, 3)
    report("台账 first page vs a hand-written SELECT with the same names", page_time, named_first, 3)
    report("台账 first page, with the sign-in look-up, vs the bare SELECT",
           best(args.runs, signed_in(lambda s, scope: ledger.page_rows(s, scope, {}, 1))), bare_first, 3)
    bare_count = best(args.runs, bare(f"SELECT count(*) FROM (SELECT id FROM cases LIMIT {ledger.COUNT_CAP + 1}) AS m"))
    report("台账 count (fetched by the page after its rows) vs a bare capped count",
           best(args.runs, scoped(lambda s, scope: ledger.count(s, scope, {}))), bare_count, 3)
    report("台账 rows and count in one statement (ledger.page, the 通报's overdue list) vs the bare SELECT",
           best(args.runs, scoped(lambda s, scope: ledger.page(s, scope, {}, 1))), bare_first, 3)

    # 2. A filtered page: one grid, finished cases, the last half year.
    since = (now - timedelta(days=182)).astimezone(CHINA_TZ).date()
    params = {"grid": "G002", "status": "final", "since": since.isoformat()}
    filtered = scoped(lambda s, scope: ledger.page_rows(s, scope, params, 1))
    rows, has_next = filtered()
    total = scoped(lambda s, scope: ledger.count(s, scope, params))()
    print(f"\n台账 filtered page {params}: {len(rows)} rows, count {min(total, ledger.COUNT_CAP):,}"
          f"{'+' if total > ledger.COUNT_CAP else ''}")
    where_sql = ("c.grid_id = (SELECT id FROM grids WHERE code = 'G002') AND c.status IN "
                 "('archived', 'merged', 'rejected', 'unrated', 'withdrawn') AND c.created_at >= :since")
    since_at = ledger.local_day_start(since)
    filtered_time = best(args.runs, filtered)
    bare_filtered = best(args.runs, bare(
        f"SELECT * FROM cases c WHERE {where_sql} ORDER BY c.created_at DESC, c.id DESC LIMIT 50",
        {"since": since_at}))
    named_filtered = best(args.runs, bare(NAMED_PAGE.format(where=where_sql), {"since": since_at}))
    report("台账 filtered page", filtered_time, bare_filtered, 3)
    report("台账 filtered page vs a hand-written SELECT with the same names", filtered_time, named_filtered, 3)
    report("台账 filtered page, with the sign-in look-up, vs the bare SELECT",
           best(args.runs, signed_in(lambda s, scope: ledger.page_rows(s, scope, params, 1))), bare_filtered, 3)
    report("台账 filtered count vs a bare capped count with the same WHERE",
           best(args.runs, scoped(lambda s, scope: ledger.count(s, scope, params))),
           best(args.runs, bare(f"SELECT count(*) FROM (SELECT c.id FROM cases c WHERE {where_sql} "
                                f"LIMIT {ledger.COUNT_CAP + 1}) AS m", {"since": since_at})), 3)

    # 3. The statistics page's figures: by station and by month, over every case.
    stats_runs = max(1, min(args.runs, 3))
    overview = scoped(lambda s, scope: figures.overview(s, scope, ledger.conditions(s, scope, {}), "station"))
    total_group, stations, months = overview()
    print(f"\nstatistics: {total_group.figures['received']:,} received, {len(stations)} stations, "
          f"{len(months)} months; 满意率 {total_group.figures['satisfaction_rate']:.3f}")
    stats_time = best(stats_runs, overview)
    bare_group = best(stats_runs, bare(
        "SELECT g.station_id, count(*) FROM cases c LEFT JOIN grids g ON g.id = c.grid_id GROUP BY g.station_id"))
    report("statistics page (every figure by station and month)", stats_time, bare_group, 2)

    # 4. Export memory against the row count.
    print("\nexport (XLSX, streamed):")
    peaks = []
    for days in (() if args.skip_export else (4, 37)):  # about 10,000 and 100,000 rows
        since_day = (now - timedelta(days=days)).astimezone(CHINA_TZ).date().isoformat()

        def export_rows(session, scope, since_day=since_day):
            written = 0
            for chunk in export.ledger_workbook(ledger.all_rows(session, scope, {"since": since_day})):
                written += len(chunk)
            return written

        tracemalloc.start()
        started = time.perf_counter()
        size = scoped(export_rows)()
        elapsed = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        with db.get_engine().connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM cases WHERE created_at >= :s"),
                             {"s": ledger.local_day_start(date.fromisoformat(since_day))}).scalar()
        peaks.append((n, peak))
        print(f"  {n:>7,} rows: {size / 1e6:.1f} MB file in {elapsed:.1f} s, peak Python memory {peak / 1e6:.1f} MB")
    if peaks:
        (small_n, small_peak), (big_n, big_peak) = peaks[0], peaks[-1]
        print(f"  rows ×{big_n / small_n:.1f} → peak memory ×{big_peak / small_peak:.2f} (flat ≈ 1)")

    print("\nsummary:")
    for label, ratio, target in results:
        print(f"  {'ok  ' if ratio <= target else 'OVER'} {ratio:6.2f}× (≤ {target:g}×)  {label}")
    return 0


# The same rows as the ledger shows them, written by hand: names joined, 受理时间 and 评价 as subqueries.
NAMED_PAGE = """
SELECT c.*, g.name AS grid, d.name AS deputy, dep.name AS department, r.oa_openid,
       (SELECT min(e.at) FROM case_events e WHERE e.case_id = c.id AND e.action = 'accept') AS accepted_at,
       (SELECT x.value FROM ratings x WHERE x.case_id = c.id AND x.resident_id = c.resident_id
          AND x.value IN ('satisfied', 'basically_satisfied', 'unsatisfied')
        ORDER BY x.round DESC, x.id DESC LIMIT 1) AS rating,
       (SELECT e.detail FROM case_events e WHERE e.case_id = c.id AND e.action = 'submit' LIMIT 1) AS channel
FROM cases c LEFT JOIN grids g ON g.id = c.grid_id LEFT JOIN deputies d ON d.id = c.deputy_id
LEFT JOIN departments dep ON dep.id = c.department_id LEFT JOIN residents r ON r.id = c.resident_id
WHERE {where} ORDER BY c.created_at DESC, c.id DESC LIMIT 50
"""


if __name__ == "__main__":
    sys.exit(main())
