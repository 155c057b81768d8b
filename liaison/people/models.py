"""People and places: stations, grids, deputies, departments, residents and the accounts of those
who work cases (with their binding codes, consents and idempotency keys). Names follow GLOSSARY.md."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.orm.base import NEVER_SET, NO_VALUE

from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned, city_rule
from liaison.core.types import UTCDateTime, new_public_id
from liaison.tenancy.models import County  # noqa: F401  (puts `counties` on metadata before its FKs)

DEPUTY_LEVELS = ("national", "province", "city", "county", "township")
DEPUTY_LEVEL_NAMES = {"national": "全国", "province": "省", "city": "市", "county": "县", "township": "乡"}
GRID_KINDS = {"community": "社区", "enterprise": "企业", "chain": "产业链"}


class Station(TenantOwned, Base):
    """代表联络站 / 代表之家."""

    __tablename__ = "stations"
    __table_args__ = (UniqueConstraint("county_id", "code"),)  # codes are per county
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(200))
    reception_hours: Mapped[str | None] = mapped_column(String(100))
    grids: Mapped[list[Grid]] = relationship(back_populates="station")


class Grid(TenantOwned, Base):
    """网格: the smallest neighbourhood unit. `aliases` lists community names residents write."""

    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("county_id", "code"),)  # codes are per county
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    # 社区 (community) | 企业 (enterprise: registered enterprises are its members) | 产业链 (chain)
    kind: Mapped[str] = mapped_column(String(16), default="community", server_default="community")
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    station: Mapped[Station | None] = relationship(back_populates="grids")
    deputy_links: Mapped[list[DeputyGrid]] = relationship(back_populates="grid")


class Enterprise(TenantOwned, Base):
    """A registered enterprise, a member of an enterprise grid (企业网格), with its contact person.
    A message naming it (or sent after scanning its code) goes to that grid's deputy (企业点单)."""

    __tablename__ = "enterprises"
    __table_args__ = (UniqueConstraint("county_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    contact_name: Mapped[str | None] = mapped_column(String(50))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    grid: Mapped[Grid] = relationship()


class Deputy(TenantOwned, Base):
    """人大代表. `level` is one of DEPUTY_LEVELS."""

    __tablename__ = "deputies"
    __table_args__ = (UniqueConstraint("county_id", "code"),)  # codes are per county
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(50))
    level: Mapped[str] = mapped_column(String(16))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    duties: Mapped[str | None] = mapped_column(String(200))
    reception_hours: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    station: Mapped[Station | None] = relationship()
    grid_links: Mapped[list[DeputyGrid]] = relationship(back_populates="deputy")


class DeputyGrid(TenantOwned, Base):
    """A deputy serves a grid as lead (主) or assisting (协) deputy."""

    __tablename__ = "deputy_grids"
    deputy_id: Mapped[int] = mapped_column(ForeignKey("deputies.id"), primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(8), default="lead")  # lead | assist
    deputy: Mapped[Deputy] = relationship(back_populates="grid_links")
    grid: Mapped[Grid] = relationship(back_populates="deputy_links")


class Department(TenantOwned, Base):
    """职能部门 / 承办单位; `code` matches the classifier's routing table."""

    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("county_id", "code"),)  # codes are per county
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))


class Resident(TenantOwned, Base):
    """群众: one person, known by the official-account and/or mini-program openid (linked by unionid)."""

    __tablename__ = "residents"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    oa_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    mp_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(64), unique=True)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    # The deputy whose own code (一人一码) the resident scanned last: their cases go to that deputy,
    # grid or none. A grid's code scanned later clears it (the grid's lead deputy again).
    deputy_id: Mapped[int | None] = mapped_column(ForeignKey("deputies.id"))
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Customer-service window bookkeeping (WeChat allows messages only after a user action).
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The current customer-service window: "message" (48 h, 5 sends) or "event" (1 min, 3 sends).
    window_kind: Mapped[str | None] = mapped_column(String(8))
    window_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_used: Mapped[int] = mapped_column(Integer, default=0)
    grid: Mapped[Grid | None] = relationship()


class Account(TenantOwned, Base):
    """A deputy, department handler or liaison-office staff member who works cases in the mini-program.

    `deputy_id` is set for deputies, `department_id` for handlers. A staff account with a `station_id`
    is limited to that station's grids (its jurisdiction); without one it sees the whole county.
    """

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(50))
    deputy_id: Mapped[int | None] = mapped_column(ForeignKey("deputies.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    # City staff (role `city`): the city whose counties they see. The row itself lives in one county.
    city_id: Mapped[int | None] = mapped_column(ForeignKey("cities.id"))
    mp_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    bound_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Written into every session token; a token whose number differs is dead. Bumped when the account
    # is bound to another WeChat user, disabled or enabled, or changes role or what it speaks for (below).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    deputy: Mapped[Deputy | None] = relationship()
    department: Mapped[Department | None] = relationship()
    station: Mapped[Station | None] = relationship()


def _end_sessions_on_change(target: Account, value, oldvalue, _initiator):
    """A token was issued for the account as it was: after a new role, deputy, department or station, a
    new WeChat user, or disabling, everyone must log in again, whichever code path made the change."""
    if oldvalue is NO_VALUE or oldvalue is NEVER_SET or value == oldvalue:
        return  # a new row, or nothing changed
    target.session_generation = (target.session_generation or 0) + 1


for _attribute in (Account.role, Account.deputy_id, Account.department_id, Account.station_id,
                   Account.mp_openid, Account.active):
    event.listen(_attribute, "set", _end_sessions_on_change, active_history=True)


class BindingCode(TenantOwned, Base):
    """A one-time code that binds a WeChat identity to an account. Only its hash is stored."""

    __tablename__ = "binding_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdempotencyKey(TenantOwned, Base):
    """The stored answer to a POST sent with an `Idempotency-Key` header, per user (`principal`)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("principal", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    principal: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class NotificationConsent(TenantOwned, Base):
    """Which subscription template a resident or account accepted (wx.requestSubscribeMessage).

    Each one-time acceptance is one message credit; the notification planner spends `credits`.
    """

    __tablename__ = "notification_consents"
    __table_args__ = (UniqueConstraint("resident_id", "template_id"),
                      UniqueConstraint("account_id", "template_id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    template_id: Mapped[str] = mapped_column(String(64))
    last_result: Mapped[str] = mapped_column(String(8))  # accept | reject | ban | filter
    credits: Mapped[int] = mapped_column(Integer, default=0)
    accepted_total: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# What city staff see of the registry (liaison.core.tenant.CITY_RULES): the names of their counties'
# stations, grids, deputies and departments (a handed-up case names them), and their city's own staff.
def _whole_registry(_city_id: int):
    from sqlalchemy import true

    return true()


for _registry_class in (Station, Grid, Deputy, Department, DeputyGrid):
    city_rule(_registry_class)(_whole_registry)


@city_rule(Account)
def _city_accounts(city_id: int):
    return Account.city_id == city_id


@city_rule(IdempotencyKey)
def _city_idempotency_keys(city_id: int):
    """City staff's own stored answers (keyed `account:<id>`)."""
    from sqlalchemy import String, cast, literal, select

    return IdempotencyKey.principal.in_(
        select(literal("account:") + cast(Account.id, String)).where(Account.city_id == city_id).scalar_subquery())
