"""The registry: stations, grids, deputies (with their 主/协 grid links) and departments.

Create/update services for the staff API, and spreadsheet import/export (XLSX and CSV) with the Chinese
column headers liaison offices use (templates in `SHEETS`, documented in README.md). An import is an
upsert by code and all-or-nothing: a file with any bad row is rejected whole, listing every bad row and
why, and nothing is written.

Flask-free; every change ends with `directory.invalidate()` so routing sees it at once.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from liaison.core.errors import CONFLICT, INVALID, TOO_LARGE, DomainError, Refusal
from liaison.people import directory
from liaison.people.models import (
    DEPUTY_LEVEL_NAMES,
    DEPUTY_LEVELS,
    GRID_KINDS,
    Department,
    Deputy,
    DeputyGrid,
    Enterprise,
    Grid,
    Station,
)
from liaison.people.service import station_deputy_ids

CODE_RE = re.compile(r"^[A-Za-z0-9_\-]{1,32}$")
LEVEL_BY_NAME = {name: level for level, name in DEPUTY_LEVEL_NAMES.items()}
KIND_BY_NAME = {name: kind for kind, name in GRID_KINDS.items()}
LEVEL_BY_NAME.update({"全国人大": "national", "省级": "province", "市级": "city", "县级": "county",
                      "乡镇": "township", "镇": "township"})
ROLE_BY_NAME = {"主": "lead", "协": "assist"}
ROLE_NAMES = {"lead": "主", "assist": "协"}
LIST_SPLIT = re.compile(r"[、,，;；/\s]+")


@dataclass(frozen=True)
class Column:
    header: str
    attr: str
    required: bool = False
    max_length: int = 100


@dataclass(frozen=True)
class SheetSpec:
    """One sheet of the template: its name and columns (the header row must contain the required ones)."""

    name: str
    key: str
    columns: tuple[Column, ...]

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]


SHEETS: tuple[SheetSpec, ...] = (
    SheetSpec("部门", "departments", (
        Column("部门编码", "code", True, 32), Column("部门名称", "name", True, 100))),
    SheetSpec("联络站", "stations", (
        Column("联络站编码", "code", True, 32), Column("联络站名称", "name", True, 100),
        Column("地址", "address", False, 200), Column("接待时间", "reception_hours", False, 100))),
    SheetSpec("网格", "grids", (
        Column("网格编码", "code", True, 32), Column("网格名称", "name", True, 100),
        Column("别名", "aliases", False, 1000), Column("联络站编码", "station_code", False, 32),
        Column("网格类型", "kind", False, 8))),
    SheetSpec("代表", "deputies", (
        Column("代表编码", "code", True, 32), Column("姓名", "name", True, 50),
        Column("层级", "level", True, 8), Column("联络站编码", "station_code", False, 32),
        Column("网格", "grids", False, 500), Column("主/协", "roles", False, 100),
        Column("职务", "duties", False, 200), Column("接待时间", "reception_hours", False, 100),
        Column("电话", "phone", False, 32))),
    SheetSpec("企业", "enterprises", (
        Column("企业编码", "code", True, 32), Column("企业名称", "name", True, 100),
        Column("网格编码", "grid_code", True, 32), Column("联系人", "contact_name", False, 50),
        Column("联系电话", "contact_phone", False, 32))),
)
SHEET_BY_KEY = {s.key: s for s in SHEETS}
SHEET_BY_NAME = {s.name: s for s in SHEETS}


class RegistryError(Refusal):
    """A refused registry change: `kind` (conflict: a duplicate; invalid), `code`, `field`, Chinese message."""


@dataclass
class RowError:
    sheet: str
    row: int  # the spreadsheet's row number (the header is row 1)
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "row": self.row, "field": self.field, "message": self.message}


class FileTooLarge(RegistryError):
    """The file is beyond the import limits (rows, columns, sheets or unpacked size): refused unread."""

    def __init__(self, message: str):
        super().__init__(TOO_LARGE, "file_too_large", message)


# Import limits, checked before and while parsing: a registry of a county has hundreds of rows, and an
# XLSX is a zip whose sheet may claim a `<dimension>` of a million rows by 16,384 columns.
MAX_ROWS = 10_000            # per sheet, the header included
MAX_COLUMNS = 50
MAX_SHEETS = 20
MAX_ZIP_ENTRIES = 200
MAX_UNCOMPRESSED_BYTES = 20 * 1024 * 1024  # all parts of the XLSX unpacked
MAX_REPORTED_ERRORS = 100    # rows listed in a rejection; `total` counts them all


class ImportRejected(DomainError):
    """The file has bad rows: nothing was imported. `errors` lists the first MAX_REPORTED_ERRORS bad
    rows and the reason; `total` counts every bad row."""

    kind = INVALID
    code = "import_rejected"

    def __init__(self, errors: list[RowError], total: int | None = None):
        total = len(errors) if total is None else total
        super().__init__(f"导入失败：{total} 处错误，未导入任何数据")
        self.errors = errors[:MAX_REPORTED_ERRORS]
        self.total = total

    @property
    def truncated(self) -> bool:
        return self.total > len(self.errors)


class _ErrorList(list):
    """Collects row errors but keeps only the first MAX_REPORTED_ERRORS (the answer stays small)."""

    total = 0

    def append(self, error: RowError) -> None:
        self.total += 1
        if len(self) < MAX_REPORTED_ERRORS:
            super().append(error)

    def extend(self, errors: Iterable[RowError]) -> None:
        for error in errors:
            self.append(error)

    def reject(self) -> ImportRejected:
        return ImportRejected(list(self), self.total)


@dataclass
class ImportSummary:
    created: dict[str, int] = field(default_factory=lambda: {s.key: 0 for s in SHEETS})
    updated: dict[str, int] = field(default_factory=lambda: {s.key: 0 for s in SHEETS})
    dry_run: bool = False


# ---------------------------------------------------------------------------------------------- services
def _get(session: Session, model, code: str):
    return session.scalar(select(model).where(model.code == code))


def _require(session: Session, model, code: str | None, field_name: str, what: str):
    if code is None:
        return None
    row = _get(session, model, code)
    if row is None:
        raise RegistryError(INVALID, "unknown_" + field_name.removesuffix("_code"), f"{what}不存在：{code}",
                            field_name)
    return row


def _refuse_duplicate(session: Session, model, code: str) -> None:
    if _get(session, model, code) is not None:
        raise RegistryError(CONFLICT, "duplicate_code", f"编码已存在：{code}", "code")


def create_department(session: Session, code: str, name: str) -> Department:
    """Register a department (409 when the code exists)."""
    _refuse_duplicate(session, Department, code)
    row = Department(code=code, name=name)
    session.add(row)
    session.flush()
    directory.invalidate()
    return row


def create_station(session: Session, code: str, name: str, address: str | None = None,
                   reception_hours: str | None = None) -> Station:
    """Register a liaison station (409 when the code exists)."""
    _refuse_duplicate(session, Station, code)
    row = Station(code=code, name=name, address=address, reception_hours=reception_hours)
    session.add(row)
    session.flush()
    directory.invalidate()
    return row


def create_grid(session: Session, code: str, name: str, aliases: Iterable[str] = (),
                station_code: str | None = None, kind: str = "community") -> Grid:
    """Register a grid (社区, 企业 or 产业链) under an (existing) station."""
    _refuse_duplicate(session, Grid, code)
    if kind not in GRID_KINDS:
        raise RegistryError(INVALID, "invalid_kind", f"网格类型无效：{kind}", "kind")
    station = _require(session, Station, station_code, "station_code", "联络站")
    row = Grid(code=code, name=name, aliases=_clean_aliases(aliases), station=station, kind=kind)
    session.add(row)
    session.flush()
    directory.invalidate()
    return row


def create_deputy(session: Session, code: str, name: str, level: str, *, station_code: str | None = None,
                  duties: str | None = None, reception_hours: str | None = None,
                  phone: str | None = None, grids: Iterable[tuple[str, str]] = ()) -> Deputy:
    """Register a deputy and the grids they serve as `(grid_code, "lead"|"assist")`."""
    if level not in DEPUTY_LEVELS:
        raise RegistryError(INVALID, "invalid_level", f"层级无效：{level}", "level")
    _refuse_duplicate(session, Deputy, code)
    station = _require(session, Station, station_code, "station_code", "联络站")
    deputy = Deputy(code=code, name=name, level=level, station=station, duties=duties,
                    reception_hours=reception_hours, phone=phone)
    session.add(deputy)
    session.flush()
    links = []
    for grid_code, role in grids:
        grid = _require(session, Grid, grid_code, "grids", "网格")
        links.append((grid.id, role))
    _replace_links(session, deputy, links)
    session.refresh(deputy)
    directory.invalidate()
    return deputy


def _replace_links(session: Session, deputy: Deputy, links: list[tuple[int, str]]) -> None:
    session.execute(delete(DeputyGrid).where(DeputyGrid.deputy_id == deputy.id))
    seen: set[int] = set()
    for grid_id, role in links:
        if grid_id not in seen:
            seen.add(grid_id)
            session.add(DeputyGrid(deputy_id=deputy.id, grid_id=grid_id, role=role))
    session.flush()


def _clean_aliases(aliases: Iterable[str]) -> list[str]:
    result: list[str] = []
    for alias in aliases:
        alias = alias.strip()
        if alias and alias not in result:
            result.append(alias)
    return result


# ---------------------------------------------------------------------------------------------- reading files
def read_file(filename: str, content: bytes) -> dict[str, list[tuple[int, dict[str, str]]]]:
    """Rows per sheet key from an XLSX workbook or one CSV file: `{key: [(row_number, {attr: text})]}`.

    XLSX sheets are recognised by name (部门/联络站/网格/代表) or by their header row; a CSV file by its
    header row. Raises ImportRejected for an unreadable file or unknown headers.
    """
    lower = filename.lower()
    if lower.endswith(".xlsx"):
        tables = _read_xlsx(content)
    elif lower.endswith(".csv"):
        tables = [("CSV", _read_csv(content))]
    else:
        raise ImportRejected([RowError(filename, 0, None, "仅支持 .xlsx 或 .csv 文件")])
    result: dict[str, list[tuple[int, dict[str, str]]]] = {}
    errors = _ErrorList()
    for title, rows in tables:
        rows = iter(rows)
        first = next(rows, None)
        if not first or not any(_text(v) for v in first):
            continue
        header = [_text(v) for v in first]
        spec = SHEET_BY_NAME.get(title) or _spec_for_header(header)
        if spec is None:
            errors.append(RowError(title, 1, None, "无法识别的表头：" + "、".join(h for h in header if h)))
            continue
        missing = [c.header for c in spec.columns if c.required and c.header not in header]
        unknown = [h for h in header if h and h not in spec.headers]
        if missing or unknown:
            detail = []
            if missing:
                detail.append("缺少列：" + "、".join(missing))
            if unknown:
                detail.append("未知列：" + "、".join(unknown))
            errors.append(RowError(spec.name, 1, None, "；".join(detail)))
            continue
        index = {h: i for i, h in enumerate(header) if h}
        parsed = result.setdefault(spec.key, [])
        for number, values in enumerate(rows, start=2):
            cells = {c.attr: _text(values[index[c.header]]) if c.header in index and index[c.header] < len(values)
                     else "" for c in spec.columns}
            if any(cells.values()):
                parsed.append((number, cells))
    if errors:
        raise errors.reject()
    return result


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _spec_for_header(header: list[str]) -> SheetSpec | None:
    present = set(header)
    for spec in SHEETS:
        if spec.columns[0].header in present and spec.columns[1].header in present:
            return spec
    return None


def _read_csv(content: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on Chinese Windows saves CSV as GBK
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ImportRejected([RowError("CSV", 0, None, "文件编码无法识别（请使用 UTF-8 或 GBK）")])
    rows = []
    try:
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            if number > MAX_ROWS:
                raise FileTooLarge(f"文件行数超过上限（每表最多 {MAX_ROWS} 行）")
            if len(row) > MAX_COLUMNS:
                raise FileTooLarge(f"第 {number} 行列数超过上限（最多 {MAX_COLUMNS} 列）")
            rows.append([_unguard(cell) for cell in row])
    except csv.Error:
        raise ImportRejected([RowError("CSV", 0, None, "CSV 文件格式无效")]) from None
    return rows


_FORMULA_STARTS = ("=", "+", "-", "@")


def _guard(value: str) -> str:
    """CSV injection guard: a cell that a spreadsheet would run as a formula is quoted with '."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _unguard(value: str) -> str:
    """Undo `_guard` on import, so an exported file imports back unchanged."""
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_STARTS) else value


def _read_xlsx(content: bytes) -> list[tuple[str, list[list[Any]]]]:
    """Every sheet's rows, streamed (openpyxl's read-only mode) within the import limits.

    The sheet's own `<dimension>` is ignored: it may claim a million rows by 16,384 columns, and
    openpyxl would pad every row to it. Rows are counted as they stream and the file is refused at the
    first row or column past the limits, so memory stays bounded by the limits, not by the claim.
    """
    from openpyxl import load_workbook

    _check_zip(content)
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a damaged file
        raise _unreadable(error) from None
    try:
        if len(workbook.worksheets) > MAX_SHEETS:
            raise FileTooLarge(f"工作表过多（最多 {MAX_SHEETS} 个）")
        tables = []
        for ws in workbook.worksheets:
            ws.reset_dimensions()
            rows: list[list[Any]] = []
            for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
                if number > MAX_ROWS:
                    raise FileTooLarge(f"工作表“{ws.title}”行数超过上限（最多 {MAX_ROWS} 行）")
                if len(values) > MAX_COLUMNS:
                    if any(v is not None for v in values[MAX_COLUMNS:]):
                        raise FileTooLarge(f"工作表“{ws.title}”第 {number} 行列数超过上限（最多 {MAX_COLUMNS} 列）")
                    values = values[:MAX_COLUMNS]
                rows.append(list(values))
            # Trailing empty rows (a formatted but empty sheet) carry nothing.
            while rows and not any(_text(v) for v in rows[-1]):
                rows.pop()
            tables.append((ws.title, rows))
        return tables
    except (FileTooLarge, ImportRejected):
        raise
    except Exception as error:  # a malformed sheet is only found while streaming it
        raise _unreadable(error) from None
    finally:
        workbook.close()


def _unreadable(error: Exception) -> ImportRejected:
    return ImportRejected([RowError("XLSX", 0, None, f"无法读取 Excel 文件：{type(error).__name__}")])


def _check_zip(content: bytes) -> None:
    """Refuse a zip whose parts unpack beyond the limits, before any XML is parsed.

    zipfile never yields more than an entry's declared size (and checks its CRC), so summing the
    declared sizes bounds what openpyxl can unpack.
    """
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise _unreadable(error) from None
    if len(entries) > MAX_ZIP_ENTRIES:
        raise FileTooLarge(f"Excel 文件结构异常：包含过多部件（最多 {MAX_ZIP_ENTRIES} 个）")
    if sum(entry.file_size for entry in entries) > MAX_UNCOMPRESSED_BYTES:
        raise FileTooLarge(f"Excel 文件解压后超过 {MAX_UNCOMPRESSED_BYTES // (1024 * 1024)} MB，请拆分后导入")


# ---------------------------------------------------------------------------------------------- import
def import_file(session: Session, filename: str, content: bytes, *, dry_run: bool = False) -> ImportSummary:
    """Validate every row of the file, then upsert by code; all or nothing.

    Raises ImportRejected (nothing written) listing every bad row. References (a grid's station, a
    deputy's grids) may name codes defined in the same file or already registered.
    """
    tables = read_file(filename, content)
    plan = _validate(session, tables)
    summary = ImportSummary(dry_run=dry_run)
    if dry_run:
        for key, rows in plan.items():
            for row in rows:
                bucket = summary.updated if row["existing"] else summary.created
                bucket[key] += 1
        return summary
    _apply(session, plan, summary)
    directory.invalidate()
    return summary


def _validate(session: Session, tables) -> dict[str, list[dict[str, Any]]]:
    errors = _ErrorList()
    plan: dict[str, list[dict[str, Any]]] = {}
    existing = {key: set(session.scalars(select(model.code)))
                for key, model in (("stations", Station), ("grids", Grid))}
    grid_kinds = dict(session.execute(select(Grid.code, Grid.kind)).all())
    for _n, cells in tables.get("grids", []):
        if cells.get("code"):
            grid_kinds[cells["code"]] = KIND_BY_NAME.get(cells.get("kind") or "社区", cells.get("kind"))
    in_file = {key: {cells["code"] for _n, cells in tables.get(key, []) if cells.get("code")}
               for key in ("stations", "grids")}
    leads: dict[str, tuple[int, str]] = {}
    for spec in SHEETS:
        model = {"departments": Department, "stations": Station, "grids": Grid, "deputies": Deputy,
                 "enterprises": Enterprise}[spec.key]
        known = set(session.scalars(select(model.code)))
        seen: dict[str, int] = {}
        for number, cells in tables.get(spec.key, []):
            row_errors: list[RowError] = []

            def bad(field_header: str | None, message: str) -> None:
                row_errors.append(RowError(spec.name, number, field_header, message))

            for column in spec.columns:
                value = cells[column.attr]
                if column.required and not value:
                    bad(column.header, f"{column.header}不能为空")
                elif len(value) > column.max_length:
                    bad(column.header, f"{column.header}过长（最多 {column.max_length} 个字符）")
            code = cells["code"]
            if code and not CODE_RE.match(code):
                bad(spec.columns[0].header, "编码只能包含字母、数字、下划线和短横线")
            if code in seen:
                bad(spec.columns[0].header, f"编码 {code} 与第 {seen[code]} 行重复")
            elif code:
                seen[code] = number
            entry: dict[str, Any] = {"row": number, "existing": code in known,
                                     **{k: (v or None) for k, v in cells.items()}}
            station_code = cells.get("station_code")
            if station_code and station_code not in existing["stations"] | in_file["stations"]:
                bad("联络站编码", f"联络站不存在：{station_code}")
            if spec.key == "grids":
                entry["aliases"] = _clean_aliases(LIST_SPLIT.split(cells["aliases"]))
                entry["kind"] = KIND_BY_NAME.get(cells["kind"] or "社区")
                if entry["kind"] is None:
                    bad("网格类型", f"网格类型无效：{cells['kind']}（应为 社区/企业/产业链）")
            if spec.key == "enterprises" and cells["grid_code"]:
                if cells["grid_code"] not in existing["grids"] | in_file["grids"]:
                    bad("网格编码", f"网格不存在：{cells['grid_code']}")
                elif grid_kinds.get(cells["grid_code"]) != "enterprise":
                    bad("网格编码", f"网格 {cells['grid_code']} 不是企业网格")
            if spec.key == "deputies":
                level = LEVEL_BY_NAME.get(cells["level"], cells["level"] if cells["level"] in DEPUTY_LEVELS else None)
                if cells["level"] and level is None:
                    bad("层级", f"层级无效：{cells['level']}（应为 全国/省/市/县/乡）")
                entry["level"] = level
                grids = [g for g in LIST_SPLIT.split(cells["grids"]) if g]
                roles = [r for r in LIST_SPLIT.split(cells["roles"]) if r]
                if roles and len(roles) not in (1, len(grids)):
                    bad("主/协", "主/协 的个数应为 1 个或与网格个数相同")
                bad_roles = [r for r in roles if r not in ROLE_BY_NAME]
                if bad_roles:
                    bad("主/协", f"主/协 取值无效：{'、'.join(bad_roles)}（应为 主 或 协）")
                if roles and not grids:
                    bad("主/协", "填写了主/协但没有网格")
                links = []
                for i, grid_code in enumerate(grids):
                    if grid_code not in existing["grids"] | in_file["grids"]:
                        bad("网格", f"网格不存在：{grid_code}")
                    role_name = roles[i] if len(roles) == len(grids) else (roles[0] if roles else "主")
                    role = ROLE_BY_NAME.get(role_name, "lead")
                    if role == "lead":
                        if grid_code in leads and leads[grid_code][1] != code:
                            bad("主/协", f"网格 {grid_code} 已有主代表（第 {leads[grid_code][0]} 行）")
                        else:
                            leads[grid_code] = (number, code)
                    links.append((grid_code, role))
                entry["links"] = links
            errors.extend(row_errors)
            plan.setdefault(spec.key, []).append(entry)
    if errors:
        raise errors.reject()
    return plan


def _apply(session: Session, plan: dict[str, list[dict[str, Any]]], summary: ImportSummary) -> None:
    def upsert(model, key: str, entry: dict[str, Any], **values):
        row = _get(session, model, entry["code"])
        if row is None:
            row = model(code=entry["code"])
            session.add(row)
            summary.created[key] += 1
        else:
            summary.updated[key] += 1
        for name, value in values.items():
            setattr(row, name, value)
        session.flush()
        return row

    for entry in plan.get("departments", []):
        upsert(Department, "departments", entry, name=entry["name"])
    for entry in plan.get("stations", []):
        upsert(Station, "stations", entry, name=entry["name"], address=entry["address"],
               reception_hours=entry["reception_hours"])
    stations = {s.code: s.id for s in session.scalars(select(Station))}
    for entry in plan.get("grids", []):
        upsert(Grid, "grids", entry, name=entry["name"], aliases=entry["aliases"], kind=entry["kind"],
               station_id=stations.get(entry["station_code"]) if entry["station_code"] else None)
    grids = {g.code: g.id for g in session.scalars(select(Grid))}
    for entry in plan.get("enterprises", []):
        upsert(Enterprise, "enterprises", entry, name=entry["name"], grid_id=grids[entry["grid_code"]],
               contact_name=entry["contact_name"], contact_phone=entry["contact_phone"])
    for entry in plan.get("deputies", []):
        deputy = upsert(Deputy, "deputies", entry, name=entry["name"], level=entry["level"],
                        station_id=stations.get(entry["station_code"]) if entry["station_code"] else None,
                        duties=entry["duties"], reception_hours=entry["reception_hours"],
                        phone=entry["phone"])
        _replace_links(session, deputy, [(grids[g], role) for g, role in entry["links"]])


# ---------------------------------------------------------------------------------------------- export
def export_rows(session: Session, key: str, station_id: int | None = None) -> list[list[str]]:
    """One sheet of the registry as rows under the template's header (the same format import reads).

    With `station_id` (a station's staff), only that station, its grids and its deputies (registered
    there or serving one of its grids): deputies' phone numbers stay within their jurisdiction.
    Departments are the county's and always listed."""
    spec = SHEET_BY_KEY[key]
    rows: list[list[str]] = [spec.headers]
    if key == "departments":
        for d in session.scalars(select(Department).order_by(Department.code)):
            rows.append([d.code, d.name])
    elif key == "stations":
        query = select(Station) if station_id is None else select(Station).where(Station.id == station_id)
        for s in session.scalars(query.order_by(Station.code)):
            rows.append([s.code, s.name, s.address or "", s.reception_hours or ""])
    elif key == "grids":
        query = select(Grid) if station_id is None else select(Grid).where(Grid.station_id == station_id)
        for g in session.scalars(query.order_by(Grid.code)):
            rows.append([g.code, g.name, "、".join(g.aliases or []), g.station.code if g.station else "",
                         GRID_KINDS.get(g.kind, "社区")])
    elif key == "enterprises":
        query = select(Enterprise).join(Grid, Grid.id == Enterprise.grid_id)
        if station_id is not None:
            query = query.where(Grid.station_id == station_id)
        for e in session.scalars(query.order_by(Enterprise.code)):
            rows.append([e.code, e.name, e.grid.code, e.contact_name or "", e.contact_phone or ""])
    else:
        query = select(Deputy) if station_id is None else select(Deputy).where(
            Deputy.id.in_(station_deputy_ids(station_id)))
        for d in session.scalars(query.order_by(Deputy.code)):
            links = sorted(d.grid_links, key=lambda link: (link.role != "lead", link.grid.code))
            rows.append([d.code, d.name, DEPUTY_LEVEL_NAMES[d.level], d.station.code if d.station else "",
                         "、".join(link.grid.code for link in links),
                         "、".join(ROLE_NAMES.get(link.role, "主") for link in links),
                         d.duties or "", d.reception_hours or "", d.phone or ""])
    return rows


def export_file(session: Session, fmt: str, sheet: str | None = None, *,
                station_id: int | None = None) -> tuple[str, str, bytes]:
    """(filename, content type, bytes): an XLSX workbook of every sheet, or one sheet as CSV (UTF-8 with
    BOM so Excel opens it). `station_id` limits it to one station's part (see `export_rows`)."""
    if fmt == "xlsx":
        from openpyxl import Workbook

        workbook = Workbook()
        workbook.remove(workbook.active)
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        for spec in SHEETS:
            ws = workbook.create_sheet(spec.name)
            for r, row in enumerate(export_rows(session, spec.key, station_id), start=1):
                for c, value in enumerate(row, start=1):
                    cell = ws.cell(row=r, column=c)
                    cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
                    cell.data_type = "s"  # text as text: a leading "=" must not become a formula
        buffer = io.BytesIO()
        workbook.save(buffer)
        return ("registry.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                buffer.getvalue())
    if fmt == "csv":
        key = sheet or "deputies"
        if key not in SHEET_BY_KEY:
            raise RegistryError(INVALID, "invalid_sheet", f"未知的表：{key}", "sheet")
        buffer = io.StringIO()
        csv.writer(buffer).writerows([[_guard(v) for v in row] for row in export_rows(session, key, station_id)])
        return f"registry-{key}.csv", "text/csv; charset=utf-8", ("\ufeff" + buffer.getvalue()).encode("utf-8")
    raise RegistryError(INVALID, "invalid_format", f"未知格式：{fmt}", "format")
