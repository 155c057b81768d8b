"""Chat media kept: recorded when a photo or voice arrives, fetched from WeChat by a worker soon after
(WeChat's temporary media live 3 days), stored through `liaison.media.storage`, shown to handlers
through short-lived signed URLs under the case's access rule.

A media id WeChat no longer has (40007) is recorded as lost, on the row and on the case timeline,
never dropped silently. Transient failures leave the row pending for the sweep to try again.

Handlers (the deputy or department handling the case) upload photos of their work (`upload`: JPEG,
PNG or WebP, told apart by their first bytes) and attach their own unattached uploads of that case to
their 答复 or 办结 (`reply`, `close`). Attached, they are public like the reply itself: the resident and
the case's followers see them; a follower still never sees what another resident sent.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.case import access
from liaison.case import service as cases
from liaison.case.models import Case, CaseEvent
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, INVALID, TOO_LARGE, UNSUPPORTED, Refusal
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


# --- handlers' photos of their work ----------------------------------------------------------------
MAX_ATTACHMENTS = 9
# What the first bytes of an upload must be (the client's word for its type is not taken).
IMAGE_SIGNATURES = (("image/jpeg", lambda b: b.startswith(b"\xff\xd8\xff")),
                    ("image/png", lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
                    ("image/webp", lambda b: len(b) >= 12 and b[:4] == b"RIFF" and b[8:12] == b"WEBP"))


def sniff_image(data: bytes) -> str | None:
    """The image type of `data` by its magic bytes (JPEG, PNG, WebP), else None."""
    return next((kind for kind, matches in IMAGE_SIGNATURES if matches(data)), None)


def upload(session: Session, scope: access.Scope, case: Case, data: bytes, storage, max_bytes: int) -> MediaFile:
    """A handler's photo of their work on `case`, stored now, attachable to their next 答复 or 办结.

    Refused before anything is stored: a caller who may not reply to or close the case (403), a
    case no longer open for either (409), an empty or oversized photo (422/413), a type other than
    JPEG/PNG/WebP (415)."""
    access.check(scope, "reply", case)
    if not ({"reply", "close"} & set(access.allowed_actions(scope, case))):
        raise Refusal(CONFLICT, "case_not_open", "该诉求当前不能答复或办结，不能上传办理照片")
    if not data:
        raise Refusal(INVALID, "empty_upload", "图片内容为空", "data")
    if len(data) > max_bytes:
        raise Refusal(TOO_LARGE, "upload_too_large", f"图片不能超过 {max_bytes // 1024} KB", "data")
    content_type = sniff_image(data)
    if content_type is None:
        raise Refusal(UNSUPPORTED, "unsupported_media_type", "只能上传 JPEG、PNG 或 WebP 图片", "data")
    row = MediaFile(case_id=case.id, account_id=scope.principal.account.id, kind="image", state=STORED,
                    attempts=0, received_at=utcnow(), content_type=content_type, size=len(data))
    session.add(row)
    session.flush()
    key = f"{row.county_id}/{case.id}/{row.public_id}.{EXTENSIONS[content_type]}"
    storage.put(key, data, content_type)
    row.storage_key, row.stored_at = key, utcnow()
    return row


def _claim(session: Session, case: Case, principal: Principal, ids: list[str]) -> list[MediaFile]:
    """The caller's own unattached uploads of this case named by `ids`, locked; any other id → 422."""
    wanted = list(dict.fromkeys(ids))
    if len(wanted) > MAX_ATTACHMENTS:
        raise Refusal(INVALID, "too_many_attachments", f"最多附 {MAX_ATTACHMENTS} 张照片", "attachments")
    if not wanted:
        return []
    rows = list(session.scalars(select(MediaFile).where(
        MediaFile.public_id.in_(wanted), MediaFile.case_id == case.id,
        MediaFile.account_id == principal.account.id, MediaFile.event_id.is_(None),
        MediaFile.state == STORED).with_for_update()))
    if len(rows) != len(wanted):
        raise Refusal(INVALID, "unknown_attachment",
                      "附件不存在，或不是您为本诉求上传的、尚未使用的照片", "attachments")
    order = {public_id: n for n, public_id in enumerate(wanted)}
    return sorted(rows, key=lambda r: order[r.public_id])


def _attach(rows: list[MediaFile], entry: CaseEvent) -> None:
    for row in rows:
        row.event_id = entry.id


def reply(session: Session, case: Case, principal: Principal, text: str, attachment_ids: list[str]) -> CaseEvent:
    """答复 with the handler's own photos attached (`cases.reply` tells the resident they are there)."""
    rows = _claim(session, case, principal, attachment_ids)
    entry = cases.reply(session, case, principal.actor(), text, attachments=[r.public_id for r in rows])
    _attach(rows, entry)
    return entry


def close(session: Session, case: Case, principal: Principal, summary: str, attachment_ids: list[str]) -> CaseEvent:
    """办结 with the handler's own photos attached (the rating prompt says they are there)."""
    rows = _claim(session, case, principal, attachment_ids)
    entry = cases.close(session, case, principal.actor(), summary, attachments=[r.public_id for r in rows])
    _attach(rows, entry)
    return entry


# --- who sees what -------------------------------------------------------------------------------
def visible_to(scope: access.Scope, case: Case, row: MediaFile) -> bool:
    """The case's rule: whoever sees the case sees its media, except that a resident sees only what
    they sent themselves and the handlers' photos attached to a 答复 or 办结 (a follower never sees
    what another resident sent), and a handler's photo not yet attached is its uploader's alone."""
    handlers_photo = row.account_id is not None
    if scope.principal.role == RESIDENT:
        if handlers_photo:
            return row.event_id is not None
        return row.resident_id == scope.principal.resident.id
    if handlers_photo and row.event_id is None:
        return scope.principal.account is not None and scope.principal.account.id == row.account_id
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
