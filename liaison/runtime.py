"""Process wiring shared by the web app, the workers and the CLI: settings → engine, Redis, WeChat client.

Each process calls `configure(settings)` once. Nothing here imports Flask or RQ.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from config.settings import Settings
from liaison.core import db, ratelimit
from liaison.wechat.client import WeChatClient
from liaison.wechat.tokens import MemoryTokenStore, RedisTokenStore


@dataclass
class Runtime:
    settings: Settings
    redis: object | None
    wechat: WeChatClient
    miniprogram: WeChatClient | None
    pid: int = 0


_runtime: Runtime | None = None
_lock = threading.Lock()


def configure(settings: Settings) -> Runtime:
    """Initialise the database engine, Redis and the WeChat clients for this process."""
    global _runtime
    with _lock:
        db.init_engine(settings.database_url)
        ratelimit.configure(ratelimit.storage_uri(settings.redis_url),
                            {ratelimit.CASES_PER_RESIDENT: settings.case_rate_limit_per_resident,
                             ratelimit.OPEN311_PER_PARTNER: settings.open311_rate_limit_per_partner,
                             ratelimit.CONSOLE_SIGN_IN_ACCOUNT: settings.console_sign_in_limit_per_account,
                             ratelimit.CONSOLE_SIGN_IN_ADDRESS: settings.console_sign_in_limit_per_address})
        redis_client = None
        if settings.redis_url:
            import redis

            redis_client = redis.Redis.from_url(settings.redis_url)

        def store(appid: str):
            return RedisTokenStore(redis_client, appid) if redis_client is not None else MemoryTokenStore()

        wechat = WeChatClient(settings.wechat_app_id, settings.wechat_app_secret,
                              base_url=settings.wechat_api_base_url,
                              token_store=store(settings.wechat_app_id))
        miniprogram = None
        if settings.miniprogram_app_id:
            miniprogram = WeChatClient(settings.miniprogram_app_id, settings.miniprogram_app_secret,
                                       base_url=settings.wechat_api_base_url,
                                       token_store=store(settings.miniprogram_app_id))
        _runtime = Runtime(settings=settings, redis=redis_client, wechat=wechat, miniprogram=miniprogram,
                           pid=os.getpid())
        return _runtime


def current() -> Runtime:
    """The runtime configured for this process (RuntimeError if `configure` was never called)."""
    if _runtime is None:
        raise RuntimeError("liaison.runtime.configure(settings) has not been called in this process")
    if _runtime.pid != os.getpid():
        # A forked child (RQ's work horse) must not share the parent's database connections.
        db.get_engine().dispose(close=False)
        _runtime.pid = os.getpid()
    return _runtime
