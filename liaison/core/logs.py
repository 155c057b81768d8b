"""Logging for every process, with personal data scrubbed from each record before it is written.

Code logs openids through `privacy.mask` already; this is the net under that: messages and tracebacks
that carry data nobody chose to log — PostgreSQL's "Key (oa_openid)=(…) already exists", a phone
number inside a complaint quoted by an exception, an openid in a URL.
"""
from __future__ import annotations

import logging
import re

from liaison.wechat.privacy import mask

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_OPENID = re.compile(r"(?<![A-Za-z0-9_-])o[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])")  # openids and unionids
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_KEY_DETAIL = re.compile(r"(Key \(.*?\)=\().*?(\) (?:already exists|is not present))", re.S)
# Loggers that write through handlers of their own, not the root's.
OWN_HANDLER_LOGGERS = ("rq.worker", "gunicorn.error")


def redact(text: str) -> str:
    """The text with openids masked, mobile numbers shortened (138****5678) and key values dropped."""
    text = _KEY_DETAIL.sub(r"\1…\2", text)
    text = _OPENID.sub(lambda match: mask(match.group(0)), text)
    return _MOBILE.sub(r"\1****\2", text)


class RedactingFilter(logging.Filter):
    """Renders the record's message and traceback once, redacted, so no handler sees the originals."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def protect(target: logging.Handler | logging.Logger) -> None:
    """Add the redacting filter to a handler or logger (once)."""
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())


def configure(level: int = logging.INFO) -> None:
    """Log to stderr unless the process already configured logging, redacting every record."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=FORMAT)
    for handler in root.handlers:
        protect(handler)
    for name in OWN_HANDLER_LOGGERS:
        protect(logging.getLogger(name))
