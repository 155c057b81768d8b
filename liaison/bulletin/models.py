"""通报 (bulletins) and 整改 (rectification items). A bulletin stores the figures it published as a
snapshot (`content`): what was told to the units stays what it was, whatever later casework
changes. `Rectification.status` moves only through `liaison.bulletin.lifecycle`."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned
from liaison.core.types import UTCDateTime, new_public_id
from liaison.people.models import Account, Station  # noqa: F401  (relationship targets)


class Bulletin(TenantOwned, Base):
    """一期通报: the figures of one period (a month, a quarter) over the county or one station."""

    __tablename__ = "bulletins"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    period: Mapped[str] = mapped_column(String(16))  # 2026-03 or 2026-Q1
    since: Mapped[date] = mapped_column(Date)
    until: Mapped[date] = mapped_column(Date)  # inclusive, China-time days
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"), index=True)  # None: county
    title: Mapped[str] = mapped_column(String(200))
    threshold: Mapped[float] = mapped_column(Float)
    content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    station: Mapped[Station | None] = relationship()


class Rectification(TenantOwned, Base):
    """整改: a unit whose figure fell under the bulletin's threshold, told to answer by `deadline`.

    `unit_kind` is station, department or deputy and `unit_id` its row; the unit writes what it did
    (`response`), staff check it and close the item (`verified_*`) or send it back."""

    __tablename__ = "bulletin_rectifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    bulletin_id: Mapped[int] = mapped_column(ForeignKey("bulletins.id"), index=True)
    unit_kind: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int] = mapped_column(Integer)
    unit_label: Mapped[str] = mapped_column(String(100))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"), index=True)  # the bulletin's
    figure: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), index=True)
    response: Mapped[str | None] = mapped_column(Text)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    responded_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    review_note: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{at, action, by, note}]
    bulletin: Mapped[Bulletin] = relationship()
