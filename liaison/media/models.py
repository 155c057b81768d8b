"""Chat media of a case: one row per photo or voice message, from WeChat's media_id to stored bytes."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from liaison.case.models import Case, CaseEvent  # noqa: F401  (foreign key targets)
from liaison.core.clock import utcnow
from liaison.core.db import Base
from liaison.core.tenant import TenantOwned
from liaison.core.types import UTCDateTime, new_public_id
from liaison.people.models import Account, Resident  # noqa: F401  (foreign key targets)

# pending: waiting for the worker; stored: the bytes are in the media storage;
# lost: WeChat no longer has it (expired media_id), recorded on the case timeline too.
PENDING, STORED, LOST = "pending", "stored", "lost"


class MediaFile(TenantOwned, Base):
    """A photo or voice message a resident sent about a case, or a photo a handler uploaded as the
    evidence of their 答复 or 办结 (`account_id` set; `event_id` once attached to that timeline entry)."""

    __tablename__ = "media_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))  # who sent it
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))  # a handler's upload
    event_id: Mapped[int | None] = mapped_column(ForeignKey("case_events.id"))  # the 答复/办结 it shows
    kind: Mapped[str] = mapped_column(String(8))  # image | voice
    wechat_media_id: Mapped[str | None] = mapped_column(String(128))  # chat media only
    format: Mapped[str | None] = mapped_column(String(16))  # voice: amr, speex …
    state: Mapped[str] = mapped_column(String(8), default=PENDING, index=True)
    storage_key: Mapped[str | None] = mapped_column(String(200))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
