from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from audit.models import AuditAction, AuditEvent, AuditOutcome, AuditReport
from audit.reports import report_build, report_monthly, report_pdf, report_request
from audit.retention import anchor_write
from audit.selectors import report_figures, report_file_path
from audit.services import audit_record
from audit.tasks import report_build_task
from audit.tests.conftest import tamper
from resync_site.lib.errors import ApplicationError

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "audit-report"


def _month_of_activity() -> None:
    """Events other parts of Resync write, built with audit_record as they will be."""
    for sources in (["kb:1", "kb:2"], ["run:PAYROLL"], [], None):
        details = {"question": "Por que o job falhou?"} | ({"sources": sources} if sources is not None else {})
        audit_record(action=AuditAction.AI_ANSWER, actor_label="olivia", target_type="conversation", target_id="7",
                     details=details)
    audit_record(action=AuditAction.ACTION_CONFIRMED, actor_label="olivia", target_type="job", target_id="PAYROLL",
                 target_label="PAYROLL_DAILY", details={"proposal_id": "p1", "high_risk": True})
    audit_record(action=AuditAction.ACTION_APPROVED, actor_label="sergio", target_type="job", target_id="PAYROLL",
                 target_label="PAYROLL_DAILY", details={"proposal_id": "p1", "high_risk": True})
    audit_record(action=AuditAction.ACTION_CONFIRMED, actor_label="olivia", target_type="job", target_id="BILLING",
                 target_label="BILLING_CLOSE", details={"proposal_id": "p2", "high_risk": True})
    audit_record(action=AuditAction.ACTION_CONFIRMED, actor_label="olivia", target_type="job", target_id="REPORTS",
                 details={"proposal_id": "p3", "high_risk": False})
    audit_record(action=AuditAction.JOB_ACTION, actor_label="olivia", target_type="job", target_id="PAYROLL",
                 details={"verb": "rerun", "proposal_id": "p1"})
    for username in ("mallory", "mallory", "mallory", "joão"):
        audit_record(action=AuditAction.SIGNIN_FAILED, actor_label="anonymous", target_type="user",
                     target_label=username, outcome=AuditOutcome.FAILURE, details={"username": username})
    for _ in range(2):
        audit_record(action=AuditAction.KB_ENTRY_APPROVED, actor_label="renata", target_type="entry", target_id="12")
    audit_record(action=AuditAction.KB_ENTRY_REJECTED, actor_label="renata", target_type="entry", target_id="13")


def _text(pdf: Path) -> str:
    command = [shutil.which("pdftotext") or "pdftotext", "-layout", str(pdf), "-"]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout


def _render_pages(pdf: Path, prefix: str) -> list[Path]:
    """PNG pages kept in test-artifacts/ so a person can look at the report."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob(f"{prefix}-*.png"):
        old.unlink()
    command = [shutil.which("pdftoppm") or "pdftoppm", "-png", "-r", "80", str(pdf), str(ARTIFACTS / prefix)]
    subprocess.run(command, check=True, timeout=60)
    shutil.copy(pdf, ARTIFACTS / f"{prefix}.pdf")
    return sorted(ARTIFACTS.glob(f"{prefix}-*.png"))


@pytest.mark.django_db
def test_report_figures() -> None:
    _month_of_activity()
    today = timezone.localdate()
    figures = report_figures(period_start=today, period_end=today)
    assert figures["events_total"] == 16
    assert figures["ai_answers"] == 4 and figures["ai_answers_cited"] == 2 and figures["ai_answers_cited_share"] == 50.0
    assert [(r["proposal_id"], r["confirmed_by"], r["approved_by"]) for r in figures["high_risk"]] == [
        ("p1", "olivia", "sergio"), ("p2", "olivia", "")]
    assert figures["high_risk_missing_approver"] == 1
    assert figures["failed_signins"] == 4
    assert figures["failed_signins_by_user"] == [{"username": "mallory", "count": 3}, {"username": "joão", "count": 1}]
    assert figures["kb_approved"] == 2 and figures["kb_rejected"] == 1
    assert {"actor": "olivia", "count": 8} in figures["by_user"]
    assert figures["chain_ok"] and figures["anchors_ok"]

    # Outside the period, nothing is counted.
    yesterday = today - timedelta(days=1)
    assert report_figures(period_start=yesterday, period_end=yesterday)["events_total"] == 0


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (Debian package poppler-utils) is not installed")
@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "pt-br"])
def test_report_pdf_shows_the_figures_and_renders_to_png(language: str, tmp_path: Path) -> None:
    _month_of_activity()
    anchor_write()
    today = timezone.localdate()
    figures = report_figures(period_start=today, period_end=today)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(report_pdf(figures, language=language, requested_by="carla"))

    text = _text(pdf)
    words = {
        "en": ("Audit period report", "Failed sign-ins", "AI answers citing sources", "Knowledge changes approved",
               "Knowledge changes rejected", "Verified: the record was not altered.", "Confirmed by"),
        "pt-br": ("Relatório de auditoria do período", "Entradas com falha", "Respostas da IA que citam fontes",
                  "Mudanças de conhecimento aprovadas", "Mudanças de conhecimento rejeitadas",
                  "Verificado: o registro não foi alterado.", "Confirmado por"),
    }[language]
    for word in words:
        assert word in text, word
    failed, cited, approved, rejected = words[1], words[2], words[3], words[4]
    assert re.search(rf"{failed}\s+4\b", text)
    assert re.search(rf"{cited}\s+2 \(50[.,]0 %\)", text)
    assert re.search(rf"{approved}\s+2\b", text) and re.search(rf"{rejected}\s+1\b", text)
    assert re.search(r"p1\s+PAYROLL_DAILY\s+olivia\s+sergio", text)
    assert re.search(r"mallory\s+3", text) and "joão" in text
    assert "OK 17 events" in text  # the chain verification result (16 events and the anchor's own)

    pages = _render_pages(pdf, f"report-{language}")
    assert pages, "pdftoppm wrote no page"
    for page in pages:
        with Image.open(page) as image:
            assert image.width > 500 and image.height > 700
            # A page that is not blank: a good share of its pixels is ink.
            dark = sum(image.convert("L").histogram()[:128])
            assert dark > 2000, page


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (Debian package poppler-utils) is not installed")
@pytest.mark.django_db
def test_report_shows_a_broken_chain() -> None:
    _month_of_activity()
    tamper("UPDATE audit_auditevent SET details = %s WHERE sequence = 2", ['{"sources": []}'])
    today = timezone.localdate()
    figures = report_figures(period_start=today, period_end=today)
    assert not figures["chain_ok"]
    pdf_bytes = report_pdf(figures, language="en", requested_by="carla")
    path = Path(settings.AUDIT_EXPORT_DIR) / "broken.pdf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdf_bytes)
    text = _text(path)
    assert "BROKEN: the record does not verify." in text and "BROKEN at sequence 2" in text


@pytest.mark.django_db
def test_requested_report_is_built_by_the_worker_stored_and_downloadable(
    client_for: Any, compliance: Any, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _month_of_activity()
    today = timezone.localdate()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(compliance).post(reverse("audit:reports"), {
            "period_start": today.isoformat(), "period_end": today.isoformat(), "language": "pt-br"})
    assert response.status_code == 302 and len(callbacks) == 1
    report = AuditReport.objects.get()
    assert report.status == AuditReport.Status.PENDING and report.requested_by == compliance
    report_build_task.apply(args=[report.pk])
    report.refresh_from_db()
    assert report.status == AuditReport.Status.DONE and report.figures["failed_signins"] == 4
    assert report_file_path(report).read_bytes().startswith(b"%PDF")

    # Any compliance officer or administrator may download stored reports.
    download = client_for(admin_user).get(reverse("audit:report_download", args=[report.pk]))
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    assert b"".join(download.streaming_content).startswith(b"%PDF")
    steps = list(AuditEvent.objects.filter(action=AuditAction.AUDIT_REPORT).values_list("details__step", "actor_label"))
    assert steps == [("requested", "carla"), ("built", "carla"), ("downloaded", "ana")]
    report_build(report_id=report.pk)  # a second delivery changes nothing
    assert AuditEvent.objects.filter(action=AuditAction.AUDIT_REPORT, details__step="built").count() == 1


@pytest.mark.django_db
def test_monthly_report_covers_the_previous_month_once() -> None:
    report = report_monthly(today=date(2026, 3, 5))
    assert report is not None and report.status == AuditReport.Status.DONE
    assert (report.period_start, report.period_end) == (date(2026, 2, 1), date(2026, 2, 28))
    assert report.scheduled and report.requested_by is None and report.language == settings.LANGUAGE_CODE
    assert report_monthly(today=date(2026, 3, 6)) is None
    assert AuditReport.objects.count() == 1
    assert "audit-report-monthly" in settings.CELERY_BEAT_SCHEDULE
    assert settings.CELERY_BEAT_SCHEDULE["audit-anchor-daily"]["task"] == "audit.tasks.anchor_daily"


@pytest.mark.django_db
def test_report_period_is_checked(compliance: Any) -> None:
    with pytest.raises(ApplicationError, match="ends before it starts"):
        report_request(acting_user=compliance, period_start=date(2026, 2, 1), period_end=date(2026, 1, 1),
                       language="en")
    with pytest.raises(ApplicationError, match="language"):
        report_request(acting_user=compliance, period_start=date(2026, 1, 1), period_end=date(2026, 1, 2),
                       language="fr")
