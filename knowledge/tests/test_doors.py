"""The three import doors (admin, API, manage.py), the background run, and who may use what."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from audit.models import AuditAction, AuditEvent
from knowledge import services
from knowledge.models import ImportRun, ImportStatus, KnowledgeEntry
from knowledge.tasks import import_run_execute

pytestmark = pytest.mark.django_db

BAD_ROW = ["KB-2", None, None, "Sintoma sem solução", None, None, None, None, None, None]
GOOD_ROW = ["KB-1", "AWSBHT001E", None, "Job vai para FAIL.", None, "Corrigir e fazer rerun.", None, "Alta", None, None]


# --- API ------------------------------------------------------------------------------------


def _upload(client: Client, data: bytes, name: str = "kb.xlsx", **fields: Any) -> Any:
    return client.post("/api/kb/import/", {"file": SimpleUploadedFile(name, data), **fields}, HTTP_ACCEPT_LANGUAGE="en")


@pytest.mark.parametrize("persona", ["operator", "reviewer", "compliance", "outsider"])
def test_import_api_is_for_admins_only(request: Any, client_for: Callable[..., Client], persona: str,
                                       sample_bytes: bytes) -> None:
    response = _upload(client_for(request.getfixturevalue(persona)), sample_bytes, dry_run="true")
    assert response.status_code == 403
    assert Client().post("/api/kb/import/", {}).status_code in (401, 403)
    assert KnowledgeEntry.objects.count() == 0


def test_import_api_preview_then_background_import_with_progress(
    admin_user: Any, client_for: Callable[..., Client], sample_bytes: bytes, eager_tasks: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(admin_user)
    preview = _upload(client, sample_bytes, "knowledge_base.xlsx", dry_run="true")
    assert preview.status_code == 200
    body = preview.json()
    assert body["status"] == "validated" and body["sheet"] == "Base de Conhecimento"
    assert body["counts"]["new"] == 71 and body["counts"]["invalid"] == 0
    assert KnowledgeEntry.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        started = _upload(client, sample_bytes, "knowledge_base.xlsx")
    assert started.status_code == 202
    run = client.get(started.json()["url"]).json()
    assert run["status"] == "succeeded"
    assert run["progress"] == {"processed": 71, "total": 71, "percent": 100}
    assert KnowledgeEntry.objects.count() == 71
    assert AuditEvent.objects.get(action=AuditAction.KB_IMPORT).actor == admin_user

    search = client.get("/api/kb/search/", {"q": "abend S0C7"}).json()
    assert search["confident"] and search["hits"][0]["external_id"] == "KB-0050"


def test_import_api_explains_refused_files_and_invalid_rows(admin_user: Any, client_for: Callable[..., Client],
                                                            make_workbook: Callable[..., bytes]) -> None:
    client = client_for(admin_user)
    refused = _upload(client, b"binary", "kb.xls")
    assert refused.status_code == 400 and refused.json()["code"] == "import_file_type"

    invalid = _upload(client, make_workbook([GOOD_ROW, BAD_ROW]))
    assert invalid.status_code == 400
    assert invalid.json()["code"] == "import_rows_invalid"
    assert KnowledgeEntry.objects.count() == 0
    run = ImportRun.objects.get()
    assert run.errors == [{"sheet": "KB", "row": 3, "column": "Solução", "reason": "missing solution"}]
    assert invalid.json()["errors"] == run.errors  # the refusal names the rows, columns and reasons itself


def test_search_api_for_knowledge_readers_only(request: Any, client_for: Callable[..., Client],
                                               imported_sample: Any) -> None:
    assert Client().get("/api/kb/search/", {"q": "S0C7"}).status_code in (401, 403)
    for persona in ("outsider", "compliance"):
        assert client_for(request.getfixturevalue(persona)).get("/api/kb/search/", {"q": "S0C7"}).status_code == 403
    response = client_for(request.getfixturevalue("operator")).get("/api/kb/search/", {"q": "abend S0C7", "limit": 3})
    assert response.status_code == 200
    hit = response.json()["hits"][0]
    assert hit["external_id"] == "KB-0050" and hit["url"] == "/kb/KB-0050/" and "error_code:S0C7" in hit["matched"]
    assert len(response.json()["hits"]) == 3
    empty = client_for(request.getfixturevalue("operator")).get("/api/kb/search/", {"q": ""})
    assert empty.status_code == 400


# --- entry page -----------------------------------------------------------------------------


def test_entry_page_for_readers_shows_approved_entries_only(request: Any, client_for: Callable[..., Client],
                                                            make_workbook: Callable[..., bytes]) -> None:
    plan = services.import_plan(data=make_workbook([GOOD_ROW]), file_name="kb.xlsx")
    services.import_apply(acting_user=None, plan=plan)
    operator = client_for(request.getfixturevalue("operator"))
    page = operator.get("/kb/KB-1/")
    assert page.status_code == 200
    assert "Corrigir e fazer rerun." in page.content.decode() and "AWSBHT001E" in page.content.decode()

    assert Client().get("/kb/KB-1/").status_code == 302
    assert client_for(request.getfixturevalue("compliance")).get("/kb/KB-1/").status_code == 403

    reviewer = request.getfixturevalue("reviewer")
    services.entry_retire(acting_user=reviewer, entry=KnowledgeEntry.objects.get(), reason="obsolete")
    assert operator.get("/kb/KB-1/").status_code == 404
    assert client_for(reviewer).get("/kb/KB-1/").status_code == 200


# --- background task ------------------------------------------------------------------------


def test_task_is_safe_to_run_twice_and_to_retry(admin_user: Any, make_workbook: Callable[..., bytes]) -> None:
    run = services.import_run_create(acting_user=admin_user, data=make_workbook([GOOD_ROW]), file_name="kb.xlsx")
    services.import_run_start(acting_user=admin_user, run=run)

    assert import_run_execute.apply(args=[str(run.pk)]).get() == "succeeded"
    assert import_run_execute.apply(args=[str(run.pk)]).get() == "skipped"  # a duplicate delivery
    assert KnowledgeEntry.objects.count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.KB_ENTRY_CREATED).count() == 1

    # A running run is not taken by a second delivery, however old its start: only the recovery
    # sweep (knowledge/tests/test_recovery.py) queues a run again, when its heartbeat stops.
    ImportRun.objects.filter(pk=run.pk).update(status=ImportStatus.RUNNING, started_at="2000-01-01T00:00:00Z")
    assert import_run_execute.apply(args=[str(run.pk)]).get() == "skipped"
    run.refresh_from_db()
    assert run.attempts == 1 and run.processed == 1 and KnowledgeEntry.objects.count() == 1


def test_a_running_run_is_not_started_again(admin_user: Any, make_workbook: Callable[..., bytes]) -> None:
    run = services.import_run_create(acting_user=admin_user, data=make_workbook([GOOD_ROW]), file_name="kb.xlsx")
    services.import_run_start(acting_user=admin_user, run=run)
    assert services.import_run_claim(run_id=str(run.pk)) is not None
    assert services.import_run_claim(run_id=str(run.pk)) is None
    with pytest.raises(services.ConflictError):
        services.import_run_start(acting_user=admin_user, run=run)


# --- admin ----------------------------------------------------------------------------------


def test_admin_upload_preview_confirm_and_progress(admin_user: Any, client_for: Callable[..., Client],
                                                   make_workbook: Callable[..., bytes], eager_tasks: None,
                                                   django_capture_on_commit_callbacks: Any) -> None:
    client = client_for(admin_user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    assert client.get("/admin/knowledge/knowledgeentry/").status_code == 200
    assert client.get("/admin/knowledge/knowledgeentry/import-workbook/").status_code == 200
    response = client.post("/admin/knowledge/knowledgeentry/import-workbook/",
                           {"file": SimpleUploadedFile("kb.xlsx", make_workbook([GOOD_ROW, BAD_ROW]))})
    assert response.status_code == 302
    preview = client.get(response["Location"]).content.decode()
    assert "missing solution" in preview and "Import only the valid rows" in preview
    assert KnowledgeEntry.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        client.post(response["Location"], {"mode": "only_valid"})
    run = ImportRun.objects.get()
    assert run.status == ImportStatus.SUCCEEDED and run.progress_percent == 100
    assert "<progress" in client.get(response["Location"]).content.decode()
    assert list(KnowledgeEntry.objects.values_list("external_id", flat=True)) == ["KB-1"]


def test_admin_import_is_refused_to_reviewers_who_still_curate(reviewer: Any, client_for: Callable[..., Client],
                                                               make_workbook: Callable[..., bytes]) -> None:
    plan = services.import_plan(data=make_workbook([GOOD_ROW]), file_name="kb.xlsx")
    services.import_apply(acting_user=None, plan=plan)
    client = client_for(reviewer)
    assert client.get("/admin/knowledge/knowledgeentry/import-workbook/").status_code == 403
    entry = KnowledgeEntry.objects.get()
    response = client.post(
        "/admin/knowledge/knowledgeentry/",
        {"action": "retire_selected", "_selected_action": [entry.pk]},
    )
    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.status == "retired"
    event = AuditEvent.objects.get(action=AuditAction.KB_ENTRY_RETIRED)
    assert event.actor == reviewer and event.target_id == "KB-1"


# --- manage.py ------------------------------------------------------------------------------


def test_kb_import_command_dry_run_then_import(make_workbook: Callable[..., bytes], tmp_path: Any) -> None:
    path = tmp_path / "kb.xlsx"
    path.write_bytes(make_workbook([GOOD_ROW]))
    out = StringIO()
    call_command("kb_import", str(path), "--dry-run", stdout=out)
    assert "new 1" in out.getvalue() and KnowledgeEntry.objects.count() == 0

    call_command("kb_import", str(path), stdout=out)
    assert "imported: new 1" in out.getvalue() and KnowledgeEntry.objects.count() == 1

    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(make_workbook([GOOD_ROW, BAD_ROW]))
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("kb_import", str(bad), stdout=StringIO())


def test_admin_edit_is_a_service_call_with_history_and_audit(reviewer: Any, client_for: Callable[..., Client],
                                                              make_workbook: Callable[..., bytes]) -> None:
    services.import_apply(acting_user=None, plan=services.import_plan(data=make_workbook([GOOD_ROW]), file_name="kb.xlsx"))
    entry = KnowledgeEntry.objects.get()
    form = {
        "title": entry.title, "symptom": entry.symptom, "error_codes": '["AWSBHT001E", "rc 8"]', "job_patterns": "[]",
        "workstations": "[]", "cause": "", "solution": "Corrigir permissões do stdlist e fazer rerun.", "category": "",
        "severity": "high", "owner_team": "", "language": "pt", "status": "retired", "source_updated_on": "",
        "revalidate_on": "2027-01-31",
    }
    response = client_for(reviewer).post(f"/admin/knowledge/knowledgeentry/{entry.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    entry.refresh_from_db()
    assert entry.solution == "Corrigir permissões do stdlist e fazer rerun." and entry.status == "retired"
    assert entry.error_codes == ["AWSBHT001E", "RC=8"]
    assert entry.history.latest().history_user == reviewer
    actions = list(AuditEvent.objects.filter(target_id="KB-1", actor=reviewer).values_list("action", flat=True))
    assert actions == [AuditAction.KB_ENTRY_CHANGED, AuditAction.KB_ENTRY_RETIRED]
