"""Hostile input gets a clear 4xx, a small answer and one log line: a tiny XLSX that claims a huge sheet,
a zip bomb, a malformed sheet, thousands of bad rows, deeply nested JSON."""
from __future__ import annotations

import base64
import io
import json
import logging
import subprocess
import sys
import textwrap
import zipfile

import pytest

from liaison.people import registry
from tests.api_fixtures import FlaskHttp, bootstrap_staff
from tests.conftest import ROOT

CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
</Types>"""
ROOT_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>
</Relationships>"""
WORKBOOK = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"
 xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="部门" sheetId="1" r:id="rId1"/></sheets></workbook>"""
WORKBOOK_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>
</Relationships>"""


def crafted_xlsx(sheet_xml: str, *, extra: dict[str, bytes] | None = None) -> bytes:
    """A minimal workbook with one sheet whose XML we write ourselves."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml", sheet_xml)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def far_dimension_xlsx() -> bytes:
    """The 1.6 KB file of the issue: a dimension of the whole grid and one distant row."""
    return crafted_xlsx(
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<dimension ref="A1:XFD1048576"/><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>部门编码</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>部门名称</t></is></c></row>'
        '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
        '</sheetData></worksheet>')


def test_hostile_dimension_is_refused_in_bounded_memory():
    """Run the reader in a child process under an address-space cap; report tracemalloc's peak."""
    content = far_dimension_xlsx()
    assert len(content) < 2048
    script = textwrap.dedent("""
        import resource, sys, tracemalloc
        resource.setrlimit(resource.RLIMIT_AS, (1536 * 1024 * 1024, resource.RLIM_INFINITY))
        from liaison.people import registry
        content = sys.stdin.buffer.read()
        tracemalloc.start()
        try:
            registry.read_file("hostile.xlsx", content)
            outcome = "accepted"
        except registry.FileTooLarge:
            outcome = "too_large"
        except registry.ImportRejected:
            outcome = "rejected"
        except MemoryError:
            outcome = "memory_error"
        peak = tracemalloc.get_traced_memory()[1]
        print(outcome, peak)
    """)
    result = subprocess.run([sys.executable, "-c", script], input=content, capture_output=True, cwd=ROOT,
                            timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    outcome, peak = result.stdout.decode().split()
    assert outcome == "too_large"
    assert int(peak) < 64 * 1024 * 1024  # generous: the claim is ≈ 128 GiB


def test_zip_bomb_is_refused_before_parsing():
    bomb = b"<!-- " + b" " * (registry.MAX_UNCOMPRESSED_BYTES + 1) + b" -->"
    content = crafted_xlsx("<worksheet/>", extra={"xl/padding.xml": bomb})
    assert len(content) < 100_000
    with pytest.raises(registry.FileTooLarge):
        registry.read_file("bomb.xlsx", content)


def test_too_many_columns_is_refused():
    cells = "".join(f'<c r="{col}1" t="inlineStr"><is><t>v</t></is></c>' for col in ("A", "B", "AZ", "BZ"))
    content = crafted_xlsx('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                           f'<sheetData><row r="1">{cells}</row></sheetData></worksheet>')
    with pytest.raises(registry.FileTooLarge):
        registry.read_file("wide.xlsx", content)


def test_csv_rows_are_capped():
    content = ("部门编码,部门名称\n" + "d,x\n" * registry.MAX_ROWS).encode()
    with pytest.raises(registry.FileTooLarge):
        registry.read_file("big.csv", content)


@pytest.fixture
def http(app):
    return FlaskHttp(app.test_client())


def upload(user, content: bytes, filename: str):
    return user.post("/api/registry/import", {"filename": filename,
                                              "content_base64": base64.b64encode(content).decode()})


def test_api_answers_hostile_files_with_a_small_4xx_and_one_log_line(http, fake_wechat, caplog):
    staff = bootstrap_staff(http, "", fake_wechat, "o_lim_staff")
    caplog.set_level(logging.INFO)
    response = upload(staff, far_dimension_xlsx(), "hostile.xlsx")
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "file_too_large"
    assert len(response.text) < 1000
    # A sheet whose XML breaks only after the header (found while streaming, not on open).
    broken = crafted_xlsx('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                          '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>部门编码</t></is></c></row>'
                          '<row r="2"><c r="A2"><v>1</v></c></row><row r="3"><c')
    response = upload(staff, broken, "broken.xlsx")
    assert response.status_code in (200, 422), response.text
    assert response.status_code != 500 and response.json().get("imported") is not True
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_error_report_is_bounded(http, fake_wechat):
    staff = bootstrap_staff(http, "", fake_wechat, "o_lim_staff2")
    bad_rows = 5000
    content = ("部门编码,部门名称\n" + "".join(f"坏 {i},\n" for i in range(bad_rows))).encode()
    response = upload(staff, content, "bad.csv")
    assert response.status_code == 200
    body = response.json()
    assert body["imported"] is False
    assert len(body["errors"]) == registry.MAX_REPORTED_ERRORS
    assert body["error_count"] == 2 * bad_rows  # two errors per row: empty name, bad code
    assert len(response.text) < 40_000


@pytest.mark.parametrize("path", ["/api/login", "/api/cases"])
def test_deeply_nested_json_is_a_400_without_a_traceback(http, fake_wechat, path, caplog):
    caplog.set_level(logging.INFO)
    headers = {"Content-Type": "application/json"}
    if path != "/api/login":
        from tests.api_fixtures import resident

        headers["Authorization"] = "Bearer " + resident(http, "", fake_wechat, "o_lim_res").token
    for depth in (100_000, 500):
        body = ('{"code": ' + "[" * depth + "]" * depth + "}").encode()
        response = http.post(path, data=body, headers=headers)
        assert response.status_code == 400, (depth, response.text)
        assert response.json()["error"]["code"] == "invalid_json"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    # An ordinary body still works.
    assert json.loads(http.post("/api/login", data=b'{"code": ""}', headers=headers).text)["error"]
