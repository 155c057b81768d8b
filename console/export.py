"""The 台账 as an XLSX workbook in the office's ledger layout, written in openpyxl's write-only
mode (rows go to disk as they come, memory stays flat) and streamed to the browser in chunks."""
from __future__ import annotations

import tempfile
from typing import Any, Iterable, Iterator

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from liaison.core.workcalendar import CHINA_TZ

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COLUMNS = ["序号", "编号", "来源", "诉求人", "内容", "类别", "网格", "代表", "承办单位", "受理时间", "期限",
           "办结时间", "是否按期", "评价", "轮次"]
WIDTHS = [6, 14, 8, 14, 60, 12, 20, 10, 22, 17, 12, 17, 9, 10, 6]
CHUNK = 64 * 1024


def _time(moment) -> str:
    return moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M") if moment else ""


def _day(moment) -> str:
    return moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d") if moment else ""


def ledger_row(index: int, row: dict[str, Any]) -> list[Any]:
    """One ledger row in the column order of COLUMNS."""
    on_time = {True: "是", False: "否", None: ""}[row["on_time"]]
    return [index, row["number"], row["channel"], row["resident"], row["text"], row["category"],
            row["grid"], row["deputy"], row["handler"], _time(row["accepted_at"]), _day(row["deadline"]),
            _time(row["closed_at"]), on_time, row["rating"] if row["rating"] != "—" else "", row["round"]]


def ledger_workbook(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """The workbook's bytes, chunk by chunk: exactly the given rows, numbered from 1."""
    numbered = (ledger_row(index, row) for index, row in enumerate(rows, start=1))
    yield from workbook_chunks([("诉求台账", COLUMNS, numbered)], widths=WIDTHS)


def workbook_chunks(sheets: Iterable[tuple[str, list[str], Iterable[list[Any]]]],
                    widths: list[int] | None = None) -> Iterator[bytes]:
    """A write-only workbook of (title, header, rows) sheets, each with a frozen header row, as bytes
    chunk by chunk (rows go to a temporary file as they come; memory stays flat)."""
    workbook = Workbook(write_only=True)
    for title, header, rows in sheets:
        sheet = workbook.create_sheet(title[:31])
        for position, width in enumerate(widths or [max(8, len(str(h)) * 2 + 2) for h in header]):
            sheet.column_dimensions[get_column_letter(position + 1)].width = width
        sheet.freeze_panes = "A2"
        sheet.append(header)
        for row in rows:
            sheet.append(row)
    with tempfile.TemporaryFile() as spool:
        workbook.save(spool)
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield chunk


def stream_workbook(sheet_title: str, columns: Iterable[Any], rows: Iterable[Iterable[Any]], *,
                    widths: Iterable[int] = (), title: str | None = None) -> Iterator[bytes]:
    """One 台账 sheet in the office's layout, streamed in chunks: an optional title row, the header
    row (frozen with it), then `rows` as they come (each already in the column order; figures below)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_title[:31])
    for position, width in enumerate(widths):
        sheet.column_dimensions[get_column_letter(position + 1)].width = width
    sheet.freeze_panes = "A3" if title else "A2"
    if title:
        sheet.append([title])
    sheet.append(list(columns))
    for row in rows:
        sheet.append(list(row))
    with tempfile.TemporaryFile() as spool:
        workbook.save(spool)
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield chunk
