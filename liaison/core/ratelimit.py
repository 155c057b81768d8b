"""Rate limits the domain applies itself (the chat has no HTTP client to refuse): the `limits`
library — the one under Flask-Limiter, which guards the API — over Redis, shared by every process;
in-process memory in embedded mode.

`liaison.runtime.configure` calls `configure`; a process that never configured limits (a unit test
calling a service directly) is not limited. A storage outage lets the action through: a lost counter
must not stop a resident's message.
"""
from __future__ import annotations

import logging
import threading
import time

from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

CASES_PER_RESIDENT = "cases_per_resident"  # new cases a resident opens (chat; the API has its own)
OPEN311_PER_PARTNER = "open311_per_partner"  # Open311 calls made with one partner key
CONSOLE_SIGN_IN_ACCOUNT = "console_sign_in_account"  # failed console sign-ins per sign-in name
CONSOLE_SIGN_IN_ADDRESS = "console_sign_in_address"  # failed console sign-ins per client address
KEY_PREFIX = "liaison:ratelimit"


def storage_uri(redis_url: str | None) -> str:
    """The storage every limiter of this deployment shares (Flask-Limiter's too)."""
    if not redis_url:
        return "memory://"
    if redis_url.startswith("unix://"):  # redis-py's socket URL; `limits` spells it redis+unix
        return "redis+unix://" + redis_url[len("unix://"):]
    return redis_url


# Every limit of a rule checked and, when none is reached, counted: one script, one round trip, atomic
# (the library's own calls take two per limit). The lists are the library's moving windows (newest
# timestamp first, trimmed to the limit), so `limits` itself reads what this writes.
# KEYS: one window per limit; ARGV: now, then (amount, expiry seconds) per limit.
_HIT_ALL = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local amount, expiry = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local entry = redis.call('LINDEX', key, amount - 1)
  if entry and tonumber(entry) >= now - expiry then return 0 end
end
for i, key in ipairs(KEYS) do
  local amount, expiry = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('LPUSH', key, ARGV[1])
  redis.call('LTRIM', key, 0, amount - 1)
  redis.call('EXPIRE', key, expiry)
end
return 1
"""


class Limits:
    """Named rules (`limits` notation such as "5 per minute;20 per day") checked against one storage."""

    def __init__(self, uri: str, rules: dict[str, str]):
        self.storage: Storage = storage_from_string(uri, key_prefix=KEY_PREFIX)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.rules: dict[str, list[RateLimitItem]] = {name: parse_many(rule) for name, rule in rules.items()}
        self._hit_all = None
        if type(self.storage) is RedisStorage:  # one server: a cluster would refuse keys of two slots
            self._hit_all = self.storage.get_connection().register_script(_HIT_ALL)

    def allowed(self, rule: str, *identity: str) -> bool:
        """Whether one more action under `rule` for `identity` stays within every limit (no count)."""
        try:
            return all(self.limiter.test(item, rule, *identity) for item in self.rules[rule])
        except Exception:  # noqa: BLE001 - storage down: let it through (see module docstring)
            log.warning("rate limit storage unavailable; %s not checked", rule)
            return True

    def hit(self, rule: str, *identity: str) -> bool:
        """Count one action; False (and nothing counted) when a limit is already reached."""
        if self._hit_all is not None:
            items = self.rules[rule]
            keys = [self.storage.prefixed_key(item.key_for(rule, *identity)) for item in items]
            args = [time.time()]
            for item in items:
                args += [item.amount, item.get_expiry()]
            try:
                return bool(self._hit_all(keys, args))
            except Exception:  # noqa: BLE001 - storage down: let it through (see module docstring)
                log.warning("rate limit storage unavailable; %s not checked", rule)
                return True
        if not self.allowed(rule, *identity):
            return False
        try:
            for item in self.rules[rule]:
                self.limiter.hit(item, rule, *identity)
        except Exception:  # noqa: BLE001
            log.warning("rate limit storage unavailable; %s not counted", rule)
        return True

    def count_commands(self, rule: str, *identity: str) -> list[tuple]:
        """`hit` as a Redis command for a caller that sends it in a pipeline of its own: `_HIT_ALL`
        by EVAL (a pipeline cannot load a script first; Redis caches it by its digest)."""
        items = self.rules[rule]
        keys = [self.storage.prefixed_key(item.key_for(rule, *identity)) for item in items]
        args: list = [time.time()]
        for item in items:
            args += [item.amount, item.get_expiry()]
        return [("EVAL", _HIT_ALL, len(keys), *keys, *args)]


_current: Limits | None = None
_lock = threading.Lock()


def configure(uri: str, rules: dict[str, str]) -> Limits:
    """Install the process's limits (called by `liaison.runtime.configure`)."""
    global _current
    with _lock:
        _current = Limits(uri, rules)
        return _current


def current() -> Limits | None:
    return _current


def allowed(rule: str, *identity: str) -> bool:
    """Whether one more action under a configured rule is allowed, counting nothing (True when limits
    are off): a lockout that only failures count asks this before the attempt."""
    limits = _current
    if limits is None or rule not in limits.rules:
        return True
    return limits.allowed(rule, *identity)


def hit(rule: str, *identity: str) -> bool:
    """Count one action under a configured rule; True when it is allowed (or limits are off)."""
    limits = _current
    if limits is None or rule not in limits.rules:
        return True
    return limits.hit(rule, *identity)


PENDING_KEY = "ratelimit_pending_counts"
_after_commit = False  # whether this process's after-commit hand-over sends the pending counts


def send_counts_after_commit(enabled: bool = True) -> bool:
    """Called by the after-commit hand-over that sends `take_pending`'s commands (`jobs.queues`).
    Returns the setting it replaces, for a caller that changes it for a while to put it back."""
    global _after_commit
    previous, _after_commit = _after_commit, enabled
    return previous


def count_new(info: dict, rule: str, *identity: str) -> None:
    """Count one action under `rule` for an identity created in the caller's transaction (a new
    resident's first case): nothing can have been counted under it yet, so no limit is reached and
    there is nothing to check. With Redis the count waits in `info` (the session's) for the
    after-commit hand-over to the queue, where one is installed (`send_counts_after_commit`), which
    sends it with the transaction's jobs in one round trip (`take_pending`); elsewhere it is counted
    at once. A count the hand-over cannot send is lost, as with a storage outage in `hit`."""
    limits = _current
    if limits is None or rule not in limits.rules:
        return
    if limits._hit_all is None or not _after_commit:
        limits.hit(rule, *identity)
        return
    info.setdefault(PENDING_KEY, []).extend(limits.count_commands(rule, *identity))


def take_pending(info: dict) -> list[tuple]:
    """The Redis commands of the counts `count_new` left in `info`; forgets them."""
    return info.pop(PENDING_KEY, [])


def send_pending(commands: list[tuple]) -> None:
    """Send `take_pending`'s commands on the limits' own connection (one round trip)."""
    limits = _current
    if not commands or limits is None or limits._hit_all is None:
        return
    try:
        pipe = limits.storage.get_connection().pipeline()
        for command in commands:
            pipe.execute_command(*command)
        pipe.execute()
    except Exception:  # noqa: BLE001 - storage down: not counted (see module docstring)
        log.warning("rate limit storage unavailable; %d count command(s) not sent", len(commands))
