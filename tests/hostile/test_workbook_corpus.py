"""A corpus of broken and malicious workbooks sent to the import API as an administrator would:
each gets a clear 4xx answer naming the problem (never a 500), and nothing is imported.

Built here rather than stored: wrong extensions, corrupted and truncated zips, a zip bomb, XML
entity bombs (billion laughs, external entity), formula and DDE payloads, a sheet over the row
limit, a macro project inside a plain .xlsx, an empty file. knowledge/tests/test_import.py has the
importer's own unit tests of several of these; this is the same defence seen from outside.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge.models import ImportRun, KnowledgeEntry

pytestmark = [pytest.mark.django_db]

HEADER = ["ID", "Título", "Sintoma", "Causa", "Solução", "Códigos de erro", "Jobs"]


def _xlsx(rows: list[list[Any]], *, extra: Callable[[zipfile.ZipFile], None] | None = None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    if extra is None:
        return buffer.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        extra(dst)
    return out.getvalue()


def _replace(data: bytes, member: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item, content if item.filename == member else src.read(item.filename))
    return out.getvalue()


GOOD_ROW = ["KB-9001", "Falha de teste", "O job abenda", "Motivo", "Reexecutar", "AWS123E", "JOB_X"]
_ENTITIES = b'<!ENTITY lol "lol">' + b"".join(
    b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10))
# The sheet openpyxl writes (inline strings), with an entity that expands to a billion "lol"s.
BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE worksheet [' + _ENTITIES + b']>'
                  b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
                  b'<row r="1"><c r="A1" t="inlineStr"><is><t>ID</t></is></c><c r="B1" t="inlineStr"><is><t>&lol9;</t></is></c></row>'
                  b"</sheetData></worksheet>")
EXTERNAL_ENTITY = (b'<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                   b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
                   b"<si><t>&xxe;</t></si></sst>")


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", b"<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (300 * 1024 * 1024))  # 300 MB of zeros, ~300 kB zipped
    return out.getvalue()


def corpus() -> list[Any]:
    good = _xlsx([GOOD_ROW])
    return [
        pytest.param("notes.pdf", b"%PDF-1.4 not a workbook", id="wrong extension (pdf)"),
        pytest.param("payload.exe", good, id="workbook under a wrong extension"),
        pytest.param("kb.xlsx", b"%PDF-1.4 this is a pdf renamed", id="pdf renamed to xlsx"),
        pytest.param("kb.xlsx", b"", id="empty file"),
        pytest.param("kb.xlsx", good[: len(good) // 2], id="truncated zip"),
        pytest.param("kb.xlsx", good[:100] + b"\xff" * 200 + good[300:], id="corrupted zip"),
        pytest.param("kb.xlsx", _zip_bomb(), id="zip bomb"),
        pytest.param("kb.xlsx", _replace(good, "xl/worksheets/sheet1.xml", BILLION_LAUGHS), id="billion laughs"),
        pytest.param("kb.xlsx", _replace(good, "xl/workbook.xml", EXTERNAL_ENTITY), id="external entity"),
        pytest.param("kb.xlsx", _xlsx([["KB-9002", "=HYPERLINK(\"http://evil.example.com\",\"clique\")", "=1+1", "=cmd|' /C calc'!A0",
                                        "@SUM(1)", "+1", "AWS1E", "J"]]), id="formulas and DDE"),
        pytest.param("kb.csv", "ID;Título;Sintoma;Causa;Solução\nKB-9003;=cmd|' /C calc'!A0;=1+1;x;y\n".encode(),
                     id="csv with formula injection"),
        pytest.param("kb.csv", "ID;Título;Sintoma;Causa;Solução\nKB-9004;Falha;\t=1+1;x;@SUM(1+1)\n"
                     "KB-9005;Falha;-2+3+cmd|' /C calc'!A0;x;\"\r=HYPERLINK(\"\"http://evil.example.com\"\")\"\n".encode(),
                     id="csv with tab, CR and sign-led formulas"),
        pytest.param("kb.xlsx", _xlsx([GOOD_ROW], extra=lambda z: z.writestr("xl/vbaProject.bin", b"\xd0\xcf\x11\xe0 macro")),
                     id="macro project inside an xlsx"),
        pytest.param("kb.xlsm", _xlsx([GOOD_ROW], extra=lambda z: z.writestr("xl/vbaProject.bin", b"\xd0\xcf\x11\xe0 macro")),
                     id="macro project inside an xlsm"),
        pytest.param("kb.xlsx", _xlsx([GOOD_ROW], extra=lambda z: z.writestr("xl/macrosheets/sheet1.xml", b"<xm:macrosheet/>")),
                     id="excel 4.0 macro sheet"),
        pytest.param("kb.xlsx", _xlsx([[f"KB-{i:05d}", f"t{i}", "s", "c", "r", "", ""] for i in range(60)]), id="sheet over the row limit"),
    ]


@pytest.mark.parametrize(("name", "data"), corpus())
def test_each_bad_workbook_gets_a_clear_error_and_nothing_is_imported(name: str, data: bytes, admin_user: Any,
                                                                      client_for: Any, settings: Any) -> None:
    settings.KB_IMPORT_MAX_ROWS = 50
    before = KnowledgeEntry.objects.count()
    client = client_for(admin_user)
    response = client.post("/api/kb/import/", {"file": SimpleUploadedFile(name, data)})
    body = response.json()
    assert 400 <= response.status_code < 500, (response.status_code, body)
    message = str(body)
    assert len(message) > 20 and "Traceback" not in message, body
    assert KnowledgeEntry.objects.count() == before
    assert not ImportRun.objects.filter(status__in=["running", "succeeded"]).exists()
