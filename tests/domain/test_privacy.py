"""Personal data never reaches the logs in clear: not through our own messages (openids are masked at
the call site) and not through what others put into messages and tracebacks — PostgreSQL's error
details, SQL parameters, a phone number quoted from a complaint."""
from __future__ import annotations

import io
import logging

import pytest
from sqlalchemy.exc import IntegrityError

from liaison.core import db, logs
from liaison.people.models import Resident
from liaison.wechat.privacy import mask

OPENID = "oPrivateOpenid0123456789abcd"  # the shape of a real openid: "o" and 27 more characters
PHONE = "13812345678"


def test_redact_masks_openids_phones_and_key_values():
    text = f'Key (oa_openid)=({OPENID}) already exists. 电话{PHONE}，编号 1391234567890 不是手机号'
    clean = logs.redact(text)
    assert OPENID not in clean and PHONE not in clean and "138****5678" in clean
    assert "Key (oa_openid)=(…) already exists" in clean and "1391234567890" in clean
    assert logs.redact(f"to {OPENID}") == f"to {mask(OPENID)}"


@pytest.fixture
def root_stream():
    """The root logger writing to a string, configured by `logs.configure` as every process is."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    root.handlers = [logging.StreamHandler(stream)]
    root.setLevel(logging.INFO)
    logs.configure()
    yield stream
    root.handlers, root.level = saved_handlers, saved_level


def test_a_failed_insert_logged_with_its_traceback_shows_no_personal_data(clean_db, root_stream):
    with db.session_scope() as session:
        session.add(Resident(oa_openid=OPENID, window_used=0))
    with pytest.raises(IntegrityError) as raised:
        with db.session_scope() as session:
            session.add(Resident(oa_openid=OPENID, window_used=0))
    assert "SQL parameters hidden" in str(raised.value)  # the engine keeps parameters out of errors
    logging.getLogger("liaison.test").error("job failed for %s: %s", OPENID, PHONE, exc_info=raised.value)
    written = root_stream.getvalue()
    assert "residents_oa_openid_key" in written and "Traceback" in written
    assert OPENID not in written and PHONE not in written and mask(OPENID) in written


def test_rq_worker_log_is_redacted_too(root_stream):
    """RQ's worker logs through a handler of its own: the filter sits on its logger."""
    own = io.StringIO()
    worker_log = logging.getLogger("rq.worker")
    handler = logging.StreamHandler(own)
    worker_log.addHandler(handler)
    try:
        worker_log.error("job failed: resident %s", OPENID)
    finally:
        worker_log.removeHandler(handler)
    assert OPENID not in own.getvalue() and mask(OPENID) in own.getvalue()
