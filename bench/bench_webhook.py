"""Webhook benchmark: the full pipeline versus the durable floor, same gunicorn set-up.

Every server runs under gunicorn with the same workers/threads; the same client sends distinct
safe-mode (AES) text messages from distinct residents, pre-encrypted so the client's own crypto is
not measured. The servers: a bare wechatpy echo (no I/O), the durable floor (the echo plus one
INSERT and commit per delivery: the least a webhook that stores before replying must do), and the
full pipeline (classifies, routes, stores the case in PostgreSQL, hands the outbox to RQ on Redis).
Prints messages/s and p50/p99 of each and, as the headline, full/floor (median over `--runs`).

Target (issue 20): full ≥ 0.5 × floor throughput, full p99 < 100 ms. Per-message statement and Redis
round-trip counts: `bench/profile_webhook.py`.

    python bench/bench_webhook.py [--requests 3000] [--concurrency 8] [--workers 2] [--threads 4]
                                  [--runs 3] [--no-echo] [--scaling]
"""
from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN, APP_ID, SECRET = "bench-token", "wx_bench_app", "bench-secret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/liaison_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
TEXTS = ["幸福里小区{i}号楼门口的路灯坏了", "东关街有人占道经营，晚上噪音很大{i}", "公司拖欠工资{i}个月了",
         "青山村的自来水停了{i}天", "学校门口交通拥堵，第{i}天了", "小区楼道里有人飞线充电{i}",
         "工厂排放污水，河水发臭{i}", "医院挂号难，排队{i}小时"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def prepare_database() -> None:
    from bench._db import recreate_database
    from liaison import demo
    from liaison.core import db

    recreate_database(DB_URL)
    db.init_engine(DB_URL)
    with db.session_scope() as session:
        demo.seed_demo(session)


def build_requests(n: int, offset: int) -> list[tuple[str, bytes]]:
    from wechat_fake.simulator import WeChatSimulator

    sim = WeChatSimulator(url="http://unused/wechat", token=TOKEN, appid=APP_ID,
                          encoding_aes_key=AES_KEY, mode="safe")
    out = []
    for i in range(n):
        k = offset + i
        xml = sim.build_text(f"o_bench_{k}", TEXTS[k % len(TEXTS)].format(i=k % 97 + 1), msg_id=10_000_000 + k)
        query, body = sim.envelope(xml)
        out.append(("/wechat?" + urlencode(query), body.encode()))
    return out


def run_load(port: int, reqs: list[tuple[str, bytes]], concurrency: int,
             timeout: float = 10) -> tuple[float, list[float], int]:
    """POST every request from `concurrency` keep-alive clients; (messages/s, latencies, errors).
    A request that fails on the wire counts as an error and its client reconnects."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    index = iter(range(len(reqs)))

    def client():
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        mine, bad = [], 0
        while True:
            with lock:
                i = next(index, None)
            if i is None:
                break
            path, body = reqs[i]
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "text/xml"})
                response = conn.getresponse()
                payload = response.read()
                ok = response.status == 200 and b"<Encrypt>" in payload
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            mine.append(time.perf_counter() - started)
            bad += not ok
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return len(reqs) / elapsed, latencies, errors


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def gunicorn(app_spec: str, port: int, env: dict, workers: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", str(workers),
           "--threads", str(threads), "--log-level", "warning", app_spec]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    wait_port(port)
    return proc


def stop(proc: subprocess.Popen) -> None:
    """Stop a gunicorn (its workers may take a while to finish on a loaded machine)."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def measure(name: str, spec: str, env: dict, args, offset: int, workers: int) -> tuple[float, float, float, int]:
    """One server under load: (messages/s, p50 ms, p99 ms, errors)."""
    port = free_port()
    proc = gunicorn(spec, port, env, workers, args.threads)
    try:
        reqs = build_requests(args.warmup + args.requests, offset)
        run_load(port, reqs[:args.warmup], args.concurrency)
        throughput, latencies, errors = run_load(port, reqs[args.warmup:], args.concurrency)
    finally:
        stop(proc)
    result = (throughput, percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000, errors)
    print(f"{name:5s} -w {workers}: {throughput:8.1f} msg/s  p50 {result[1]:6.2f} ms  "
          f"p99 {result[2]:6.2f} ms  errors {errors}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat floor and full this many times; the headline is the median ratio")
    parser.add_argument("--no-echo", action="store_true", help="skip the bare echo (only floor and full)")
    parser.add_argument("--scaling", action="store_true",
                        help="also run floor and full with gunicorn -w 1, 2 and 4")
    parser.add_argument("--durable-floor", action="store_true", help=argparse.SUPPRESS)  # always on now
    args = parser.parse_args()

    from wechat_fake.server import FakeWeChatServer

    prepare_database()
    fake = FakeWeChatServer(appid=APP_ID, secret=SECRET).start()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": DB_URL, "REDIS_URL": REDIS_URL,
           "SECRET_KEY": "bench", "WECHAT_TOKEN": TOKEN, "WECHAT_APP_ID": APP_ID,
           "WECHAT_APP_SECRET": SECRET, "WECHAT_ENCODING_AES_KEY": AES_KEY,
           "WECHAT_API_BASE_URL": fake.base_url}
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    total = args.warmup + args.requests
    offsets = iter(range(0, 10**9, total))  # distinct MsgIds and residents for every server started
    echo = None if args.no_echo else measure("echo", "bench.echo_app:app", env, args, next(offsets),
                                             args.workers)
    runs = []
    for _ in range(args.runs):
        floor = measure("floor", "bench.durable_echo_app:app", env, args, next(offsets), args.workers)
        full = measure("full", "webapp:create_app()", env, args, next(offsets), args.workers)
        runs.append((full[0] / floor[0], floor, full))
        print(f"      full/floor {runs[-1][0]:.2f}", flush=True)
    scaling = []
    if args.scaling:
        for workers in (1, 2, 4):
            floor = measure("floor", "bench.durable_echo_app:app", env, args, next(offsets), workers)
            full = measure("full", "webapp:create_app()", env, args, next(offsets), workers)
            scaling.append((workers, floor[0], full[0]))
    fake.stop()

    ratio, floor, full = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    p99s = sorted(r[2][2] for r in runs)
    print()
    print(f"ratio full/floor throughput: {ratio:.2f}  (median of {len(runs)} run(s); target >= 0.50; "
          "the floor is the echo plus one INSERT and commit per delivery: the ceiling of any design "
          "that stores each delivery before replying)")
    print(f"full p99: {p99s[len(p99s) // 2]:.1f} ms  (median of {len(runs)}; target < 100 ms)")
    if echo is not None:
        print(f"ratio floor/echo throughput: {floor[0] / echo[0]:.2f}   full/echo: {full[0] / echo[0]:.2f}")
    for workers, floor_rate, full_rate in scaling:
        print(f"gunicorn -w {workers}: floor {floor_rate:8.1f} msg/s  full {full_rate:8.1f} msg/s  "
              f"full/floor {full_rate / floor_rate:.2f}")
    print(f"settings: {args.requests} distinct messages, concurrency {args.concurrency}, "
          f"gunicorn -w {args.workers} --threads {args.threads}, safe mode (AES)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
