"""Scale-out run: the production shape on one machine, two counties at once, 1, 2 and 4 web processes.

For each web-process count: a fresh database with two counties (the deployment's account on `/wechat`,
乙县 with its own official account on `/wechat/yixian`), gunicorn with N worker processes (each with
threads), two RQ workers and one scheduler against the same PostgreSQL and Redis, the fake WeChat API,
and every process with LIAISON_IMPLICIT_DEFAULT_COUNTY=false (as a multi-county deployment runs).
The client sends distinct safe-mode (AES) text messages from distinct residents, half to each
county, pre-encrypted. Prints messages/s and p50/p99 per run, the ratio to one process, and the audit:

- every acknowledged message is one stored delivery on one case of the county it was sent to (a new
  case, or 并单: joined to a similar open one);
- every outbox row ends sent once (one successful delivery attempt) or visibly not sent
  (dead, unknown, waiting, in the mini-program only), none still in flight;
- WeChat received no message twice (successful sends per outbox row).

    python bench/bench_scaleout.py [--messages 1200] [--procs 1,2,4] [--concurrency 16] [--threads 4]

BENCH_DATABASE_URL (dropped and recreated per run) and BENCH_REDIS_URL (flushed) name the stores.
Throughput on a shared machine is only comparable within one run of this script.
"""
from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_webhook import (  # noqa: E402
    AES_KEY,
    APP_ID,
    SECRET,
    TEXTS,
    TOKEN,
    free_port,
    percentile,
    wait_port,
)
from bench.bench_webhook import run_load as webhook_load  # noqa: E402

DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/liaison_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
B_CODE, B_APP_ID, B_SECRET, B_TOKEN = "yixian", "wx_bench_yixian", "yixian-secret", "yixian-token"
B_AES_KEY = base64.b64encode(b"y" * 32).decode()[:-1]
IN_FLIGHT = ("pending", "enqueued", "sending", "failed")


def prepare_database() -> int:
    """Two counties with the demo registry each; returns county B's id."""
    from bench._db import recreate_database
    from liaison import demo
    from liaison.core import db, tenant
    from liaison.tenancy import service as tenancy

    recreate_database(DB_URL)
    db.init_engine(DB_URL)
    with tenant.use(tenant.county(tenant.DEFAULT_COUNTY_ID)), db.session_scope() as session:
        demo.seed_demo(session)
    with tenant.use(tenant.all_counties("bench: add a county")), db.session_scope() as session:
        b = tenancy.add_county(session, B_CODE, "乙县", wechat_app_id=B_APP_ID, wechat_app_secret=B_SECRET,
                               wechat_token=B_TOKEN, wechat_encoding_aes_key=B_AES_KEY).id
    with tenant.use(tenant.county(b)), db.session_scope() as session:
        demo.seed_demo(session)
    db.get_engine().dispose()
    return b


def build_requests(n: int, offset: int) -> list[tuple[str, bytes, str]]:
    """(path, body, county code) of n distinct messages, alternating between the two counties."""
    from urllib.parse import urlencode

    from wechat_fake.simulator import WeChatSimulator

    sims = {"default": WeChatSimulator(url="http://unused/wechat", token=TOKEN, appid=APP_ID,
                                       encoding_aes_key=AES_KEY, mode="safe"),
            B_CODE: WeChatSimulator(url="http://unused/wechat", token=B_TOKEN, appid=B_APP_ID,
                                    encoding_aes_key=B_AES_KEY, mode="safe")}
    out = []
    for i in range(n):
        k = offset + i
        code = "default" if k % 2 == 0 else B_CODE
        xml = sims[code].build_text(f"o_scale_{k}", TEXTS[k % len(TEXTS)].format(i=k % 97 + 1),
                                    msg_id=20_000_000 + k)
        query, body = sims[code].envelope(xml)
        path = "/wechat" if code == "default" else f"/wechat/{B_CODE}"
        out.append((path + "?" + urlencode(query), body.encode(), code))
    return out


def run_load(port: int, reqs: list[tuple[str, bytes]], concurrency: int) -> tuple[float, list[float], int]:
    """bench_webhook's client with a generous timeout (a busy shared machine)."""
    return webhook_load(port, reqs, concurrency, timeout=120)


def start(cmd: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def audit(b: int, acked: dict[str, int], fake, timeout: float = 300) -> dict:
    """Wait for the outbox to settle, then count what was stored and sent."""
    from sqlalchemy import func, select

    from liaison.case.models import Case, CaseFollower
    from liaison.core import db, tenant
    from liaison.messaging.models import DeliveryAttempt, InboundMessage, OutboxMessage

    db.init_engine(DB_URL)
    every = tenant.all_counties("bench audit")
    deadline = time.monotonic() + timeout
    while True:
        with tenant.use(every), db.session_scope() as session:
            in_flight = session.scalar(select(func.count()).select_from(OutboxMessage)
                                       .where(OutboxMessage.status.in_(IN_FLIGHT)))
        if not in_flight or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    with tenant.use(every), db.session_scope() as session:
        counties = {"default": tenant.DEFAULT_COUNTY_ID, B_CODE: b}
        stored = {code: session.scalar(select(func.count()).select_from(InboundMessage)
                                       .where(InboundMessage.county_id == cid)) for code, cid in counties.items()}
        case_counts = {code: session.scalar(select(func.count()).select_from(Case).where(Case.county_id == cid))
                       for code, cid in counties.items()}
        # A message opens a case or joins one (并单: its resident follows the case); either way it is on
        # exactly one case of its own county.
        joined = {code: session.scalar(select(func.count()).select_from(CaseFollower)
                                       .where(CaseFollower.county_id == cid)) for code, cid in counties.items()}
        on_a_case = {code: session.scalar(select(func.count()).select_from(InboundMessage).join(
            Case, (Case.id == InboundMessage.case_id) & (Case.county_id == InboundMessage.county_id))
            .where(InboundMessage.county_id == cid)) for code, cid in counties.items()}
        statuses = dict(session.execute(select(OutboxMessage.status, func.count())
                                        .group_by(OutboxMessage.status)).all())
        ok_per_row = session.execute(select(DeliveryAttempt.outbox_id, func.count()).where(
            DeliveryAttempt.ok.is_(True)).group_by(DeliveryAttempt.outbox_id)).all()
        sent_rows = statuses.get("sent", 0)
    sent_twice = sum(1 for _id, n in ok_per_row if n > 1)
    wechat_sends = len(fake.sent_messages()) + len([c for c in fake.calls("/cgi-bin/user/info")
                                                    if c.get("errcode") == 0])
    opened_or_joined = {code: case_counts[code] + joined[code] for code in counties}
    return {"acked": acked, "stored": stored, "cases": case_counts, "joined": joined, "on_a_case": on_a_case,
            "outbox": statuses,
            "in_flight": in_flight, "sent_twice": sent_twice, "sent_rows": sent_rows,
            "wechat_sends": wechat_sends,
            "ok": (stored == acked and on_a_case == acked and opened_or_joined == acked and not in_flight
                   and not sent_twice
                   and wechat_sends == sent_rows)}


def one_run(procs: int, args, fake) -> dict:
    import redis

    b = prepare_database()
    redis.Redis.from_url(REDIS_URL).flushdb()
    fake.reset()
    fake.add_app(B_APP_ID, B_SECRET)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": DB_URL, "REDIS_URL": REDIS_URL,
           "SECRET_KEY": "bench", "WECHAT_TOKEN": TOKEN, "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": SECRET,
           "WECHAT_ENCODING_AES_KEY": AES_KEY, "WECHAT_API_BASE_URL": fake.base_url,
           "LIAISON_IMPLICIT_DEFAULT_COUNTY": "false",
           # one resident per message: the per-resident case limit is not what is measured here
           "CASE_RATE_LIMIT_PER_ADDRESS": "100000 per minute"}
    port = free_port()
    web = start([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", str(procs),
                 "--threads", str(args.threads), "--log-level", "warning", "webapp:create_app()"], env)
    background = [start([sys.executable, "-m", "jobs.worker"], env) for _ in range(args.workers)]
    background.append(start([sys.executable, "-m", "jobs.scheduler"], env))
    try:
        wait_port(port, timeout=60)
        reqs = build_requests(args.warmup + args.messages, procs * 1_000_000)
        run_load(port, [(p, body) for p, body, _c in reqs[:args.warmup]], args.concurrency)
        measured = reqs[args.warmup:]
        throughput, latencies, errors = run_load(port, [(p, body) for p, body, _c in measured], args.concurrency)
        acked = {"default": 0, B_CODE: 0}  # every message sent (a refused one then shows as a difference)
        for _p, _b, code in reqs:
            acked[code] += 1
        result = audit(b, acked, fake)
    finally:
        stop(web)
        for proc in background:
            stop(proc)
    result.update(throughput=throughput, p50=percentile(latencies, 50) * 1000,
                  p99=percentile(latencies, 99) * 1000, errors=errors)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1200)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--procs", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from wechat_fake.server import FakeWeChatServer

    fake = FakeWeChatServer(appid=APP_ID, secret=SECRET).start()
    results = {}
    try:
        for procs in [int(p) for p in args.procs.split(",")]:
            r = results[procs] = one_run(procs, args, fake)
            print(f"web processes {procs}: {r['throughput']:7.1f} msg/s  p50 {r['p50']:7.1f} ms  "
                  f"p99 {r['p99']:7.1f} ms  errors {r['errors']}", flush=True)
            print(f"  audit {'OK' if r['ok'] else 'FAILED'}: acknowledged {r['acked']}, stored {r['stored']}, "
                  f"on a case {r['on_a_case']} (new cases {r['cases']}, joined 并单 {r['joined']}); outbox {r['outbox']}, in flight {r['in_flight']}, "
                  f"sent twice {r['sent_twice']}, WeChat sends {r['wechat_sends']} for {r['sent_rows']} sent rows",
                  flush=True)
    finally:
        fake.stop()
    base = results[min(results)]["throughput"]
    print("ratio to the smallest run: " + ", ".join(f"{p} → {r['throughput'] / base:.2f}"
                                                    for p, r in sorted(results.items())))
    print(f"settings: {args.messages} messages per run (+{args.warmup} warm-up), two counties, concurrency "
          f"{args.concurrency}, gunicorn --threads {args.threads}, {args.workers} RQ workers, 1 scheduler; "
          f"machine: {os.cpu_count()} CPUs")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
