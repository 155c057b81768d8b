"""Outbound WeChat client (see client.py), token stores, errors and privacy helpers."""

from .client import DEFAULT_BASE_URL, WeChatClient, thing_value
from .errors import (
    WeChatAPIError,
    WeChatRateLimitError,
    WeChatTimeoutError,
    WeChatTokenError,
    WeChatTransientError,
    WeChatUnsubscribedError,
    WeChatWindowError,
)
from .privacy import mask
from .tokens import MemoryTokenStore, RedisTokenStore

__all__ = [
    "DEFAULT_BASE_URL", "WeChatClient", "thing_value", "WeChatAPIError", "WeChatRateLimitError",
    "WeChatTimeoutError", "WeChatTokenError", "WeChatTransientError", "WeChatUnsubscribedError",
    "WeChatWindowError", "mask", "MemoryTokenStore", "RedisTokenStore",
]
