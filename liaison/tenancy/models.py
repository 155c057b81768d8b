"""Counties, the tenants: each has its own registry, staff, settings and (optionally) its own official
account. Every county-owned row points here through `liaison.core.tenant.TenantOwned`."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.types import UTCDateTime


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
