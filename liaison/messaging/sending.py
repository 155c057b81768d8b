"""One send on one channel, and what its outcome means: the one delivery engine's attempt.

Both senders use it: outbox delivery (`messaging.delivery`) and broadcast chunks
(`engagement.broadcasts.ChunkSender`). Each decides what an outcome does to its own rows; what an
error *means* is decided here, once:

- ``sent``: WeChat accepted it (45065 too: a mass batch already accepted under that clientmsgid);
- ``window`` (45015/45047), ``unsubscribed`` (43101), ``not_follower`` (43004), ``refused`` (bad openid,
  bad template data, no permission ...): nothing was delivered; another channel may work;
- ``retry`` (−1, HTTP 5xx, connection errors, connect timeouts) and ``rate_limited`` (45009/45011):
  nothing was delivered; try the same again later, with backoff;
- ``not_sent``: the request never left (no access token: Redis unreachable, stable_token failing; or an
  error in our own code before the call): release the claim for a normal retry;
- ``unknown``: the request was on the wire when it failed (read timeout, or a non-WeChat error after it
  started): WeChat may have delivered it, so it is never resent blindly.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from liaison.wechat.client import watch_requests
from liaison.wechat.errors import (
    ERR_MASS_DUPLICATE,
    ERR_NOT_FOLLOWER,
    WeChatAPIError,
    WeChatNotSentError,
    WeChatTimeoutError,
)

log = logging.getLogger(__name__)

SENT = "sent"
WINDOW, UNSUBSCRIBED, NOT_FOLLOWER, REFUSED = "window", "unsubscribed", "not_follower", "refused"
RETRY, RATE_LIMITED, NOT_SENT = "retry", "rate_limited", "not_sent"
UNKNOWN = "unknown"

NEXT_CHANNEL = frozenset({WINDOW, UNSUBSCRIBED, NOT_FOLLOWER, REFUSED})  # nothing delivered; try another
LATER = frozenset({RETRY, RATE_LIMITED, NOT_SENT})  # nothing delivered; the same again later
OUTCOMES = frozenset({SENT, UNKNOWN}) | NEXT_CHANNEL | LATER

RATE_LIMIT_DELAY = timedelta(minutes=10)  # 45009/45011: WeChat's limits reset by the minute or the day


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: `kind` (one of OUTCOMES), WeChat's answer or the error."""

    kind: str
    result: Any = None
    error: BaseException | None = None
    duplicate: bool = False  # sent: WeChat had accepted this very batch before (45065)

    @property
    def errcode(self) -> int | None:
        return self.error.errcode if isinstance(self.error, WeChatAPIError) else None

    @property
    def message(self) -> str | None:
        """The error for the attempt's record (no personal data: WeChat's errmsg or our error's type)."""
        if self.error is None:
            return None
        if isinstance(self.error, WeChatAPIError):
            return str(self.error)
        return f"not sent: {type(self.error).__name__}: {self.error}"[:500]

    @property
    def delivered_nothing(self) -> bool:
        """Certainly not delivered: whatever was reserved for it (a window slot, a credit) goes back."""
        return self.kind in NEXT_CHANNEL or self.kind in LATER

    @property
    def delay(self) -> timedelta | None:
        """How long to wait before the next try, when WeChat says so (None: the caller's backoff)."""
        return RATE_LIMIT_DELAY if self.kind == RATE_LIMITED else None


def classify(error: WeChatAPIError) -> str:
    """The outcome kind of a WeChat error (see the module docstring)."""
    if isinstance(error, WeChatNotSentError):
        return NOT_SENT
    if isinstance(error, WeChatTimeoutError) and error.maybe_delivered:
        return UNKNOWN
    if error.is_window_error:
        return WINDOW
    if error.is_unsubscribed:
        return UNSUBSCRIBED
    if error.errcode == ERR_NOT_FOLLOWER:
        return NOT_FOLLOWER
    if error.is_rate_limited:
        return RATE_LIMITED
    if error.retryable:
        return RETRY
    return REFUSED  # bad openid, bad template data, no permission: another channel may work


def attempt(send: Callable[[], Any]) -> Outcome:
    """Run `send()` (one WeChat call) and classify what happened; never raises for a send failure.

    A non-WeChat exception is `not_sent` when no API request had started yet (e.g. the token store's
    Redis is down, a template failed to render), `unknown` when one had: a job timeout or a bug after
    the request left must not lead to a second delivery.
    """
    with watch_requests() as started:
        try:
            result = send()
        except WeChatAPIError as error:
            if error.errcode == ERR_MASS_DUPLICATE:
                return Outcome(SENT, error=error, duplicate=True)
            return Outcome(classify(error), error=error)
        except Exception as error:  # noqa: BLE001 - classified, recorded and logged by the caller
            log.warning("send failed %s the request left: %s", "after" if started else "before",
                        type(error).__name__)
            return Outcome(UNKNOWN if started else NOT_SENT, error=error)
    return Outcome(SENT, result=result)
