"""Workbook import: the shared sample, messy workbooks, row errors, limits, idempotence and history."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from audit.models import AuditAction, AuditEvent
from knowledge import services
from knowledge.importer import ImportFileError, read_workbook
from knowledge.models import EntryKey, EntrySource, EntryStatus, KnowledgeEntry

pytestmark = pytest.mark.django_db

ROW_OK = ["KB-1", "AWSBHT001E", None, "Job vai para FAIL ao iniciar.", "Jobman não cria o stdlist.",
          "Corrigir permissões e fazer rerun.", "Execução", "Alta", "Equipe HWA", dt.datetime(2024, 1, 5)]


def _import(data: bytes, name: str = "kb.xlsx", **kwargs: Any) -> services.ImportResult:
    plan = services.import_plan(data=data, file_name=name)
    return services.import_apply(acting_user=None, plan=plan, **kwargs)


def test_shared_sample_imports_every_row_with_fields_language_and_codes(sample_bytes: bytes) -> None:
    result = _import(sample_bytes, "knowledge_base.xlsx")

    assert result.counts == {"new": 71, "changed": 0, "unchanged": 0, "invalid": 0}
    assert KnowledgeEntry.objects.count() == 71
    languages = dict(KnowledgeEntry.objects.values_list("external_id", "language"))
    assert list(languages.values()).count("pt") == 46 and list(languages.values()).count("en") == 25
    assert languages["KB-0002"] == "en" and languages["KB-0001"] == "pt"
    payroll = KnowledgeEntry.objects.get(external_id="KB-0003")
    assert payroll.error_codes == ["RC=12"]
    assert payroll.job_patterns == ["FOLHA_PAGAMENTO", "FP_CALC_FOLHA"]
    assert payroll.workstations == ["PRD_LNX01"]
    assert payroll.severity == "high" and payroll.owner_team == "Equipe RH Sistemas"
    assert payroll.source_updated_on == dt.date(2024, 8, 27)
    assert payroll.status == EntryStatus.APPROVED and payroll.source == EntrySource.IMPORT
    # The ID written with a trailing space is found trimmed, with all three of its codes.
    shadow = KnowledgeEntry.objects.get(external_id="KB-0023")
    assert shadow.error_codes == ["AWSRJM002E", "AWSRJM004E", "AWSRJM020E"]
    assert EntryKey.objects.filter(value="AWSRJM020E", entry=shadow).exists()
    assert AuditEvent.objects.filter(action=AuditAction.KB_IMPORT).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.KB_ENTRY_CREATED).count() == 71


def test_sample_preview_names_the_data_sheet_and_ignores_the_instructions(sample_bytes: bytes) -> None:
    plan = services.import_plan(data=sample_bytes, file_name="knowledge_base.xlsx")
    assert plan.parsed.sheet == "Base de Conhecimento"
    assert plan.parsed.other_sheets == ["Instruções"]
    assert plan.counts == {"rows": 71, "new": 71, "changed": 0, "unchanged": 0, "invalid": 0}
    assert KnowledgeEntry.objects.count() == 0  # a preview writes nothing


def test_messy_workbook_title_above_header_extra_sheet_english_synonyms(make_workbook: Callable[..., bytes]) -> None:
    header = ["Entry ID", "Error / Message ID", "Job Name", "Problem", "Root cause", "Fix / Workaround",
              "Severity", "Owner", "Last updated", "Comments"]
    data = make_workbook(
        [
            ["  EN-1  ", "rc 12,  S0C7\nAWSBHT001E ", "PAYROLL_RUN", "Payroll job ends with RC 12.   \n\n\n  Second line  ",
             "Period not open.", "Ask HR to open the period.\r\nThen rerun.", "High", "HR Team ", "2024-03-01", "x"],
            [None, None, None, None, None, None, None, None, None, None],
            ["EN-2", None, None, "Agent is unlinked.", None, "Restart the agent.", "low", None, "05/02/2024", None],
        ],
        header=header,
        title="Known problems — Operations",
        header_row=3,
        extra_sheet_first=True,
        sheet_name="Data",
    )
    plan = services.import_plan(data=data, file_name="ops.xlsx")

    assert plan.parsed.sheet == "Data" and plan.parsed.header_row == 3
    assert plan.parsed.other_sheets == ["Leia-me"]
    assert plan.parsed.ignored_columns == ["Comments"]
    assert plan.counts["new"] == 2 and plan.counts["rows"] == 2  # the blank row is not a row
    services.import_apply(acting_user=None, plan=plan)
    first = KnowledgeEntry.objects.get(external_id="EN-1")
    assert first.error_codes == ["RC=12", "S0C7", "AWSBHT001E"]
    assert first.job_patterns == ["PAYROLL_RUN"]
    assert first.symptom == "Payroll job ends with RC 12.\n\nSecond line"
    assert first.solution == "Ask HR to open the period.\nThen rerun."
    assert first.owner_team == "HR Team" and first.severity == "high" and first.language == "en"
    assert first.source_updated_on == dt.date(2024, 3, 1)
    assert KnowledgeEntry.objects.get(external_id="EN-2").source_updated_on == dt.date(2024, 2, 5)


def test_portuguese_synonyms_and_csv_with_semicolons() -> None:
    text = (
        "Identificador;Código;Descrição do problema;Motivo;Resolução;Prioridade;Data\n"
        "PT-1;AWSJPL018E;O JnextPlan falha.;Banco cheio.;Liberar espaço e rodar de novo.;Média;2023-07-01\n"
    )
    _import(text.encode("utf-8"), "base.csv")
    entry = KnowledgeEntry.objects.get(external_id="PT-1")
    assert entry.error_codes == ["AWSJPL018E"] and entry.severity == "medium" and entry.language == "pt"


def test_xlsm_is_read_without_running_anything(make_workbook: Callable[..., bytes]) -> None:
    result = _import(make_workbook([ROW_OK]), "macros.xlsm")
    assert result.counts["new"] == 1


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        (["KB-9", None, None, "Sintoma", None, None, None, None, None, None], "Solução", "missing solution"),
        (["KB-9", None, None, "Sintoma", None, "Fix", None, None, None, "ontem à tarde"], "Atualizado em",
         "unparseable date"),
        (["KB-9", None, None, "Sintoma", None, "Fix", None, "Urgentíssima", None, None], "Criticidade",
         "unknown severity"),
    ],
)
def test_row_errors_name_sheet_row_column_and_reason_and_nothing_is_written(
    make_workbook: Callable[..., bytes], row: list[Any], column: str, reason: str
) -> None:
    data = make_workbook([ROW_OK, row])
    plan = services.import_plan(data=data, file_name="kb.xlsx")

    [error] = plan.parsed.errors
    assert (error.sheet, error.row, error.column) == ("KB", 3, column)
    assert reason in error.reason
    with pytest.raises(services.ApplicationError, match="nothing was imported"):
        services.import_apply(acting_user=None, plan=plan)
    assert KnowledgeEntry.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="kb.").exists()


def test_duplicate_id_in_file_is_an_error_and_only_valid_rows_can_be_chosen(make_workbook: Callable[..., bytes]) -> None:
    duplicate = [" KB-1", None, None, "Outro sintoma", None, "Outra solução", None, None, None, None]
    other = ["KB-2", None, None, "Sintoma dois", None, "Solução dois", None, None, None, None]
    plan = services.import_plan(data=make_workbook([ROW_OK, duplicate, other]), file_name="kb.xlsx")

    [error] = plan.parsed.errors
    assert error.row == 3 and error.column == "ID" and "duplicate ID KB-1" in error.reason and "row 2" in error.reason
    result = services.import_apply(acting_user=None, plan=plan, only_valid=True)
    assert result.counts == {"new": 2, "changed": 0, "unchanged": 0, "invalid": 1}
    assert KnowledgeEntry.objects.get(external_id="KB-1").symptom == "Job vai para FAIL ao iniciar."


def test_reimport_same_file_changes_nothing_and_edited_file_updates_with_history(
    make_workbook: Callable[..., bytes],
) -> None:
    first = make_workbook([ROW_OK])
    _import(first)
    events = AuditEvent.objects.count()

    again = _import(first)
    assert again.counts == {"new": 0, "changed": 0, "unchanged": 1, "invalid": 0}
    entry = KnowledgeEntry.objects.get(external_id="KB-1")
    assert entry.history.count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.KB_ENTRY_CHANGED).count() == 0
    assert AuditEvent.objects.count() == events + 1  # only the import's own event

    edited = make_workbook([[*ROW_OK[:5], "Corrigir permissões do stdlist e fazer rerun (rr).", *ROW_OK[6:]]])
    result = _import(edited)
    assert result.counts["changed"] == 1
    entry.refresh_from_db()
    assert entry.solution == "Corrigir permissões do stdlist e fazer rerun (rr)."
    history = list(entry.history.order_by("history_date"))
    assert [h.history_type for h in history] == ["+", "~"]
    assert history[0].solution == "Corrigir permissões e fazer rerun."
    assert "import of kb.xlsx" in history[1].history_change_reason
    change = AuditEvent.objects.get(action=AuditAction.KB_ENTRY_CHANGED)
    assert change.target_id == "KB-1" and change.details["fields"] == ["solution"]


def test_reimport_keeps_a_reviewers_retirement(make_workbook: Callable[..., bytes], reviewer: Any) -> None:
    _import(make_workbook([ROW_OK]))
    entry = KnowledgeEntry.objects.get(external_id="KB-1")
    services.entry_retire(acting_user=reviewer, entry=entry, reason="obsolete since v10")
    _import(make_workbook([[*ROW_OK[:5], "Nova solução.", *ROW_OK[6:]]]))
    entry.refresh_from_db()
    assert entry.status == EntryStatus.RETIRED and entry.solution == "Nova solução."


@pytest.mark.parametrize("name", ["kb.xls", "kb.txt", "kb.docx", "kb"])
def test_other_file_types_are_refused_with_a_clear_message(name: str) -> None:
    with pytest.raises(ImportFileError, match=r"only \.xlsx, \.xlsm and \.csv"):
        read_workbook(b"whatever", name)


def test_a_workbook_without_a_recognizable_header_is_refused(make_workbook: Callable[..., bytes]) -> None:
    data = make_workbook([["a", "b"]], header=["Nome", "Telefone"])
    with pytest.raises(ImportFileError, match="No sheet has a header row"):
        read_workbook(data, "contacts.xlsx")


def test_size_limits_file_rows_and_cell(settings: Any, make_workbook: Callable[..., bytes]) -> None:
    data = make_workbook([ROW_OK])
    settings.KB_IMPORT_MAX_BYTES = 1024
    with pytest.raises(ImportFileError, match="the limit is 1024 bytes"):
        read_workbook(data, "kb.xlsx")
    settings.KB_IMPORT_MAX_BYTES = 10 * 1024 * 1024

    settings.KB_IMPORT_MAX_ROWS = 2
    many = make_workbook([[f"KB-{i}", *ROW_OK[1:]] for i in range(5)])
    with pytest.raises(ImportFileError, match="more than 2 data rows"):
        read_workbook(many, "kb.xlsx")
    settings.KB_IMPORT_MAX_ROWS = 20_000

    settings.KB_IMPORT_MAX_CELL_CHARS = 100
    long_cell = make_workbook([[*ROW_OK[:5], "x" * 150, *ROW_OK[6:]]])
    [error] = read_workbook(long_cell, "kb.xlsx").errors
    assert error.column == "Solução" and "150 characters" in error.reason


def test_zip_bomb_is_refused_before_inflating(settings: Any) -> None:
    settings.KB_IMPORT_MAX_UNZIPPED_BYTES = 5 * 1024 * 1024
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (20 * 1024 * 1024))
    data = buffer.getvalue()
    assert len(data) < 100_000
    with pytest.raises(ImportFileError, match="expands to"):
        read_workbook(data, "bomb.xlsx")


def test_xml_entity_expansion_is_refused(make_workbook: Callable[..., bytes]) -> None:
    source = zipfile.ZipFile(io.BytesIO(make_workbook([ROW_OK])))
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1">'
        '<c r="A1" t="inlineStr"><is><t>&lol3;</t></is></c></row></sheetData></worksheet>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            content = laughs.encode() if item.filename == "xl/worksheets/sheet1.xml" else source.read(item.filename)
            target.writestr(item, content)
    with pytest.raises(ImportFileError):
        read_workbook(buffer.getvalue(), "evil.xlsx")
    assert KnowledgeEntry.objects.count() == 0


def test_not_a_zip_is_refused_clearly() -> None:
    with pytest.raises(ImportFileError, match="not a valid Excel workbook"):
        read_workbook(b"PK but not really a zip", "kb.xlsx")


# --- formula injection and macros (issue 4) -----------------------------------------------------

CSV_HEADER = "ID;Título;Sintoma;Causa;Solução\n"


@pytest.mark.parametrize(
    ("cell", "column"),
    [
        ("=HYPERLINK(\"\"http://evil.example.com\"\",\"\"clique\"\")", "Sintoma"),
        ("=cmd|' /C calc'!A0", "Causa"),
        ("@SUM(1+1)", "Solução"),
        ("+SUM(1)", "Solução"),
        ("-2+3+cmd|' /C calc'!A0", "Causa"),
        ("\t=1+1", "Sintoma"),
        ("\r=HYPERLINK(\"\"http://evil.example.com\"\")", "Solução"),
        ("\uff1d1+1", "Causa"),  # a full-width equals sign
    ],
)
def test_csv_formula_cells_are_refused_naming_row_and_column(cell: str, column: str) -> None:
    values = {"Sintoma": "O job abenda.", "Causa": "Motivo.", "Solução": "Reexecutar."} | {column: cell}
    text = CSV_HEADER + "KB-1;Falha;Ok;Ok;Ok\n" + f'KB-2;Falha;"{values["Sintoma"]}";"{values["Causa"]}";"{values["Solução"]}"\n'
    plan = services.import_plan(data=text.encode(), file_name="kb.csv")

    [error] = plan.parsed.errors
    assert (error.sheet, error.row, error.column) == ("kb", 3, column)
    assert "is a spreadsheet formula; formulas are not imported" in error.reason
    with pytest.raises(services.ApplicationError, match="nothing was imported"):
        services.import_apply(acting_user=None, plan=plan)
    assert KnowledgeEntry.objects.count() == 0
    # Importing only the valid rows never takes the formula's row.
    services.import_apply(acting_user=None, plan=plan, only_valid=True)
    assert list(KnowledgeEntry.objects.values_list("external_id", flat=True)) == ["KB-1"]


@pytest.mark.parametrize(
    "text",
    ["-- comment", "- step one", "+55 11 91234-5678", "-5", "-1,5", "+1", "@joao, veja o runbook", "-Xmx512m",
     "-Dfile.encoding=UTF-8", "- job(s) afetado(s)", "Custo = 1+1"],
)
def test_csv_text_that_starts_with_a_sign_but_is_no_formula_is_imported(text: str) -> None:
    csv_text = CSV_HEADER + f'KB-1;Falha;O job abenda.;"{text}";"{text}"\n'
    result = _import(csv_text.encode(), "kb.csv")

    assert result.counts["new"] == 1
    entry = KnowledgeEntry.objects.get(external_id="KB-1")
    assert entry.solution == text and entry.cause == text


@pytest.mark.parametrize("formula", ["=CONCATENATE(\"Rodar \",\"de novo\")", "=HYPERLINK(\"http://evil.example.com\")",
                                     "array"])
def test_xlsx_formula_cells_are_refused_naming_row_and_column(make_workbook: Callable[..., bytes], formula: str) -> None:
    # Before: the cached result was imported as if typed, or nothing at all (a file saved without
    # results, as openpyxl writes them), so a formula in Causa silently became an empty cause.
    from openpyxl.worksheet.formula import ArrayFormula

    value: Any = ArrayFormula("E3:E3", "=SUM(1,2)") if formula == "array" else formula
    plan = services.import_plan(data=make_workbook([ROW_OK, ["KB-2", None, None, "Sintoma", value, "Fix"]]),
                                file_name="kb.xlsx")
    [error] = plan.parsed.errors
    assert (error.row, error.column) == (3, "Causa") and "is a spreadsheet formula" in error.reason
    assert "paste the values" in error.reason
    assert [row.external_id for row in plan.parsed.rows] == ["KB-1"]


def test_xlsx_text_cells_holding_a_formula_are_refused(make_workbook: Callable[..., bytes]) -> None:
    # A text cell (Excel: typed after an apostrophe) is the same payload once exported to CSV.
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(make_workbook([ROW_OK, ["KB-2", None, None, "Sintoma", None, "x"]])))
    cell = book["KB"].cell(row=3, column=6, value="=cmd|' /C calc'!A0")
    cell.data_type = "s"
    buffer = io.BytesIO()
    book.save(buffer)
    [error] = read_workbook(buffer.getvalue(), "kb.xlsx").errors
    assert (error.row, error.column) == (3, "Solução") and "=cmd|' /C calc'!A0" in error.reason


def _with_part(data: bytes, name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        dst.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize(
    ("file_name", "part"),
    [("kb.xlsm", "xl/vbaProject.bin"), ("kb.xlsx", "xl/vbaProject.bin"), ("kb.xlsx", "XL/VBAPROJECT.BIN"),
     ("kb.xlsx", "xl/macrosheets/sheet1.xml")],
)
def test_a_workbook_with_macros_is_refused_before_parsing(make_workbook: Callable[..., bytes], file_name: str,
                                                          part: str) -> None:
    data = _with_part(make_workbook([ROW_OK]), part, b"\xd0\xcf\x11\xe0 macro")
    with pytest.raises(ImportFileError, match=r"the workbook contains macros; save it as \.xlsx without macros") as refused:
        services.import_plan(data=data, file_name=file_name)
    assert refused.value.code == "import_macros"
    assert KnowledgeEntry.objects.count() == 0


def test_the_macro_message_is_translated(make_workbook: Callable[..., bytes]) -> None:
    from django.utils import translation

    data = _with_part(make_workbook([ROW_OK]), "xl/vbaProject.bin", b"macro")
    with translation.override("pt-br"), pytest.raises(ImportFileError) as refused:
        read_workbook(data, "kb.xlsm")
    assert "macros" in refused.value.message and "contains" not in refused.value.message


# --- exports never carry a live formula ---------------------------------------------------------

HOSTILE_ENTRY = {"title": "=HYPERLINK(\"http://evil.example.com\",\"clique\")", "symptom": "@SUM(1+1)",
                 "cause": "-2+3+cmd|' /C calc'!A0", "solution": "\t=1+1", "owner_team": "+Equipe"}


def _export(fmt_name: str) -> bytes:
    from django.contrib import admin

    from knowledge.admin import KnowledgeEntryResource

    model_admin = admin.site._registry[KnowledgeEntry]
    [fmt] = [f for f in model_admin.get_export_formats() if f.__name__ == fmt_name]
    data = fmt().export_data(KnowledgeEntryResource().export())
    return data.encode() if isinstance(data, str) else data


def test_csv_and_xlsx_exports_prefix_formula_like_text(admin_user: Any) -> None:
    import csv

    import openpyxl

    # The admin (or a reviewer's edit) can still write such text: the export is the last line of defence.
    hostile = services.entry_create(acting_user=admin_user, external_id="KB-X", reason="test", **HOSTILE_ENTRY)
    services.entry_create(acting_user=admin_user, external_id="KB-Y", title="Normal", symptom="- step one",
                          solution="Reexecutar o job.", reason="test")

    rows = {r["external_id"]: r for r in csv.DictReader(io.StringIO(_export("CSV").decode("utf-8-sig")))}
    for name in HOSTILE_ENTRY:
        assert rows["KB-X"][name] == "'" + getattr(hostile, name), name
    assert rows["KB-Y"]["symptom"] == "'- step one" and rows["KB-Y"]["solution"] == "Reexecutar o job."

    sheet = openpyxl.load_workbook(io.BytesIO(_export("XLSX"))).active
    header = [c.value for c in sheet[1]]
    cells = {row[0].value: dict(zip(header, row, strict=False)) for row in sheet.iter_rows(min_row=2)}
    title = cells["KB-X"]["title"]
    assert title.data_type == "s" and title.value == "'" + HOSTILE_ENTRY["title"]
    assert not any(c.data_type == "f" for row in sheet.iter_rows() for c in row)


def test_json_export_keeps_the_text_as_stored(admin_user: Any) -> None:
    import json

    services.entry_create(acting_user=admin_user, external_id="KB-X", reason="test", **HOSTILE_ENTRY)
    [row] = json.loads(_export("JSON"))
    assert row["title"] == HOSTILE_ENTRY["title"]


def test_the_admin_export_door_serves_inert_cells(admin_user: Any, client_for: Callable[..., Any]) -> None:
    import csv

    services.entry_create(acting_user=admin_user, external_id="KB-X", reason="test", **HOSTILE_ENTRY)
    client = client_for(admin_user)
    url = "/admin/knowledge/knowledgeentry/export/"
    form = client.get(url).context["form"]
    [csv_choice] = [value for value, label in form.fields["format"].choices if label == "csv"]
    data = {name: "on" for name in form.fields if name.startswith("knowledgeentryresource_")}
    data |= {"format": csv_choice, "resource": "0",
             "export_items": [str(pk) for pk in KnowledgeEntry.objects.values_list("pk", flat=True)]}
    response = client.post(url, data)

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    [row] = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert row["title"] == "'" + HOSTILE_ENTRY["title"] and row["symptom"] == "'@SUM(1+1)"
