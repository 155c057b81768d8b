"""Photos and voice of a case (`liaison.media`): the list with short-lived signed URLs, a handler's
upload of a photo of their work (attached to their next 答复 or 办结), and the local backend's signed
file URLs (`/media/<token>`, outside `/api`: an <image> tag sends no bearer
token, the signature names who the URL was issued to and the case's access rule is checked again)."""
from __future__ import annotations

import base64
import binascii
from datetime import datetime

from flask import Blueprint, Response, abort, current_app
from pydantic import Field

from liaison.case import access
from liaison.core import db, tenant
from liaison.media import service as media
from liaison.media import storage as media_storage
from liaison.media.models import LOST

from . import schemas as s
from .framework import ALL_ROLES, ApiError, Context, endpoint

files_bp = Blueprint("media_files", __name__)


class MediaItem(s.Out):
    id: str
    kind: str = Field(description="image：图片；voice：语音")
    state: str = Field(description="pending：正在从微信取回；stored：已保存；lost：微信已过期，未能保存")
    received_at: datetime
    stored_at: datetime | None
    content_type: str | None
    size: int | None
    url: str | None = Field(description="短时有效的查看地址（仅已保存时）")
    url_expires_in: int | None = Field(description="查看地址的有效秒数")
    lost_reason: str | None
    source: str = Field(description="resident：群众在聊天中发送；handler：办理人上传的办理照片")
    attached: bool = Field(description="办理照片已附在答复或办结上（群众和附议群众可见）")


class MediaListOut(s.Out):
    items: list[MediaItem]


class AttachmentIn(s.Request):
    data: str = Field(min_length=1, max_length=12 * 1024 * 1024,
                      description="图片内容的 base64（JPEG、PNG 或 WebP；不超过 MEDIA_UPLOAD_MAX_BYTES，默认 5 MB）")


class AttachmentOut(s.Out):
    id: str = Field(description="附件 id：答复或办结时放入 attachments")
    content_type: str
    size: int
    url: str | None = Field(description="短时有效的查看地址")
    url_expires_in: int


def _sees_case(ctx: Context, public_id: str) -> None:
    access.get_case(ctx.session, access.scope_of(ctx.session, ctx.principal), public_id)


@endpoint("GET", "/cases/<public_id>/media", summary="诉求的图片和语音（短时有效的查看地址；并单群众只见自己发送的）",
          roles=ALL_ROLES, response=MediaListOut, tag="cases")
def case_media(ctx: Context, public_id: str):
    scope = access.scope_of(ctx.session, ctx.principal)
    _case, rows = media.of_case(ctx.session, scope, public_id)
    store = media_storage.current()
    ttl = current_app.config["SETTINGS"].media_url_ttl_seconds
    items = []
    for row in rows:
        url = media.url_for(row, ctx.principal, store)
        items.append(MediaItem(
            id=row.public_id, kind=row.kind, state=row.state, received_at=row.received_at,
            stored_at=row.stored_at, content_type=row.content_type, size=row.size, url=url,
            url_expires_in=ttl if url else None,
            lost_reason=media.LOST_REASON[row.kind] if row.state == LOST else None,
            source="handler" if row.account_id is not None else "resident", attached=row.event_id is not None))
    return MediaListOut(items=items)


@endpoint("POST", "/cases/<public_id>/attachments", summary="办理人上传办理照片（之后在答复或办结时附上）",
          roles=("deputy", "department"), body=AttachmentIn, response=AttachmentOut, status=201,
          visible=_sees_case, tag="handling")
def upload_attachment(ctx: Context, public_id: str):
    scope = access.scope_of(ctx.session, ctx.principal)
    case = access.get_case(ctx.session, scope, public_id, lock=True)
    try:
        data = base64.b64decode(ctx.body.data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_base64", "图片内容不是有效的 base64", "data") from None
    store = media_storage.current()
    row = media.upload(ctx.session, scope, case, data, store, ctx.settings.media_upload_max_bytes)
    return AttachmentOut(id=row.public_id, content_type=row.content_type, size=row.size,
                         url=media.url_for(row, ctx.principal, store),
                         url_expires_in=ctx.settings.media_url_ttl_seconds)


@files_bp.get(media_storage.LOCAL_URL_PREFIX + "<token>")
def media_file(token: str):
    """A local backend's signed URL: 404 when forged, expired, or the viewer no longer sees the case."""
    signed = media_storage.verify(current_app.config["SETTINGS"].secret_key, token)
    if signed is None:
        abort(404)
    media_public_id, viewer = signed
    with tenant.use(tenant.all_counties("find the county of a signed media URL")), \
            db.session_scope() as session:
        county_id = media.county_of(session, media_public_id)
    if county_id is None:
        abort(404)
    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        found = media.open_signed(session, media_public_id, viewer, media_storage.current())
    if found is None:
        abort(404)
    data, content_type = found
    return Response(data, mimetype=content_type,
                    headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"})
