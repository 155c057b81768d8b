"""The web app of tests/test_webhook_crash.py: the real app (`webapp.create_app()`) whose process dies
the moment a webhook delivery's transaction has committed, before the reply is written or the outbox
is handed to the queue: `os._exit`, no cleanup, like a killed process.

It dies once: only while the file named by LIAISON_TEST_CRASH_MARKER does not exist (it is created
just before dying), so the worker gunicorn starts in its place serves WeChat's retry normally.
"""
from __future__ import annotations

import os

from flask import has_request_context, request

from liaison.core import db
from webapp import create_app

app = create_app()
MARKER = os.environ["LIAISON_TEST_CRASH_MARKER"]


def _die_after_commit(_session) -> None:
    if not (has_request_context() and request.method == "POST" and request.path.startswith("/wechat")):
        return
    if os.path.exists(MARKER):
        return
    with open(MARKER, "w") as marker:
        marker.write(str(os.getpid()))
    os._exit(1)


# First of the after-commit hooks: the rows are committed, nothing after the commit has run.
db._after_commit_hooks.insert(0, _die_after_commit)
