from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from openpyxl import load_workbook

from audit.exports import export_request, export_run, export_verify, export_write, manifest_path
from audit.models import AuditAction, AuditEvent, AuditExport, AuditOutcome
from audit.selectors import EventFilters, export_file_path
from audit.services import audit_record
from audit.tasks import export_run_task
from audit.tests.conftest import tamper


def _trail() -> None:
    """A small, varied trail: several actors, actions, outcomes, and details worth searching."""
    audit_record(action=AuditAction.SIGNIN_FAILED, actor_label="anonymous", target_type="user", target_label="mallory",
                 outcome=AuditOutcome.FAILURE, details={"username": "mallory"})
    for n in range(3):
        audit_record(action=AuditAction.JOB_ACTION, actor_label="olivia", target_type="job", target_id=f"PAYROLL#{n}",
                     target_label="=HYPERLINK(\"x\")" if n == 0 else f"payroll {n}", details={"verb": "rerun", "n": n})
    audit_record(action=AuditAction.JOB_ACTION, actor_label="sergio", target_type="job", target_id="BILLING#1",
                 details={"verb": "hold", "nota": "ação urgente"}, outcome=AuditOutcome.REFUSED)
    audit_record(action=AuditAction.AI_ANSWER, actor_label="olivia", target_type="conversation", target_id="7",
                 details={"sources": ["kb:12"], "question": "Por que o job falhou?"})


def _sequences(path: Path, fmt: str) -> list[int]:
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as handle:
            return [int(row["sequence"]) for row in csv.DictReader(handle)]
    if fmt == "jsonl":
        return [json.loads(line)["sequence"] for line in path.read_text(encoding="utf-8").splitlines()]
    sheet = load_workbook(path, read_only=True)["audit"]
    return [row[0] for row in list(sheet.iter_rows(values_only=True))[1:]]


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx"])
def test_export_contains_exactly_the_filtered_events_and_verifies(fmt: str, tmp_path: Path, capsys: Any) -> None:
    _trail()
    filters = EventFilters(actor="olivia", action=AuditAction.JOB_ACTION)
    expected = list(AuditEvent.objects.filter(actor_label="olivia", action=AuditAction.JOB_ACTION)
                    .order_by("sequence").values_list("sequence", flat=True))
    path = tmp_path / f"out.{fmt}"
    manifest = export_write(filters=filters, fmt=fmt, path=path)

    assert _sequences(path, fmt) == expected == [2, 3, 4]
    assert manifest["row_count"] == 3
    assert manifest["filters"] == {"actor": "olivia", "action": "job.action"}
    assert manifest["first"]["sequence"] == 2 and manifest["last"]["sequence"] == 4
    assert manifest["first"]["hash"] == AuditEvent.objects.get(sequence=2).hash
    assert manifest["time_range"]["from"] <= manifest["time_range"]["to"]
    call_command("audit_verify_export", str(path), str(manifest_path(path)))
    assert capsys.readouterr().out.startswith("OK 3 rows")


@pytest.mark.django_db
def test_xlsx_keeps_formula_like_labels_as_text(tmp_path: Path) -> None:
    _trail()
    path = tmp_path / "out.xlsx"
    export_write(filters=EventFilters(target_id="PAYROLL#0"), fmt="xlsx", path=path)
    sheet = load_workbook(path)["audit"]
    cell = sheet.cell(row=2, column=10)
    assert cell.value == '=HYPERLINK("x")' and cell.data_type == "s"


@pytest.mark.django_db
def test_csv_keeps_formula_like_labels_inert_and_still_verifies(tmp_path: Path, capsys: Any) -> None:
    _trail()
    # Labels that already start with apostrophes must come back exactly as recorded.
    for label in ("'=1+1", "'plain", "@SUM(1+1)", "-2+3+cmd|' /C calc'!A0"):
        audit_record(action=AuditAction.KB_ENTRY_CHANGED, actor_label="ana", target_type="knowledge_entry",
                     target_id="KB-X", target_label=label)
    path = tmp_path / "out.csv"
    export_write(filters=EventFilters(), fmt="csv", path=path)
    with open(path, newline="", encoding="utf-8") as handle:
        labels = [row["target_label"] for row in csv.DictReader(handle)]
    assert "'=HYPERLINK(\"x\")" in labels
    assert labels[-4:] == ["''=1+1", "'plain", "'@SUM(1+1)", "'-2+3+cmd|' /C calc'!A0"]
    call_command("audit_verify_export", str(path), str(manifest_path(path)))
    assert capsys.readouterr().out.startswith("OK 10 rows")


@pytest.mark.django_db
def test_filters_period_outcome_target_and_search_in_details(tmp_path: Path) -> None:
    _trail()
    today = timezone.localdate()

    def rows(**kwargs: Any) -> list[int]:
        path = tmp_path / "f.jsonl"
        export_write(filters=EventFilters(**kwargs), fmt="jsonl", path=path)
        return _sequences(path, "jsonl")

    assert rows(date_from=today, date_to=today) == [1, 2, 3, 4, 5, 6]
    assert rows(date_from=today + timedelta(days=1)) == []
    assert rows(date_to=today - timedelta(days=1)) == []
    assert rows(outcome="refused") == [5]
    assert rows(target_type="job", target_id="BILLING#1") == [5]
    assert rows(q="AÇÃO") == [5]  # case-insensitive, accents kept
    assert rows(q="job falhou") == [6]


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_one_byte_change_in_the_file_is_detected(fmt: str, tmp_path: Path) -> None:
    _trail()
    path = tmp_path / f"out.{fmt}"
    export_write(filters=EventFilters(), fmt=fmt, path=path)
    data = bytearray(path.read_bytes())
    position = data.index(b"rerun")
    data[position] = ord("R")
    path.write_bytes(bytes(data))
    with pytest.raises(CommandError, match="SHA-256"):
        call_command("audit_verify_export", str(path), str(manifest_path(path)))


@pytest.mark.django_db
def test_changed_row_is_detected_even_with_a_matching_manifest(tmp_path: Path) -> None:
    """Someone edits a row and recomputes the manifest's SHA-256: the row's own hash still gives it away."""
    _trail()
    path = tmp_path / "out.csv"
    export_write(filters=EventFilters(), fmt="csv", path=path)
    path.write_text(path.read_text(encoding="utf-8").replace("mallory", "malloryX"), encoding="utf-8")
    manifest_file = manifest_path(path)
    manifest = json.loads(manifest_file.read_text())
    from audit.chain import file_sha256

    manifest["sha256"] = file_sha256(path)
    manifest_file.write_text(json.dumps(manifest))
    result = export_verify(path, manifest_file)
    assert not result.ok
    assert "sequence 1 does not match its hash" in str(result)


@pytest.mark.django_db
def test_a_row_changed_in_the_database_after_export_is_detected(tmp_path: Path) -> None:
    _trail()
    path = tmp_path / "out.jsonl"
    export_write(filters=EventFilters(), fmt="jsonl", path=path)
    assert export_verify(path, manifest_path(path)).ok
    tamper("UPDATE audit_auditevent SET details = %s WHERE sequence = 3", ['{"verb": "cancel"}'])
    result = export_verify(path, manifest_path(path))
    assert not result.ok
    assert "the chain itself is broken: BROKEN at sequence 3" in str(result)


@pytest.mark.django_db
def test_dropped_row_in_the_file_is_detected(tmp_path: Path) -> None:
    _trail()
    path = tmp_path / "out.jsonl"
    export_write(filters=EventFilters(), fmt="jsonl", path=path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:2] + lines[3:]), encoding="utf-8")
    manifest_file = manifest_path(path)
    manifest = json.loads(manifest_file.read_text())
    from audit.chain import file_sha256

    manifest["sha256"] = file_sha256(path)
    manifest_file.write_text(json.dumps(manifest))
    result = export_verify(path, manifest_file)
    assert not result.ok and "the file has 5 rows, the manifest says 6" in str(result)


@pytest.mark.django_db
def test_small_export_runs_at_once_and_is_audited(compliance: Any) -> None:
    _trail()
    export = export_request(acting_user=compliance, filters=EventFilters(action=AuditAction.JOB_ACTION), fmt="csv")
    assert export.status == AuditExport.Status.DONE and export.rows_total == 4
    assert export_file_path(export).exists()
    steps = list(AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORT, target_id=str(export.pk))
                 .values_list("details__step", "actor_label"))
    assert steps == [("requested", "carla"), ("finished", "carla")]
    finished = AuditEvent.objects.get(action=AuditAction.AUDIT_EXPORT, details__step="finished")
    assert finished.details["sha256"] == export.manifest["sha256"]


@pytest.mark.django_db
def test_large_export_runs_in_the_background_with_progress(
    compliance: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AUDIT_EXPORT_INLINE_ROWS = 2
    _trail()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        export = export_request(acting_user=compliance, filters=EventFilters(), fmt="xlsx")
    assert len(callbacks) == 1
    # Seven events so far (the persona's role grant and the trail); the request's own event comes after.
    assert export.status == AuditExport.Status.PENDING and export.rows_total == 7 and export.progress_percent == 0
    audit_record(action=AuditAction.SIGNIN, actor=compliance)  # written while the export waits for a worker
    export_run_task.apply(args=[export.pk])
    export.refresh_from_db()
    # The export is the trail as it stood when requested, however late the worker runs.
    assert export.status == AuditExport.Status.DONE and export.rows_done == 7 and export.progress_percent == 100
    assert export.manifest["last"]["sequence"] == 7
    assert export_verify(export_file_path(export), manifest_path(export_file_path(export))).ok
    export_run(export_id=export.pk)  # a second delivery of the task changes nothing
    assert AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORT, details__step="finished").count() == 1
