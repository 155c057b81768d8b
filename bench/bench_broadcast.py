"""Broadcast throughput against a rate-limited fake WeChat API, and the workers' peak memory.

    python bench/bench_broadcast.py [--sizes 10000,100000] [--rate-per-min 8400] [--workers 3]

Needs PostgreSQL and Redis on 127.0.0.1 (BENCH_DATABASE_URL, default database `bench_broadcast`,
recreated; BENCH_REDIS_URL, default DB 8, flushed). Every resident has an open customer-service
window, so each one costs one `custom/send` call: the fake answers 45011 past `--rate-per-min` calls a
minute (WeChat's per-minute limits, scaled down so the run takes minutes), and the service paces
itself at `--headroom` (default 0.98) of that. Printed: messages/s over the send phase as a fraction of
the allowed rate (target ≥ 0.95) and the peak RSS of the worker processes and their work horses,
per broadcast size (it must not grow with the number of recipients).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_broadcast")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
APP_ID, SECRET, MP_APP_ID, MP_SECRET = "wx_bench", "bench_secret", "wx_bench_mini", "bench_mini_secret"
CUSTOM_PATH = "/cgi-bin/message/custom/send"


def recreate_database() -> None:
    from bench._db import recreate_database as recreate

    recreate(DB_URL)


def env_for(fake_url: str, rate: float, chunk: int) -> dict[str, str]:
    return {"DATABASE_URL": DB_URL, "REDIS_URL": REDIS_URL, "SECRET_KEY": "bench", "WECHAT_TOKEN": "bench",
            "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": SECRET, "WECHAT_API_BASE_URL": fake_url,
            "MINIPROGRAM_APP_ID": MP_APP_ID, "MINIPROGRAM_APP_SECRET": MP_SECRET,
            "BROADCAST_RATE_CUSTOM_PER_MIN": str(rate), "BROADCAST_CHUNK_SIZE": str(chunk)}


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.append(child)
            todo.append(child)
    return found


def seed(n: int, grid_id: int) -> None:
    from sqlalchemy import insert, text

    from liaison.core import db
    from liaison.core.clock import utcnow
    from liaison.people.models import Resident

    now = utcnow()
    with db.session_scope() as session:
        session.execute(text("UPDATE residents SET grid_id = NULL"))
        for start in range(0, n, 5000):
            session.execute(insert(Resident), [
                {"oa_openid": f"o_bench_{n}_{i:07d}", "grid_id": grid_id, "subscribed": True, "created_at": now,
                 "last_message_at": now, "window_kind": "message", "window_opened_at": now, "window_used": 0}
                for i in range(start, min(n, start + 5000))])


def run(size: int, fake, args) -> dict[str, float]:
    from sqlalchemy import select

    from jobs.broadcast_tasks import enqueue_chunk
    from liaison.core import db
    from liaison.engagement import broadcasts
    from liaison.engagement.models import Broadcast
    from liaison.people.models import Account, Grid

    fake.reset()
    fake.set_rate_limit(CUSTOM_PATH, args.rate_per_min)
    with db.session_scope() as session:
        grid_id = session.scalar(select(Grid.id).where(Grid.code == "G001"))
    seed(size, grid_id)
    env = {**os.environ, **env_for(fake.base_url, args.rate_per_min * args.headroom, args.chunk),
           "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([sys.executable, "-m", "jobs.worker", "bulk"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
               for _ in range(args.workers)]
    peak = 0
    try:
        time.sleep(1.0)  # let the workers start before the clock runs
        with db.session_scope() as session:
            account = session.scalar(select(Account).limit(1))
            broadcast = Broadcast(author_account_id=account.id, author_kind="staff", title="压力测试",
                                  text="这是一条测试通知", signature="工委", grid_ids=[grid_id], status="new",
                                  content_check="pass")
            session.add(broadcast)
            session.flush()
            broadcasts.start(session, broadcast, enqueue_chunk,
                             broadcasts.BroadcastConfig(chunk_size=args.chunk))
            broadcast_id = broadcast.id
        while True:
            for worker in workers:
                for pid in [worker.pid, *descendants(worker.pid)]:
                    peak = max(peak, rss_kb(pid))
            with db.session_scope() as session:
                if session.scalar(select(Broadcast.status).where(Broadcast.id == broadcast_id)) == "done":
                    break
            time.sleep(0.2)
    finally:
        for worker in workers:
            os.killpg(worker.pid, 15)
            worker.wait(timeout=30)
    sends = [m["time"] for m in fake.sent_messages("custom")]
    refused = sum(1 for c in fake.calls(CUSTOM_PATH) if c.get("errcode") == 45011)
    elapsed = max(sends) - min(sends)
    allowed_per_s = args.rate_per_min / 60.0
    # n sends span n-1 intervals.
    rate = (len(sends) - 1) / elapsed if elapsed > 0 else float("inf")
    return {"size": size, "sent": len(sends), "seconds": elapsed, "per_s": rate,
            "fraction": rate / allowed_per_s, "refused_45011": refused, "peak_rss_mb": peak / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--rate-per-min", type=int, default=8400,
                        help="the fake's custom/send limit (default: what a 2-core machine sustains)")
    parser.add_argument("--headroom", type=float, default=0.98, help="service pace as a fraction of it")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=500)
    args = parser.parse_args()

    import logging

    logging.disable(logging.WARNING)
    from config.settings import load_settings
    from jobs import queues
    from liaison import demo, runtime
    from liaison.core import db
    from liaison.people import service as accounts
    from wechat_fake.server import FakeWeChatServer

    recreate_database()
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    with FakeWeChatServer(appid=APP_ID, secret=SECRET, mp_appid=MP_APP_ID, mp_secret=MP_SECRET,
                          keep_alive=True) as fake:
        settings = load_settings(env_for(fake.base_url, args.rate_per_min, args.chunk))
        rt = runtime.configure(settings)
        queues.install(settings, rt.redis)
        with db.session_scope() as session:
            demo.seed_demo(session)
            accounts.create_first_staff(session, "压测")
        print(f"fake custom/send limit {args.rate_per_min}/min ({args.rate_per_min / 60:.0f}/s), service pace "
              f"{args.headroom:.0%} of it, {args.workers} workers, chunks of {args.chunk}")
        results = [run(int(size), fake, args) for size in args.sizes.split(",")]
    for r in results:
        print(f"recipients {r['size']:>7}: sent {r['sent']} in {r['seconds']:.1f}s = {r['per_s']:.1f}/s = "
              f"{r['fraction']:.3f} of the allowed rate; 45011 refusals {r['refused_45011']}; "
              f"worker peak RSS {r['peak_rss_mb']:.1f} MB")
    if len(results) > 1:
        print(f"peak RSS ratio {results[-1]['size']} vs {results[0]['size']} recipients: "
              f"{results[-1]['peak_rss_mb'] / results[0]['peak_rss_mb']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
