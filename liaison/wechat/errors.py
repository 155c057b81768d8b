"""WeChat API errors and their classification.

Every failure of the outbound client is a ``WeChatAPIError`` (or a subclass picked by
``WeChatAPIError.build``), so callers can either catch the subclass or ask the predicates:

- ``is_token_error``   40001 / 40014 / 42001 (the client already refreshed and retried once)
- ``is_window_error``  45015 (customer-service window closed) / 45047 (window quota used)
- ``is_rate_limited``  45009 (daily/frequency limit) / 45011 (per-minute limit): back off
- ``is_unsubscribed``  43101 (the resident did not accept / refused the subscription message)
- ``retryable``        -1 (system busy), HTTP 5xx, connection errors and timeouts
- ``WeChatNotSentError``  the access token could not be had: the request itself never left

Transport failures have ``errcode = None``; HTTP failures carry ``http_status``.
"""

from __future__ import annotations

TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
WINDOW_ERRCODES = frozenset({45015, 45047})
RATE_LIMIT_ERRCODES = frozenset({45009, 45011})
UNSUBSCRIBED_ERRCODES = frozenset({43101})
TRANSIENT_ERRCODES = frozenset({-1})

ERR_SYSTEM_BUSY = -1
ERR_INVALID_TOKEN = 40001
ERR_INVALID_OPENID = 40003
ERR_NOT_FOLLOWER = 43004
ERR_NOT_SUBSCRIBED = 43101
ERR_RATE_LIMIT = 45009
ERR_MINUTE_LIMIT = 45011
ERR_WINDOW_CLOSED = 45015
ERR_WINDOW_QUOTA = 45047
ERR_MASS_DUPLICATE = 45065
ERR_BAD_TEMPLATE_DATA = 47003
ERR_NO_PERMISSION = 48001


class WeChatAPIError(Exception):
    """A WeChat API call failed.

    ``errcode``/``errmsg`` from WeChat's JSON answer (``errcode`` is None for HTTP and transport
    failures), ``http_status`` when an HTTP answer was received, ``path`` the API path called.
    """

    def __init__(self, errcode: int | None, errmsg: str = "", http_status: int | None = None,
                 path: str | None = None, response: dict | None = None):
        self.errcode = errcode
        self.errmsg = errmsg or ""
        self.http_status = http_status
        self.path = path
        self.response = response
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = []
        if self.path:
            parts.append(self.path)
        if self.errcode is not None:
            parts.append(f"errcode={self.errcode}")
        if self.http_status is not None and (self.errcode is None or self.http_status != 200):
            parts.append(f"http_status={self.http_status}")
        if self.errmsg:
            parts.append(self.errmsg)
        return " ".join(parts) or "WeChat API error"

    # -- classification -------------------------------------------------------------
    @property
    def is_token_error(self) -> bool:
        return self.errcode in TOKEN_ERRCODES

    @property
    def is_window_error(self) -> bool:
        return self.errcode in WINDOW_ERRCODES

    @property
    def is_rate_limited(self) -> bool:
        return self.errcode in RATE_LIMIT_ERRCODES

    @property
    def is_unsubscribed(self) -> bool:
        return self.errcode in UNSUBSCRIBED_ERRCODES

    @property
    def retryable(self) -> bool:
        """Transient: system busy (-1), HTTP 5xx, connection error or timeout. Retry later with backoff."""
        if self.errcode in TRANSIENT_ERRCODES:
            return True
        if self.errcode is None:
            return self.http_status is None or self.http_status >= 500 or self.http_status == 429
        return False

    @property
    def kind(self) -> str:
        """One word for logs and metrics: token/window/rate_limit/unsubscribed/transient/other."""
        if self.is_token_error:
            return "token"
        if self.is_window_error:
            return "window"
        if self.is_rate_limited:
            return "rate_limit"
        if self.is_unsubscribed:
            return "unsubscribed"
        if self.retryable:
            return "transient"
        return "other"

    @classmethod
    def build(cls, errcode: int | None, errmsg: str = "", http_status: int | None = None,
              path: str | None = None, response: dict | None = None) -> "WeChatAPIError":
        """The most specific subclass for this error."""
        if errcode in TOKEN_ERRCODES:
            klass = WeChatTokenError
        elif errcode in WINDOW_ERRCODES:
            klass = WeChatWindowError
        elif errcode in RATE_LIMIT_ERRCODES:
            klass = WeChatRateLimitError
        elif errcode in UNSUBSCRIBED_ERRCODES:
            klass = WeChatUnsubscribedError
        elif errcode in TRANSIENT_ERRCODES or (
                errcode is None and (http_status is None or http_status >= 500 or http_status == 429)):
            klass = WeChatTransientError
        else:
            klass = cls
        return klass(errcode, errmsg, http_status=http_status, path=path, response=response)


class WeChatTokenError(WeChatAPIError):
    """40001/40014/42001 still failing after one refresh and one retry."""


class WeChatWindowError(WeChatAPIError):
    """45015 (customer-service window closed) or 45047 (window quota used)."""


class WeChatRateLimitError(WeChatAPIError):
    """45009/45011: back off."""


class WeChatUnsubscribedError(WeChatAPIError):
    """43101: the user has not accepted (or refused) this subscription message."""


class WeChatTransientError(WeChatAPIError):
    """-1, HTTP 5xx, connection errors: retryable."""


class WeChatNotSentError(WeChatTransientError):
    """The API request never left this process: getting the access token failed (Redis unreachable,
    stable_token refused or timed out). Nothing can have been delivered, so resending is safe. The
    original exception is the ``__cause__``; ``errcode``/``http_status`` are stable_token's, if any."""


class WeChatTimeoutError(WeChatTransientError):
    """The request timed out. ``connect_timeout`` True: the request never reached WeChat (safe to resend);
    False (read timeout): WeChat may have delivered the message (``maybe_delivered``)."""

    def __init__(self, *args, connect_timeout: bool = False, **kwargs):
        self.connect_timeout = connect_timeout
        super().__init__(*args, **kwargs)

    @property
    def maybe_delivered(self) -> bool:
        return not self.connect_timeout


def _code(err) -> int | None:
    return err.errcode if isinstance(err, WeChatAPIError) else err


def is_token_error(err) -> bool:
    return _code(err) in TOKEN_ERRCODES


def is_window_error(err) -> bool:
    return _code(err) in WINDOW_ERRCODES


def is_rate_limited(err) -> bool:
    return _code(err) in RATE_LIMIT_ERRCODES


def is_unsubscribed(err) -> bool:
    return _code(err) in UNSUBSCRIBED_ERRCODES


def is_retryable(err) -> bool:
    if isinstance(err, WeChatAPIError):
        return err.retryable
    return err in TRANSIENT_ERRCODES
