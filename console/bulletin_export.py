"""A 通报 as an XLSX workbook and as a PDF (reportlab, the built-in STSong-Light CID font for Chinese),
both from the bulletin's stored snapshot: what was published is what is downloaded."""
from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from liaison.bulletin import service as bulletins
from liaison.bulletin.models import Bulletin
from liaison.console import service as figures

PDF_MIME = "application/pdf"
FONT = "STSong-Light"
COLUMNS = [("received", "受理量"), ("closed_rate", "办结率"), ("on_time_rate", "按期办结率"),
           ("satisfaction_rate", "满意率"), ("unrated", "未评价"), ("overdue", "超期未办结")]


def _value(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if figures.FIGURES[name].kind == "rate":
        return f"{value * 100:.1f}%"
    return str(value)


def summary_line(bulletin: Bulletin) -> str:
    total = bulletin.content.get("total", {})
    return "；".join(f"{label} {_value(name, total.get(name))}" for name, label in COLUMNS)


def tables(bulletin: Bulletin) -> list[tuple[str, list[list[str]]]]:
    """The bulletin's sections as (heading, rows with a header row), shared by the page's exports."""
    content = bulletin.content
    sections: list[tuple[str, list[list[str]]]] = []
    for dimension, label in bulletins.DIMENSIONS.items():
        rows = [[label] + [c for _n, c in COLUMNS]]
        for group in content.get("groups", {}).get(dimension, []):
            rows.append([group["label"]] + [_value(n, group["figures"].get(n)) for n, _c in COLUMNS])
        sections.append((f"按{label}", rows))
    ranking = [["名次", "单位", "满意率"]]
    for dimension, label in bulletins.DIMENSIONS.items():
        for place, entry in enumerate(content.get("ranking", {}).get(dimension, []), start=1):
            ranking.append([f"{label}第{place}名", entry["label"], _value("satisfaction_rate", entry["value"])])
    sections.append(("满意率排名", ranking))
    below = [["类别", "单位", "指标", "数值"]]
    for entry in content.get("below", []):
        below.append([bulletins.DIMENSIONS[entry["dimension"]], entry["label"],
                      figures.FIGURES[entry["figure"]].label, _value(entry["figure"], entry["value"])])
    sections.append((f"低于 {bulletin.threshold * 100:.0f}% 的单位（列入整改）", below))
    overdue = [["编号", "内容", "网格", "承办", "期限"]]
    for entry in content.get("overdue", []):
        overdue.append([entry["number"], entry["text"], entry["grid"], entry["handler"], entry["deadline"]])
    sections.append((f"超期未办结诉求（共 {content.get('overdue_total', 0)} 件）", overdue))
    return sections


def workbook(bulletin: Bulletin) -> bytes:
    book = Workbook()
    first = book.active
    first.title = "总体"
    first.append([bulletin.title])
    first.append([f"统计期间：{bulletin.since.isoformat()} 至 {bulletin.until.isoformat()}"])
    first.append([c for _n, c in COLUMNS])
    total = bulletin.content.get("total", {})
    first.append([_value(n, total.get(n)) for n, _c in COLUMNS])
    for heading, rows in tables(bulletin):
        sheet = book.create_sheet(heading[:28].replace("%", "").replace("（", "").replace("）", ""))
        sheet.append([heading])
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def pdf(bulletin: Bulletin) -> bytes:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    title = ParagraphStyle("title", fontName=FONT, fontSize=16, leading=22, alignment=1)
    heading = ParagraphStyle("heading", fontName=FONT, fontSize=12, leading=18, spaceBefore=8)
    body = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=13)
    out = io.BytesIO()
    document = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                                 topMargin=15 * mm, bottomMargin=15 * mm, title=bulletin.title)
    story: list[Any] = [Paragraph(bulletin.title, title), Spacer(1, 4 * mm),
                        Paragraph(f"统计期间：{bulletin.since.isoformat()} 至 {bulletin.until.isoformat()}", body),
                        Paragraph(f"总体情况：{summary_line(bulletin)}", body)]
    for name, text in tables(bulletin):
        story.append(Paragraph(name, heading))
        if len(text) == 1:
            story.append(Paragraph("无", body))
            continue
        cells = [[Paragraph(str(cell), body) for cell in row] for row in text]
        table = Table(cells, repeatRows=1)
        table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                                   ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
                                   ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        story.append(table)
    document.build(story)
    return out.getvalue()
