"""Period reports: a PDF summary of the trail for a chosen period, in Portuguese or English."""

from __future__ import annotations

import hashlib
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from audit.models import AuditAction, AuditOutcome, AuditReport
from audit.selectors import report_figures, report_file_path
from audit.services import audit_record
from resync_site.lib.errors import ApplicationError, ForbiddenError
from resync_site.roles import AUDIT_READERS, has_role

logger = logging.getLogger(__name__)
# fpdf2 subsets fonts with fontTools, which logs every glyph table at INFO: noise in the worker's log.
logging.getLogger("fontTools").setLevel(logging.WARNING)

MAX_PERIOD_DAYS = 400
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))


# --- Services ------------------------------------------------------------------------------------


def report_request(
    *, acting_user: Any, period_start: date, period_end: date, language: str, request: HttpRequest | None = None
) -> AuditReport:
    """Records the request (audited) and builds the PDF in a worker after commit."""
    if not has_role(acting_user, AUDIT_READERS):
        raise ForbiddenError("Only compliance officers and administrators may create audit reports.")
    _check_period(period_start, period_end, language)
    with transaction.atomic():
        report = AuditReport.objects.create(
            period_start=period_start, period_end=period_end, language=language, requested_by=acting_user
        )
        audit_record(
            action=AuditAction.AUDIT_REPORT, actor=acting_user, request=request, target_type="audit_report",
            target_id=report.pk, target_label=f"{period_start}..{period_end}",
            details={"step": "requested", "period_start": period_start.isoformat(),
                     "period_end": period_end.isoformat(), "language": language},
            outcome=AuditOutcome.PENDING,
        )
        from audit.tasks import report_build_task

        report_id = report.pk
        transaction.on_commit(lambda: report_build_task.delay(report_id))
    return report


def _check_period(period_start: date, period_end: date, language: str) -> None:
    if period_end < period_start:
        raise ApplicationError("The period ends before it starts.", code="bad_period")
    if (period_end - period_start).days > MAX_PERIOD_DAYS:
        raise ApplicationError(f"A report covers at most {MAX_PERIOD_DAYS} days.", code="bad_period")
    if language not in dict(settings.LANGUAGES):
        raise ApplicationError(f"Unknown language {language!r}.", code="bad_language")


def report_build(*, report_id: int) -> None:
    """Computes the figures and writes the PDF. Safe to run twice: only one run claims the report."""
    claimed = AuditReport.objects.filter(pk=report_id, status=AuditReport.Status.PENDING).update(
        status=AuditReport.Status.RUNNING
    )
    if not claimed:
        return
    report = AuditReport.objects.select_related("requested_by").get(pk=report_id)
    actor = report.requested_by
    try:
        figures = report_figures(period_start=report.period_start, period_end=report.period_end)
        requested_by = actor.get_username() if actor else _system_label(report)
        content = report_pdf(figures, language=report.language, requested_by=requested_by)
        report.file_name = f"audit-report-{report.period_start}-{report.period_end}-{report.language}-{report.pk}.pdf"
        path = report_file_path(report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    except Exception as exc:  # recorded on the report and in the trail; a retry would fail the same way
        logger.exception("audit report %s failed", report_id)
        with transaction.atomic():
            AuditReport.objects.filter(pk=report_id).update(
                status=AuditReport.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
            )
            audit_record(action=AuditAction.AUDIT_REPORT, actor=actor, actor_label="" if actor else "system:report",
                         target_type="audit_report", target_id=report_id,
                         details={"step": "failed", "error": str(exc)[:500]}, outcome=AuditOutcome.FAILURE)
        return
    sha256 = hashlib.sha256(content).hexdigest()
    with transaction.atomic():
        AuditReport.objects.filter(pk=report_id).update(
            status=AuditReport.Status.DONE, figures=figures, file_name=report.file_name, sha256=sha256,
            finished_at=timezone.now(),
        )
        audit_record(
            action=AuditAction.AUDIT_REPORT, actor=actor, actor_label="" if actor else "system:report",
            target_type="audit_report", target_id=report_id,
            target_label=f"{report.period_start}..{report.period_end}",
            details={"step": "built", "sha256": sha256, "events": figures["events_total"],
                     "chain_ok": figures["chain_ok"], "language": report.language},
        )


def report_downloaded(*, acting_user: Any, report: AuditReport, request: HttpRequest | None = None) -> None:
    audit_record(action=AuditAction.AUDIT_REPORT, actor=acting_user, request=request, target_type="audit_report",
                 target_id=report.pk, target_label=f"{report.period_start}..{report.period_end}",
                 details={"step": "downloaded", "sha256": report.sha256})


def _system_label(report: AuditReport) -> str:
    return "system (monthly schedule)" if report.scheduled else "system"


def report_monthly(*, today: date | None = None) -> AuditReport | None:
    """The scheduled report of the previous calendar month (once per month, whatever the retries)."""
    today = today or timezone.localdate()
    period_end = today.replace(day=1) - timedelta(days=1)
    period_start = period_end.replace(day=1)
    language = settings.LANGUAGE_CODE
    with transaction.atomic():
        if AuditReport.objects.filter(period_start=period_start, period_end=period_end, scheduled=True).exists():
            return None
        report = AuditReport.objects.create(
            period_start=period_start, period_end=period_end, language=language, scheduled=True
        )
        audit_record(
            action=AuditAction.AUDIT_REPORT, actor_label="system:report", target_type="audit_report",
            target_id=report.pk, target_label=f"{period_start}..{period_end}",
            details={"step": "scheduled", "period_start": period_start.isoformat(),
                     "period_end": period_end.isoformat(), "language": language},
            outcome=AuditOutcome.PENDING,
        )
    report_build(report_id=report.pk)
    report.refresh_from_db()
    return report


# --- The PDF -------------------------------------------------------------------------------------


def _font_files() -> tuple[Path, Path] | None:
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.exists() and bold.exists():
            return regular, bold
    return None


class _ReportPDF(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.font_family, "", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 6, self.clean(self.footer_text), align="L")
        self.set_x(self.l_margin)
        self.cell(0, 6, self.clean(_("Page %(page)s of %(pages)s") % {"page": self.page_no(), "pages": "{nb}"}),
                  align="R")

    def clean(self, text: Any) -> str:
        """Text the current font can draw: DejaVu draws anything; the core font only Latin-1."""
        value = str(text)
        if self.unicode_font:
            return value
        return value.encode("latin-1", "replace").decode("latin-1")

    unicode_font = False


def _date(value: date | str) -> str:
    return formats.date_format(date.fromisoformat(value) if isinstance(value, str) else value, "SHORT_DATE_FORMAT")


def report_pdf(figures: dict[str, Any], *, language: str, requested_by: str) -> bytes:
    """Renders the figures as an A4 PDF in `language`."""
    with translation.override(language):
        return _render(figures, requested_by=requested_by)


def _render(figures: dict[str, Any], *, requested_by: str) -> bytes:
    pdf = _ReportPDF(orientation="portrait", unit="mm", format="A4")
    fonts = _font_files()
    if fonts:
        pdf.add_font("DejaVu", "", str(fonts[0]))
        pdf.add_font("DejaVu", "B", str(fonts[1]))
        family = "DejaVu"
        pdf.unicode_font = True
    else:
        family = "helvetica"
    pdf.set_font(family, "", 10)
    pdf.set_title(_("Audit period report"))
    pdf.set_author("Resync")
    pdf.set_creation_date(timezone.now())
    period = f"{_date(figures['period_start'])} \u2013 {_date(figures['period_end'])}"
    pdf.footer_text = f"Resync · {_('Audit period report')} · {period}"
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.add_page()
    c = pdf.clean

    pdf.set_font(family, "B", 18)
    pdf.cell(0, 10, c(_("Audit period report")), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(family, "", 11)
    pdf.cell(0, 6, c(_("Period: %(period)s") % {"period": period}), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    generated = formats.date_format(timezone.localtime(), "SHORT_DATETIME_FORMAT")
    pdf.cell(0, 6, c(_("Generated %(when)s for %(who)s") % {"when": generated, "who": requested_by}),
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)

    def heading(text: str) -> None:
        if pdf.will_page_break(30):  # never leave a heading alone at the foot of a page
            pdf.add_page()
        pdf.ln(2)
        pdf.set_font(family, "B", 13)
        pdf.set_text_color(18, 38, 63)
        pdf.cell(0, 8, c(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)
        pdf.set_font(family, "", 10)

    def table(header: list[str], rows: list[list[Any]], widths: tuple[int, ...], empty: str) -> None:
        if not rows:
            pdf.set_font(family, "", 10)
            pdf.cell(0, 6, c(empty), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            return
        pdf.set_font(family, "", 9)
        with pdf.table(col_widths=widths, text_align="LEFT", line_height=5.5,
                       headings_style=_heading_style(family)) as grid:
            head = grid.row()
            for text in header:
                head.cell(c(text))
            for row in rows:
                line = grid.row()
                for value in row:
                    line.cell(c("—" if value in ("", None) else value))
        pdf.set_font(family, "", 10)

    heading(_("Chain integrity"))
    ok = figures["chain_ok"] and figures["anchors_ok"]
    pdf.set_text_color(*((30, 107, 50) if ok else (164, 22, 26)))
    pdf.set_font(family, "B", 11)
    verdict = _("Verified: the record was not altered.") if ok else _("BROKEN: the record does not verify.")
    pdf.cell(0, 7, c(verdict), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(family, "", 9)
    pdf.multi_cell(0, 5, c(_("Chain: %(result)s") % {"result": figures["chain_result"]}),
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.multi_cell(0, 5, c(_("Anchors: %(result)s") % {"result": figures["anchors_result"]}),
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    heading(_("Summary"))
    share = figures["ai_answers_cited_share"]
    share_text = "—" if share is None else f"{formats.number_format(share, 1)} %"
    summary = [
        [_("Events in the period"), figures["events_total"]],
        [_("High-risk actions"), len(figures["high_risk"])],
        [_("High-risk actions missing an approver"), figures["high_risk_missing_approver"]],
        [_("Failed sign-ins"), figures["failed_signins"]],
        [_("Lockouts"), figures["lockouts"]],
        [_("Refused requests"), figures["refused"]],
        [_("AI answers"), figures["ai_answers"]],
        [_("AI answers citing sources"), f"{figures['ai_answers_cited']} ({share_text})"],
        [_("Knowledge changes approved"), figures["kb_approved"]],
        [_("Knowledge changes rejected"), figures["kb_rejected"]],
    ]
    table([_("Figure"), _("Value")], summary, (120, 60), "")

    heading(_("Actions by type"))
    labels = dict(AuditAction.choices)
    table([_("Action"), _("Code"), _("Count")],
          [[str(labels.get(row["action"], row["action"])), row["action"], row["count"]] for row in figures["by_action"]],
          (90, 60, 30), _("No events in this period."))

    heading(_("Actions by user"))
    table([_("User"), _("Count")], [[row["actor"], row["count"]] for row in figures["by_user"][:40]], (120, 60),
          _("No events in this period."))

    heading(_("High-risk actions and their approvers"))
    table([_("When"), _("Proposal"), _("Target"), _("Confirmed by"), _("Approved by")],
          [[row["when"], row["proposal_id"], row["target"], row["confirmed_by"], row["approved_by"]]
           for row in figures["high_risk"]],
          (30, 30, 50, 35, 35), _("No high-risk actions in this period."))

    heading(_("Failed sign-ins by user name"))
    table([_("User name"), _("Count")], [[row["username"], row["count"]] for row in figures["failed_signins_by_user"]],
          (120, 60), _("No failed sign-ins in this period."))

    return bytes(pdf.output())


def _heading_style(family: str) -> Any:
    from fpdf.fonts import FontFace

    return FontFace(family=family, emphasis="BOLD", fill_color=(225, 231, 239))
