"""The domain's one clock: every stored time is timezone-aware UTC.

Tests move time forward with `set_clock` instead of sleeping.
"""
from __future__ import annotations

from datetime import datetime, timezone

_clock = None  # a callable returning the time, set only by tests that move time forward


def utcnow() -> datetime:
    """Timezone-aware UTC now; every stored time is UTC. The domain's one clock."""
    return _clock() if _clock is not None else datetime.now(timezone.utc)


def set_clock(clock) -> None:
    """Replace the domain's clock (tests move time forward without sleeping); None restores it."""
    global _clock
    _clock = clock


