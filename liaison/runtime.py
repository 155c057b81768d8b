"""Process wiring shared by the web app, the workers and the CLI: settings → engine, Redis, WeChat clients.

Each process calls `configure(settings)` once. Nothing here imports Flask or RQ.

One official-account client per app id: `wechat` is the deployment's (the settings' WECHAT_APP_ID),
`wechat_for(county_id)` the one of a county with its own account (its `counties` columns), made on
first use, so a county added while the process runs is served without a restart. Each client's access
token is cached under its own app id (`wechat:access_token:<app id>` in Redis).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from config.settings import Settings
from liaison.core import db, ratelimit, tenant
from liaison.tenancy.models import County
from liaison.wechat.client import DEFAULT_TIMEOUT, WeChatClient
from liaison.wechat.tokens import MemoryTokenStore, RedisTokenStore

COUNTY_CACHE_SECONDS = 30.0  # a county's changed app secret is believed within this time


def wechat_timeout(settings: Settings) -> tuple[float, float]:
    """(connect, read) seconds for calls to the WeChat API: the read timeout is a setting."""
    return DEFAULT_TIMEOUT[0], settings.wechat_api_timeout_seconds


@dataclass
class Runtime:
    settings: Settings
    redis: object | None
    wechat: WeChatClient
    miniprogram: WeChatClient | None
    pid: int = 0
    token_store: Callable[[str], object] | None = None
    _clients: dict[str, WeChatClient] = field(default_factory=dict)
    _county_accounts: dict[int, tuple[float, tuple[str, str] | None]] = field(default_factory=dict)
    _clients_lock: threading.Lock = field(default_factory=threading.Lock)

    def wechat_for(self, county_id: int | None, session=None) -> WeChatClient:
        """The official-account client of county `county_id`: its own app id's when its row names one
        (with a secret), else the deployment's (`wechat`). `session`: read the county there (a
        caller inside a unit of work), else in a session of its own."""
        account = None if county_id is None else self._county_account(county_id, session)
        if account is None or account[0] == self.wechat.appid:
            return self.wechat
        app_id, secret = account
        with self._clients_lock:
            client = self._clients.get(app_id)
            if client is None or client.secret != secret:
                client = WeChatClient(app_id, secret, base_url=self.settings.wechat_api_base_url,
                                      token_store=self.token_store(app_id) if self.token_store else None,
                                      timeout=wechat_timeout(self.settings))
                self._clients[app_id] = client
            return client

    def wechat_here(self) -> WeChatClient:
        """The client of the county the current unit of work writes in (the API caller's, a job's row's)."""
        return self.wechat_for(tenant.current().write_county)

    def _county_account(self, county_id: int, session=None) -> tuple[str, str] | None:
        now = time.monotonic()
        cached = self._county_accounts.get(county_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        if session is None:
            with tenant.use(tenant.all_counties("find a county's official account")), \
                    db.session_scope() as own:
                return self._county_account(county_id, own)
        county = session.get(County, county_id)  # `counties` is no county-owned table: any scope reads it
        account = ((county.wechat_app_id, county.wechat_app_secret)
                   if county is not None and county.wechat_app_id and county.wechat_app_secret else None)
        self._county_accounts[county_id] = (now + COUNTY_CACHE_SECONDS, account)
        return account


_runtime: Runtime | None = None
_lock = threading.Lock()


def configure(settings: Settings) -> Runtime:
    """Initialise the database engine, Redis and the WeChat clients for this process, and whether a
    unit of work that names no county is in the default one (`settings.implicit_default_county`)."""
    global _runtime
    with _lock:
        tenant.set_fallback(tenant.DEFAULT if settings.implicit_default_county else None)
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
                              token_store=store(settings.wechat_app_id), timeout=wechat_timeout(settings))
        miniprogram = None
        if settings.miniprogram_app_id:
            miniprogram = WeChatClient(settings.miniprogram_app_id, settings.miniprogram_app_secret,
                                       base_url=settings.wechat_api_base_url,
                                       token_store=store(settings.miniprogram_app_id),
                                       timeout=wechat_timeout(settings))
        _runtime = Runtime(settings=settings, redis=redis_client, wechat=wechat, miniprogram=miniprogram,
                           pid=os.getpid(), token_store=store)
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
