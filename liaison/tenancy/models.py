"""Counties, the tenants: each has its own registry, staff, settings and (optionally) its own official
account. Every county-owned row points here through `liaison.core.tenant.TenantOwned`."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.types import UTCDateTime


class City(Base):
    """一个市: the counties it groups. Its staff (`Account.city_id`, role `city`) see each county's
    and the whole city's figures, and a county's cases' personal data only where the county's
    settings grant it (`city_personal_data`)."""

    __tablename__ = "cities"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class County(Base):
    """一个县（区）. `settings` overrides the deployment's defaults per county (deadlines, flows,
    points standards, mini-program scope). The WeChat columns are the county's own official account;
    empty means the deployment's (shared city) account, which routes by the scanned grid."""

    __tablename__ = "counties"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    wechat_app_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    wechat_app_secret: Mapped[str | None] = mapped_column(String(128))
    wechat_token: Mapped[str | None] = mapped_column(String(64))
    wechat_encoding_aes_key: Mapped[str | None] = mapped_column(String(43))
    city_id: Mapped[int | None] = mapped_column(ForeignKey("cities.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
