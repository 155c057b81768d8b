"""Killing the web process between the commit and the reply loses nothing: the delivery and its case
were committed with the reply text, so WeChat's retry (the same MsgId, a new signature) gets that
stored reply, and nothing is created twice. The outbox rows the dead process never handed to the queue
are still there for the relay.

The app runs as a real gunicorn process (tests/crash_app.py: the real app plus a hook that calls
os._exit right after the first webhook commit); gunicorn starts a new worker, as in production.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import requests
from sqlalchemy import func, select

from liaison.case.models import Case
from liaison.core import db
from liaison.messaging.models import InboundMessage, OutboxMessage
from liaison.people.models import Resident
from tests.conftest import AES_KEY, APP_ID, ROOT, TOKEN, settings_env, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def crashing_server(settings, demo_county, fake_wechat, tmp_path):
    port = _free_port()
    marker = tmp_path / "crashed"
    env = {**os.environ, **settings_env(fake_wechat.base_url),
           "PYTHONPATH": str(ROOT), "LIAISON_TEST_CRASH_MARKER": str(marker)}
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1",
                             "--threads", "2", "--log-level", "warning", "tests.crash_app:app"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    try:
        wait_for(listening, timeout=60, message="gunicorn to listen")
        yield f"http://127.0.0.1:{port}", marker, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _count(model) -> int:
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_crash_between_commit_and_reply_loses_nothing_and_the_retry_gets_the_stored_reply(crashing_server):
    from wechat_fake.simulator import WeChatSimulator

    url, marker, proc = crashing_server
    # A patient client: on a loaded machine the first delivery may take long; what matters is that it
    # is never answered, because the process dies first.
    sim = WeChatSimulator(url=url + "/wechat", token=TOKEN, appid=APP_ID, encoding_aes_key=AES_KEY,
                          mode="safe", timeout=120)
    xml = sim.build_text("o_crash_resident", "幸福里小区3号楼门口的路灯坏了好几天了")

    try:
        first = sim.post(xml)
    except requests.ConnectionError:  # the worker died with the request open
        first = None
    assert first is None or not first.ok, "the first delivery must not have been answered"
    wait_for(marker.exists, timeout=60, message="the web process to die after the commit")
    assert proc.poll() is None  # gunicorn itself lives on and starts another worker

    # What the dead process committed: the delivery with its reply, and the case it names.
    with db.session_scope() as session:
        stored = session.scalars(select(InboundMessage)).all()
        assert len(stored) == 1
        case = session.get(Case, stored[0].case_id)
        assert case is not None and case.number in stored[0].reply_text
        reply_text = stored[0].reply_text
        # The outbox rows it never handed to the queue are kept for the relay (enqueue lease).
        waiting = session.scalars(select(OutboxMessage)).all()
        assert waiting and all(row.status == "enqueued" and row.lease_until is not None for row in waiting)

    def retry():
        try:
            answer = sim.post(xml)  # WeChat's next delivery of the same message
        except requests.ConnectionError:  # the new worker is still starting
            return None
        return answer if answer.ok else None

    answer = wait_for(retry, timeout=90, message="the restarted worker to answer WeChat's retry")
    assert answer.content == reply_text
    assert _count(InboundMessage) == 1 and _count(Case) == 1 and _count(Resident) == 1
