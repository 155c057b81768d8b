"""Chat media kept: recorded when a photo or voice arrives, fetched from WeChat by a worker soon after
(WeChat's temporary media live 3 days), stored through `liaison.media.storage`, shown to handlers
through short-lived signed URLs under the case's access rule.

A media id WeChat no longer has (40007) is recorded as lost, on the row and on the case timeline,
never dropped silently. Transient failures leave the row pending for the sweep to try again.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.case import access
from liaison.case import service as cases
from liaison.case.models import Case
from liaison.core.clock import utcnow
from liaison.core.types import Actor
from liaison.media.models import LOST, PENDING, STORED, MediaFile
from liaison.people.models import Account, Resident
from liaison.people.service import RESIDENT, Principal
from liaison.wechat.client import MEDIA_INVALID
from liaison.wechat.errors import WeChatAPIError

log = logging.getLogger(__name__)

FRESH_KEY = "media_fresh"  # session.info: ids of the media rows this transaction recorded
KINDS = ("image", "voice")
MAX_ATTEMPTS = 8  # transient failures; then the row is lost too (WeChat's 3 days will be over soon)
RETRY_AFTER = timedelta(seconds=30)
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
              "audio/amr": "amr", "audio/silk": "silk", "audio/mpeg": "mp3"}
LOST_REASON = {"image": "群众发送的图片在微信已过期（微信只保留3天），未能保存",
               "voice": "群众发送的语音在微信已过期（微信只保留3天），未能保存"}


def record(session: Session, case: Case, resident: Resident | None, kind: str, wechat_media_id: str,
           fmt: str | None = None) -> MediaFile:
    """A photo or voice of `case` arrived: keep its media id and queue the fetch after the commit."""
    if kind not in KINDS:
        raise ValueError(f"unknown media kind {kind}")
    row = MediaFile(case_id=case.id, resident_id=resident.id if resident else None, kind=kind,
                    wechat_media_id=wechat_media_id[:128], format=(fmt or None) and fmt[:16],
                    state=PENDING, attempts=0, received_at=utcnow())
    session.add(row)
    session.flush()
    session.info.setdefault(FRESH_KEY, []).append(row.id)
    return row


def fresh_ids(session: Session) -> list[int]:
    """The media rows this session's committed transaction recorded (the queue's after-commit hook)."""
    return session.info.pop(FRESH_KEY, [])


def due(session: Session, now=None) -> list[tuple[int, int]]:
    """(id, attempts) of the pending rows whose fetch should be (re)tried now."""
    cutoff = (now or utcnow()) - RETRY_AFTER
    return [(r.id, r.attempts) for r in session.scalars(
        select(MediaFile).where(MediaFile.state == PENDING, MediaFile.received_at <= cutoff)
        .order_by(MediaFile.id).limit(500))]


def fetch(session: Session, media_file_id: int, wechat, storage) -> str:
    """Fetch one pending media file from WeChat and store it; returns its state afterwards."""
    row = session.scalar(select(MediaFile).where(MediaFile.id == media_file_id)
                         .with_for_update(skip_locked=True))
    if row is None:
        return "busy"  # another worker holds it (or it is gone)
    if row.state != PENDING:
        return row.state
    row.attempts += 1
    try:
        data, content_type = wechat.get_media(row.wechat_media_id)
    except WeChatAPIError as error:
        if error.errcode == MEDIA_INVALID or row.attempts >= MAX_ATTEMPTS:
            _lost(session, row, f"errcode {error.errcode}" if error.errcode else type(error).__name__)
            return row.state
        row.last_error = f"{type(error).__name__}: errcode {error.errcode}"[:500]
        log.warning("media %s not fetched yet (%s); will retry", row.public_id, row.last_error)
        return row.state
    key = f"{row.county_id}/{row.case_id}/{row.public_id}.{EXTENSIONS.get(content_type, 'bin')}"
    storage.put(key, data, content_type)
    row.storage_key, row.content_type, row.size = key, content_type, len(data)
    row.state, row.stored_at, row.last_error = STORED, utcnow(), None
    return row.state


def _lost(session: Session, row: MediaFile, why: str) -> None:
    row.state, row.last_error = LOST, why[:500]
    case = session.get(Case, row.case_id)
    cases.record_event(session, case, Actor.system(), "media_lost", kind=row.kind, media=row.public_id,
                       reason=LOST_REASON[row.kind])
    log.warning("media %s of case %s lost: %s", row.public_id, case.number, why)


# --- who sees what -------------------------------------------------------------------------------
def visible_to(scope: access.Scope, case: Case, row: MediaFile) -> bool:
    """The case's rule: whoever sees the case sees its media, except that a resident following (并单)
    someone else's case never sees what another resident sent."""
    if scope.principal.role == RESIDENT:
        return row.resident_id == scope.principal.resident.id
    return True


def of_case(session: Session, scope: access.Scope, public_id: str) -> tuple[Case, list[MediaFile]]:
    """The case (NotFound outside the caller's scope) and the media of it the caller may see."""
    case = access.get_case(session, scope, public_id)
    rows = session.scalars(select(MediaFile).where(MediaFile.case_id == case.id).order_by(MediaFile.id))
    return case, [row for row in rows if visible_to(scope, case, row)]


def url_for(row: MediaFile, principal: Principal, storage) -> str | None:
    """A short-lived signed URL of a stored media file for this caller (None until it is stored)."""
    if row.state != STORED:
        return None
    return storage.url(row.storage_key, media_public_id=row.public_id, viewer=principal.ref,
                       content_type=row.content_type)


def principal_of_ref(session: Session, ref: str) -> Principal | None:
    """The principal a signed URL was issued to (`resident:<id>` / `account:<id>`), if still active."""
    kind, _, raw_id = ref.partition(":")
    if not raw_id.isdigit():
        return None
    if kind == "resident":
        resident = session.get(Resident, int(raw_id))
        return Principal(RESIDENT, resident=resident) if resident is not None else None
    if kind == "account":
        account = session.get(Account, int(raw_id))
        if account is None or not account.active:
            return None
        return Principal(account.role, account=account)
    return None


def open_signed(session: Session, media_public_id: str, viewer: str, storage) -> tuple[bytes, str] | None:
    """The bytes behind a valid local signed URL, if the viewer may still see the case (else None)."""
    row = session.scalar(select(MediaFile).where(MediaFile.public_id == media_public_id))
    principal = principal_of_ref(session, viewer)
    if row is None or principal is None or row.state != STORED:
        return None
    owner = principal.resident if principal.resident is not None else principal.account
    if owner.county_id != row.county_id:  # a URL issued in one county never opens another's file
        return None
    scope = access.scope_of(session, principal)
    case = session.get(Case, row.case_id)
    try:
        access.get_case(session, scope, case.public_id)
    except cases.NotFound:
        return None
    if not visible_to(scope, case, row):
        return None
    return storage.get(row.storage_key), row.content_type or "application/octet-stream"


def county_of(session: Session, media_public_id: str) -> int | None:
    """The county owning a media file (read across counties: a signed URL names no county)."""
    return session.scalar(select(MediaFile.county_id).where(MediaFile.public_id == media_public_id))
