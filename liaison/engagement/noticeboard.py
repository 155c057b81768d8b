"""公示牌: the printable notice board with a deputy's card and their 一键找代表 code, as PDF and PNG.

PDF: reportlab with its built-in CID font STSong-Light (Chinese without shipping a font file).
PNG: Pillow with a CJK TrueType font from the system (Debian `fonts-wqy-microhei`, installed by
scripts/_env.sh; NOTICEBOARD_FONT overrides the path).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, DomainError
from liaison.core.workcalendar import CHINA_TZ
from liaison.engagement import qrcodes
from liaison.people.models import DEPUTY_LEVEL_NAMES, Deputy
from liaison.rota.models import DutyShift

DUTY_DAYS, DUTY_SHIFTS = 14, 3  # the board shows the station's next shifts within two weeks
WEEKDAYS = "一二三四五六日"

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)


class NoticeBoardError(DomainError):
    """The board cannot be rendered (e.g. no CJK font for PNG); message in Chinese."""

    kind = CONFLICT
    code = "render_unavailable"


@dataclass(frozen=True)
class Card:
    """What the board shows."""

    name: str
    level_label: str
    duties: str | None
    reception_hours: str | None
    grids: list[str]
    station: str | None
    qr_content: str
    duty: tuple[str, ...] = ()  # the station's coming duty shifts: when, what, who


    def lines(self) -> list[tuple[str, str]]:
        rows = [("层级", self.level_label)]
        if self.duties:
            rows.append(("职务", self.duties))
        if self.reception_hours:
            rows.append(("接待时间", self.reception_hours))
        if self.grids:
            rows.append(("联系网格", "、".join(self.grids)))
        if self.station:
            rows.append(("联络站", self.station))
        rows += [("近期值班", shift) for shift in self.duty]
        return rows


def coming_duty(session: Session, station_id: int | None, now: datetime | None = None) -> tuple[str, ...]:
    """The station's next planned duty shifts, one line each: day, hours, title and who is on duty."""
    if station_id is None:
        return ()
    now = now or utcnow()
    today = now.astimezone(CHINA_TZ).date()
    shifts = session.scalars(select(DutyShift).where(
        DutyShift.station_id == station_id, DutyShift.status == "planned", DutyShift.ends_at >= now,
        DutyShift.day <= today + timedelta(days=DUTY_DAYS)).order_by(DutyShift.starts_at, DutyShift.id)
        .limit(DUTY_SHIFTS)).all()
    lines = []
    for shift in shifts:
        start, end = shift.starts_at.astimezone(CHINA_TZ), shift.ends_at.astimezone(CHINA_TZ)
        names = "、".join(a.deputy.name if a.deputy is not None else a.account.name for a in shift.assignments
                         if a.status in ("on_duty", "checked_in")) or "待定"
        lines.append(f"{shift.day.month}月{shift.day.day}日（周{WEEKDAYS[shift.day.weekday()]}）"
                     f"{start:%H:%M}-{end:%H:%M} {shift.title}：{names}")
    return tuple(lines)


def card_for(session: Session, client, deputy: Deputy, now: datetime | None = None) -> Card:
    """The deputy's card with their permanent code (created at WeChat the first time) and their
    station's coming duty shifts."""
    code = qrcodes.get_or_create(session, client, "deputy", deputy.code)
    links = sorted(deputy.grid_links, key=lambda link: (link.role != "lead", link.grid.code))
    grids = [f"{link.grid.name}（{'主' if link.role == 'lead' else '协'}）" for link in links]
    return Card(name=deputy.name, level_label=f"{DEPUTY_LEVEL_NAMES.get(deputy.level, '')}人大代表",
                duties=deputy.duties, reception_hours=deputy.reception_hours, grids=grids,
                station=deputy.station.name if deputy.station else None, qr_content=code.url,
                duty=coming_duty(session, deputy.station_id, now))


TITLE = "人大代表公示牌"
FOOTER = "微信扫一扫 · 一键找代表"
HINT = "有困难、有建议，扫码直接发给代表"


def render_pdf(card: Card) -> bytes:
    """An A4 notice board."""
    from reportlab.lib.colors import HexColor, black, white
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    width, height = A4
    c = canvas.Canvas(buffer, pagesize=A4)
    c.setTitle(f"{TITLE} {card.name}")
    red = HexColor("#B22222")
    c.setFillColor(red)
    c.rect(0, height - 40 * mm, width, 40 * mm, stroke=0, fill=1)
    c.setFillColor(white)
    c.setFont("STSong-Light", 30)
    c.drawCentredString(width / 2, height - 25 * mm, TITLE)
    c.setFillColor(black)
    c.setFont("STSong-Light", 28)
    c.drawString(20 * mm, height - 60 * mm, card.name)
    y = height - 75 * mm
    for label, value in card.lines():
        c.setFont("STSong-Light", 14)
        for i, chunk in enumerate(_wrap(value, 26)):
            c.drawString(20 * mm, y, f"{label}：{chunk}" if i == 0 else f"　　　　　{chunk}")
            y -= 9 * mm
    size = 80 * mm
    _draw_qr_pdf(c, card.qr_content, (width - size) / 2, 40 * mm, size)
    c.setFont("STSong-Light", 16)
    c.drawCentredString(width / 2, 30 * mm, FOOTER)
    c.setFont("STSong-Light", 12)
    c.drawCentredString(width / 2, 22 * mm, HINT)
    c.showPage()
    c.save()
    return buffer.getvalue()


def _draw_qr_pdf(c, content: str, x: float, y: float, size: float) -> None:
    matrix = qrcodes.qr_matrix(content)
    n = len(matrix)
    cell = size / (n + 4)
    c.setFillColorRGB(0, 0, 0)
    for row_index, row in enumerate(matrix):
        for col_index, dark in enumerate(row):
            if dark:
                c.rect(x + (col_index + 2) * cell, y + size - (row_index + 3) * cell, cell, cell,
                       stroke=0, fill=1)


def _wrap(text: str, width: int) -> list[str]:
    return [text[i:i + width] for i in range(0, len(text), width)] or [""]


def font_path() -> str | None:
    """The CJK font used for PNG boards (NOTICEBOARD_FONT or a Debian font package)."""
    configured = os.environ.get("NOTICEBOARD_FONT")
    for path in ([configured] if configured else []) + list(FONT_CANDIDATES):
        if path and os.path.exists(path):
            return path
    return None


def render_png(card: Card, width: int = 1240) -> bytes:
    """The same board as a PNG (1240 × 1754 px: A4 at 150 dpi)."""
    from PIL import Image, ImageDraw, ImageFont

    path = font_path()
    if path is None:
        raise NoticeBoardError("服务器缺少中文字体，无法生成图片版公示牌（请安装 fonts-wqy-microhei）")
    height = round(width * 297 / 210)
    scale = width / 210  # px per mm
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def font(size_pt: float):
        return ImageFont.truetype(path, int(size_pt * scale * 0.3528))

    draw.rectangle([0, 0, width, int(40 * scale)], fill="#B22222")
    draw.text((width / 2, 20 * scale), TITLE, font=font(30), fill="white", anchor="mm")
    draw.text((20 * scale, 55 * scale), card.name, font=font(28), fill="black", anchor="ls")
    y = 72 * scale
    for label, value in card.lines():
        for i, chunk in enumerate(_wrap(value, 26)):
            text = f"{label}：{chunk}" if i == 0 else f"　　　　　{chunk}"
            draw.text((20 * scale, y), text, font=font(14), fill="black", anchor="ls")
            y += 9 * scale
    qr = Image.open(io.BytesIO(qrcodes.qr_png(card.qr_content, scale=10))).convert("RGB")
    size = int(80 * scale)
    qr = qr.resize((size, size), Image.NEAREST)
    image.paste(qr, ((width - size) // 2, int(height - 40 * scale - size)))
    draw.text((width / 2, height - 28 * scale), FOOTER, font=font(16), fill="black", anchor="ms")
    draw.text((width / 2, height - 20 * scale), HINT, font=font(12), fill="black", anchor="ms")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
