"""Registry import/export: XLSX and CSV with the offices' Chinese headers, all-or-nothing with every bad
row listed, upsert by code (the staff API over it: tests/test_registry_api.py)."""
from __future__ import annotations

import io

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from liaison.core import db
from liaison.people import directory, registry
from liaison.people.models import Department, Deputy, DeputyGrid, Grid, Station


def workbook(sheets: dict[str, list[list[str]]]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


GOOD = {
    "部门": [["部门编码", "部门名称"], ["shuili", "县水利局"], ["zhujian", "县住房和城乡建设局（更名）"]],
    "联络站": [["联络站编码", "联络站名称", "地址", "接待时间"], ["S010", "南湖街道代表联络站", "南湖路1号", "每周二上午"]],
    "网格": [["网格编码", "网格名称", "别名", "联络站编码"],
             ["G010", "南湖社区第一网格", "南湖小区、南湖花园", "S010"],
             ["G011", "南湖社区第二网格", "", "S010"]],
    "代表": [["代表编码", "姓名", "层级", "联络站编码", "网格", "主/协", "职务", "接待时间", "电话"],
             ["D010", "赵红梅", "县", "S010", "G010、G011", "主、协", "南湖社区主任", "每周二上午", ""],
             ["D011", "钱立新", "乡", "S010", "G011", "主", "", "", "13800000000"]],
}


def counts(session):
    return tuple(session.scalar(select(func.count()).select_from(m)) for m in (Department, Station, Grid, Deputy))


def test_xlsx_import_upserts_by_code_and_links_lead_and_assist(demo_db):
    with db.session_scope() as session:
        summary = registry.import_file(session, "registry.xlsx", workbook(GOOD))
    assert summary.created == {"departments": 1, "stations": 1, "grids": 2, "deputies": 2, "enterprises": 0}
    assert summary.updated == {"departments": 1, "stations": 0, "grids": 0, "deputies": 0, "enterprises": 0}
    with db.session_scope() as session:
        zhao = session.scalar(select(Deputy).where(Deputy.code == "D010"))
        links = {(link.grid.code, link.role) for link in zhao.grid_links}
        assert zhao.level == "county" and links == {("G010", "lead"), ("G011", "assist")}
        assert session.scalar(select(Grid).where(Grid.code == "G010")).aliases == ["南湖小区", "南湖花园"]
        assert session.scalar(select(Department.name).where(Department.code == "zhujian")).endswith("（更名）")
        assert directory.get(session).grid_in_text("南湖花园门口路灯坏了") is not None
    # Importing the same file again changes nothing but counts updates.
    with db.session_scope() as session:
        before = counts(session)
        again = registry.import_file(session, "registry.xlsx", workbook(GOOD))
        assert counts(session) == before and sum(again.created.values()) == 0


def test_file_with_bad_rows_is_rejected_whole_and_every_bad_row_is_listed(demo_db):
    bad = {
        "联络站": GOOD["联络站"],
        "网格": [GOOD["网格"][0], ["G010", "南湖社区第一网格", "", "S999"], ["G011", "", "", "S010"],
                 ["G010", "重复", "", ""]],
        "代表": [GOOD["代表"][0], ["D010", "赵红梅", "区", "S010", "G010", "主", "", "", ""],
                 ["D011", "钱立新", "乡", "", "G404", "副", "", "", ""],
                 ["D012", "孙", "县", "", "G001", "主", "", "", ""],
                 ["D013", "李", "县", "", "G001", "主", "", "", ""]],
    }
    with db.session_scope() as session:
        before = counts(session)
        with pytest.raises(registry.ImportRejected) as rejected:
            registry.import_file(session, "registry.xlsx", workbook(bad))
    found = {(e.sheet, e.row, e.field) for e in rejected.value.errors}
    assert ("网格", 2, "联络站编码") in found          # unknown station
    assert ("网格", 3, "网格名称") in found            # missing name
    assert ("网格", 4, "网格编码") in found            # duplicate code in the file
    assert ("代表", 2, "层级") in found                # bad level
    assert ("代表", 3, "网格") in found and ("代表", 3, "主/协") in found
    assert ("代表", 5, "主/协") in found               # a second lead for G001 in the same file
    assert not any(e.row == 4 and e.sheet == "代表" for e in rejected.value.errors)
    with db.session_scope() as session:
        assert counts(session) == before, "nothing may be half-imported"
        assert session.scalar(select(Station).where(Station.code == "S010")) is None


def test_csv_roundtrip_export_then_import(demo_db):
    with db.session_scope() as session:
        name, _type, content = registry.export_file(session, "csv", "deputies")
        assert content.startswith("\ufeff".encode()) and "代表编码,姓名,层级" in content.decode("utf-8-sig")
        edited = content.decode("utf-8-sig").replace("每周三上午", "每周四上午").encode("gb18030")
        summary = registry.import_file(session, name, edited)
        assert summary.updated["deputies"] == 5 and sum(summary.created.values()) == 0  # the demo's five
    with db.session_scope() as session:
        d = session.scalar(select(Deputy).where(Deputy.code == "D002"))
        assert d.reception_hours == "每周五下午"
        assert {(l.grid.code, l.role) for l in d.grid_links} == {("G002", "lead"), ("G001", "assist")}
        assert session.scalar(select(Deputy.reception_hours).where(Deputy.code == "D001")) == "每周四上午"
        assert session.scalar(select(func.count()).select_from(DeputyGrid)) == 5
        _n, _t, xlsx = registry.export_file(session, "xlsx")
    book = load_workbook(io.BytesIO(xlsx))
    assert book.sheetnames == ["部门", "联络站", "网格", "代表", "企业"]
    assert [c.value for c in book["代表"][1]][:6] == ["代表编码", "姓名", "层级", "联络站编码", "网格", "主/协"]


def test_csv_export_guards_against_formulas_and_imports_back(demo_db):
    with db.session_scope() as session:
        session.scalar(select(Deputy).where(Deputy.code == "D001")).duties = '=HYPERLINK("http://x","点我")'
    with db.session_scope() as session:
        name, _type, content = registry.export_file(session, "csv", "deputies")
        assert "'=HYPERLINK" in content.decode("utf-8-sig")  # a spreadsheet shows it as text
        registry.import_file(session, name, content)
    with db.session_scope() as session:
        assert session.scalar(select(Deputy.duties).where(Deputy.code == "D001")) == '=HYPERLINK("http://x","点我")'


def test_enterprise_grids_and_enterprises_import_and_export(demo_db):
    """Issue 15: a grid's kind (社区/企业/产业链) and the enterprises of an enterprise grid, with their
    contact person, go through the same templates; an enterprise must belong to an enterprise grid."""
    sheets = {
        "网格": [["网格编码", "网格名称", "别名", "联络站编码", "网格类型"],
                 ["G020", "南山工业园企业网格", "南山工业园", "S001", "企业"],
                 ["G021", "新能源产业链联络站", "", "S001", "产业链"]],
        "企业": [["企业编码", "企业名称", "网格编码", "联系人", "联系电话"],
                 ["E020", "南山精密铸造有限公司", "G020", "孙经理", "13900001234"]],
    }
    with db.session_scope() as session:
        summary = registry.import_file(session, "registry.xlsx", workbook(sheets))
        assert summary.created["enterprises"] == 1 and summary.created["grids"] == 2
    with db.session_scope() as session:
        kinds = dict(session.execute(select(Grid.code, Grid.kind).where(Grid.code.in_(["G020", "G021"]))).all())
        assert kinds == {"G020": "enterprise", "G021": "chain"}
        # A message naming the enterprise is in its enterprise grid.
        g020 = session.scalar(select(Grid.id).where(Grid.code == "G020"))
        assert directory.get(session).grid_in_text("南山精密铸造有限公司门口道路塌陷") == g020
        rows = registry.export_rows(session, "enterprises")
        assert rows[0] == ["企业编码", "企业名称", "网格编码", "联系人", "联系电话"]
        assert ["E020", "南山精密铸造有限公司", "G020", "孙经理", "13900001234"] in rows
        assert [r[4] for r in registry.export_rows(session, "grids") if r[0] in ("G020", "G021")] == ["企业", "产业链"]
    bad = {"企业": [["企业编码", "企业名称", "网格编码"], ["E021", "某公司", "G001"]],
           "网格": [["网格编码", "网格名称", "网格类型"], ["G022", "某网格", "工厂"]]}
    with db.session_scope() as session, pytest.raises(registry.ImportRejected) as rejected:
        registry.import_file(session, "registry.xlsx", workbook(bad))
    found = {(e.sheet, e.field) for e in rejected.value.errors}
    assert ("企业", "网格编码") in found and ("网格", "网格类型") in found
