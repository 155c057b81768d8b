"""一键找代表 codes: one permanent parametric QR code per grid, deputy, station, enterprise (企业码: scanning
it puts the resident in the enterprise's grid) and survey.

WeChat allows at most 100,000 permanent codes (QR_LIMIT_STR_SCENE) per official account and they can
never be deleted, so each scene is created once through `WeChatClient.create_qrcode`, stored, and
reused forever; creation is refused when the stored count comes near the cap. The image is rendered
locally from the ticket's `url` (what WeChat's own image encodes), because showqrcode cannot be fetched
from here.
"""
from __future__ import annotations

import io
import logging
import os

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from liaison.core.errors import CONFLICT, NOT_FOUND, DomainError
from liaison.engagement.models import QrCode, Survey
from liaison.people.models import Deputy, Enterprise, Grid, Station

log = logging.getLogger(__name__)

PERMANENT_CAP = 100_000
# Kept free below the cap for codes made by hand in WeChat's console and for emergencies.
DEFAULT_RESERVE = 1_000
KINDS = {"grid": Grid, "deputy": Deputy, "station": Station, "enterprise": Enterprise, "survey": Survey}


class QrCodeError(DomainError):
    """Refused: `code` not_found (kind not_found) or cap_reached (conflict), message in Chinese."""

    def __init__(self, code: str, message: str):
        super().__init__(message, code=code, kind=NOT_FOUND if code == "not_found" else CONFLICT)


def reserve() -> int:
    """How many permanent codes to keep unused below WeChat's cap (QR_PERMANENT_RESERVE)."""
    return int(os.environ.get("QR_PERMANENT_RESERVE", DEFAULT_RESERVE))


def scene_for(kind: str, code: str) -> str:
    return f"{kind}:{code}"


def usage(session: Session) -> dict[str, int]:
    """Permanent codes used, the cap, and how many may still be created."""
    used = session.scalar(select(func.count()).select_from(QrCode)) or 0
    return {"used": used, "cap": PERMANENT_CAP, "available": max(0, PERMANENT_CAP - reserve() - used)}


def _target(session: Session, kind: str, code: str, lock: bool):
    model = KINDS.get(kind)
    if model is None:
        raise QrCodeError("not_found", "二维码类型无效")
    column = model.public_id if kind == "survey" else model.code
    query = select(model).where(column == code)
    if lock:
        query = query.with_for_update()  # one creator per target: a permanent code is never made twice
    row = session.scalar(query)
    if row is None:
        raise QrCodeError("not_found", {"grid": "网格", "deputy": "代表", "station": "联络站",
                                        "enterprise": "企业", "survey": "评价"}[kind] + "不存在")
    return row


def get_or_create(session: Session, client, kind: str, code: str) -> QrCode:
    """The stored permanent code for `kind:code`, created at WeChat the first time only."""
    scene = scene_for(kind, code)
    existing = session.scalar(select(QrCode).where(QrCode.scene == scene))
    if existing is not None:
        return existing
    _target(session, kind, code, lock=True)
    existing = session.scalar(select(QrCode).where(QrCode.scene == scene))
    if existing is not None:  # created by the request we waited for
        return existing
    if usage(session)["available"] <= 0:
        raise QrCodeError("cap_reached",
                          f"永久二维码已用 {usage(session)['used']} 个，接近微信上限 {PERMANENT_CAP} 个，"
                          "已停止新建，请联系管理员")
    answer = client.create_qrcode(scene, permanent=True)
    row = QrCode(scene=scene, kind=kind, target_code=code, ticket=answer["ticket"],
                 url=answer.get("url") or client.qrcode_image_url(answer["ticket"]))
    session.add(row)
    session.flush()
    log.info("permanent QR code created for %s", scene)
    return row


def qr_png(content: str, scale: int = 10) -> bytes:
    """A PNG of the QR code encoding `content` (rendered locally)."""
    import segno

    buffer = io.BytesIO()
    segno.make(content, error="m", micro=False).save(buffer, kind="png", scale=scale, border=2)
    return buffer.getvalue()


def qr_matrix(content: str) -> list[list[bool]]:
    """The QR modules (True = dark) for drawing it into a PDF or an image."""
    import segno

    return [[bool(v) for v in row] for row in segno.make(content, error="m", micro=False).matrix]
