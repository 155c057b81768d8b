"""The channel planner: for each notification, the channels WeChat allows right now, best first.

A resident can be reached by
1. a customer-service message while their window is open and has quota left (5 within 48 h of
   their last message; 3 within a minute of a scan, menu tap or follow),
2. an official-account 订阅通知 or a mini-program subscription message for a template they accepted,
3. a template message where one is configured,
otherwise the notification waits in the mini-program and goes out when a window opens.

Windows and quotas are tracked per resident on the `residents` row; consents live in
`liaison.accounts.NotificationConsent`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from liaison.core.clock import utcnow
from liaison.people.models import Account, NotificationConsent, Resident
from liaison.wechat.client import thing_value

CONFIG_FILE = Path(__file__).parent.parent / "data" / "notifications.json"

CUSTOM, OA_SUBSCRIBE, MP_SUBSCRIBE, TEMPLATE = "custom", "oa_subscribe", "mp_subscribe", "template"


@lru_cache(maxsize=1)
def config() -> dict[str, Any]:
    """The notification configuration (liaison/data/notifications.json)."""
    return json.loads(CONFIG_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Plan:
    """One way to deliver: the channel and, for template channels, the template's configuration."""

    channel: str
    template: dict[str, Any] | None = None


def open_window(resident: Resident, kind: str, now: datetime) -> None:
    """A user action opened (or renewed) the customer-service window: "message" or "event".

    A message window (48 h, 5 sends) is never shortened by a later scan or tap inside it.
    """
    if kind == "event" and window_remaining(resident, now) > 0 and resident.window_kind == "message":
        return
    resident.window_kind, resident.window_opened_at, resident.window_used = kind, now, 0


def window_remaining(resident: Resident, now: datetime | None = None) -> int:
    """How many customer-service messages WeChat still accepts for this resident now."""
    now = now or utcnow()
    if resident.window_kind is None or resident.window_opened_at is None:
        return 0
    rules = config()["windows"][resident.window_kind]
    if now - resident.window_opened_at >= timedelta(seconds=rules["seconds"]):
        return 0
    return max(0, rules["quota"] - (resident.window_used or 0))


def take_window_slot(session: Session, resident: Resident, now: datetime | None = None) -> bool:
    """Reserve one customer-service send in the resident's window (atomic across workers).

    The reservation is a compare-and-swap on the window the caller saw. When it misses because the
    resident wrote again meanwhile (a newer message reopened the window, e.g. the spool replay storing
    a later delivery while this worker holds the row), the fresh window is read and tried once more:
    a reopened window has room, and falling back to a template message there would be wrong.
    """
    now = now or utcnow()
    quota = None
    for _ in range(3):
        if window_remaining(resident, now) <= 0:
            return False
        quota = config()["windows"][resident.window_kind]["quota"]
        result = session.execute(
            update(Resident).where(Resident.id == resident.id, Resident.window_used < quota,
                                   Resident.window_opened_at == resident.window_opened_at)
            .values(window_used=Resident.window_used + 1))
        if result.rowcount:
            return True  # the ORM update also refreshed resident.window_used
        opened_at = resident.window_opened_at
        session.refresh(resident, ["window_kind", "window_opened_at", "window_used"])
        if resident.window_opened_at == opened_at:
            return False  # the same window, its quota spent by another sender
    return False


def return_window_slot(session: Session, resident: Resident) -> None:
    """A reserved send that WeChat did not deliver (an error answer) gives its slot back."""
    session.execute(update(Resident).where(Resident.id == resident.id, Resident.window_used > 0)
                    .values(window_used=Resident.window_used - 1))


def close_window(resident: Resident) -> None:
    """WeChat said the window is closed or its quota used (45015/45047): believe it."""
    resident.window_kind, resident.window_opened_at, resident.window_used = None, None, 0


def resident_plans(session: Session, resident: Resident, now: datetime | None = None) -> list[Plan]:
    """The channels to try for a resident, best first (empty: wait in the mini-program)."""
    now = now or utcnow()
    plans: list[Plan] = []
    if resident.oa_openid and resident.subscribed and window_remaining(resident, now) > 0:
        plans.append(Plan(CUSTOM))
    templates = config()["resident_templates"]
    consents = {c.template_id: c for c in session.scalars(select(NotificationConsent).where(
        NotificationConsent.resident_id == resident.id, NotificationConsent.last_result == "accept"))}
    oa = templates.get(OA_SUBSCRIBE)
    if oa and resident.oa_openid and resident.subscribed and _usable(consents.get(oa["template_id"]), oa):
        plans.append(Plan(OA_SUBSCRIBE, oa))
    mp = templates.get(MP_SUBSCRIBE)
    if mp and resident.mp_openid and _usable(consents.get(mp["template_id"]), mp):
        plans.append(Plan(MP_SUBSCRIBE, mp))
    template = templates.get(TEMPLATE)
    if template and template.get("template_id") and resident.oa_openid and resident.subscribed:
        plans.append(Plan(TEMPLATE, template))
    return plans


def account_plans(session: Session, account_id: int) -> list[Plan]:
    """Channels for a deputy, department handler or staff account (the mini-program is always there)."""
    account = session.get(Account, account_id)
    template = config()["account_templates"].get(MP_SUBSCRIBE)
    if account is None or not account.mp_openid or not template:
        return []
    consent = session.scalar(select(NotificationConsent).where(
        NotificationConsent.account_id == account_id,
        NotificationConsent.template_id == template["template_id"],
        NotificationConsent.last_result == "accept"))
    return [Plan(MP_SUBSCRIBE, template)] if _usable(consent, template) else []


def _usable(consent, template: dict[str, Any]) -> bool:
    if consent is None:
        return False
    return bool(template.get("long_term")) or consent.credits > 0


def spend_credit(session: Session, plan: Plan, *, resident_id: int | None = None,
                 account_id: int | None = None) -> None:
    """A one-time subscription was used: one credit less (long-term ones cost nothing)."""
    if plan.template is None or plan.template.get("long_term"):
        return
    owner = (NotificationConsent.resident_id == resident_id if resident_id is not None
             else NotificationConsent.account_id == account_id)
    session.execute(update(NotificationConsent).where(
        owner, NotificationConsent.template_id == plan.template["template_id"],
        NotificationConsent.credits > 0).values(credits=NotificationConsent.credits - 1))


def drop_consent(session: Session, plan: Plan, *, resident_id: int | None = None,
                 account_id: int | None = None) -> None:
    """WeChat answered 43101 (not subscribed / refused): stop trying that template."""
    owner = (NotificationConsent.resident_id == resident_id if resident_id is not None
             else NotificationConsent.account_id == account_id)
    session.execute(update(NotificationConsent).where(
        owner, NotificationConsent.template_id == plan.template["template_id"])
        .values(credits=0, last_result="reject"))


def template_data(plan: Plan, values: dict[str, str]) -> dict[str, str]:
    """Fill the template's fields; `thing` fields are cut to WeChat's 20 characters, no line breaks."""
    data = {}
    for field, pattern in plan.template["fields"].items():
        value = pattern.format(**values)
        limit = 32 if field.startswith("character_string") else 20
        data[field] = thing_value(value, limit)
    return data
