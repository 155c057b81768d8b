"""Staff-managed keyword rules for the classifier: stored in the database, live in every process.

Staff add or remove a rule (keyword → category, weight); it takes effect without a restart: the
process that changes a rule applies it at once, every other process within `REFRESH_SECONDS` (the
rule set is re-read when its version — count and latest change — differs).
"""
from __future__ import annotations

import threading
import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from classifiers import get_classifier
from liaison.case.models import KeywordRule
from liaison.core import tenant
from liaison.core.clock import utcnow
from liaison.core.errors import INVALID, DomainError

REFRESH_SECONDS = 10.0
MAX_WEIGHT = 20.0


class RuleError(DomainError, ValueError):
    """A rule that cannot be added (unknown category, empty keyword, weight out of range)."""

    kind = INVALID
    code = "invalid_rule"


_lock = threading.Lock()
_state: dict = {"checked": 0.0, "version": None, "url": None}


def add_rule(session: Session, keyword: str, category: str, weight: float,
             account_id: int | None = None) -> KeywordRule:
    """Add a rule; it applies to this process's classifier at once."""
    keyword = keyword.strip()
    if not keyword:
        raise RuleError("关键词不能为空")
    if category not in get_classifier().labels:
        raise RuleError(f"未知类别：{category}", field="category")
    if not -MAX_WEIGHT <= weight <= MAX_WEIGHT:
        raise RuleError(f"权重须在 ±{MAX_WEIGHT:g} 之间")
    rule = KeywordRule(keyword=keyword, category=category, weight=weight, created_by=account_id)
    session.add(rule)
    session.flush()
    sync(session, force=True)
    return rule


def remove_rule(session: Session, public_id: str) -> KeywordRule | None:
    """Retire a rule (kept for the record); None when there is no such active rule."""
    rule = session.scalar(select(KeywordRule).where(KeywordRule.public_id == public_id))
    if rule is None or rule.removed_at is not None:
        return None
    rule.removed_at = utcnow()
    session.flush()
    sync(session, force=True)
    return rule


def active_rules(session: Session) -> list[KeywordRule]:
    return list(session.scalars(select(KeywordRule).where(KeywordRule.removed_at.is_(None))
                                .order_by(KeywordRule.id)))


def sync(session: Session, *, force: bool = False) -> None:
    """Make this process's classifier use the stored rules (cheap unless they changed)."""
    now = time.monotonic()
    url = f"{session.get_bind().url}#{tenant.of(session).key}"  # each county has its own rules
    if not force and _state["url"] == url and now - _state["checked"] < REFRESH_SECONDS:
        return
    with _lock:
        version = tuple(session.execute(select(
            func.count(KeywordRule.id), func.max(KeywordRule.created_at), func.max(KeywordRule.removed_at))).one())
        version = (url, *version)
        if force or version != _state["version"]:
            get_classifier().set_rules([{"keyword": r.keyword, "category": r.category, "weight": r.weight}
                                        for r in active_rules(session)])
            _state["version"] = version
        _state["checked"], _state["url"] = now, url


def forget() -> None:
    """Drop this process's overlay and cached version (tests between databases)."""
    with _lock:
        get_classifier().set_rules([])
        _state.update(checked=0.0, version=None, url=None)
