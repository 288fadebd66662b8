"""The compliance pages: browse the trail, export selections, period reports. Read-only for the trail."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from audit.exports import export_downloaded, export_request, manifest_path
from audit.forms import EventFilterForm, ExportForm, ReportForm
from audit.models import AuditArchive, AuditEvent, AuditExport, AuditReport
from audit.reports import report_downloaded, report_request
from audit.selectors import (
    EventFilters,
    event_get,
    event_list,
    export_file_path,
    export_get,
    export_list,
    report_file_path,
    report_get,
    report_list,
)
from resync_site.lib.errors import ApplicationError, NotFoundError
from resync_site.roles import AUDIT_READERS, role_required

PAGE_SIZE = 50

# Where an event's target can be opened, by target type: URL names tried in order (the apps that
# own them may not define every one; a missing name just means no link). Conversations are
# reached through the request id: an AI answer and everything its turn did share it.
TARGET_URL_NAMES: dict[str, tuple[str, ...]] = {
    "job": ("jobs:job_detail", "jobs:detail", "chat:joblog"),
    "knowledge_entry": ("knowledge:entry_detail", "kb-entry"),
    "user": ("admin:auth_user_change",),
    "audit_export": ("audit:export_detail",),
}


def target_url(event: AuditEvent) -> str | None:
    if not event.target_id:
        return None
    for name in TARGET_URL_NAMES.get(event.target_type, ()):
        try:
            return reverse(name, args=[event.target_id])
        except NoReverseMatch:
            continue
    return None


def changes_of(details: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Before/after pairs from the shapes services write: `before`/`after` dicts, or `changes`."""
    rows: list[tuple[str, Any, Any]] = []
    before, after = details.get("before"), details.get("after")
    if isinstance(before, dict) or isinstance(after, dict):
        before, after = before or {}, after or {}
        rows.extend((key, before.get(key), after.get(key)) for key in sorted(set(before) | set(after)))
    changes = details.get("changes")
    if isinstance(changes, dict):
        for key, value in sorted(changes.items()):
            if isinstance(value, list | tuple) and len(value) == 2:
                rows.append((key, value[0], value[1]))
            elif isinstance(value, dict) and ("before" in value or "after" in value):
                rows.append((key, value.get("before"), value.get("after")))
    return rows


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


@require_GET
@role_required(*AUDIT_READERS)
def events(request: HttpRequest) -> HttpResponse:
    form = EventFilterForm(request.GET or None)
    filters = form.filters() if form.is_bound and form.is_valid() else EventFilters()
    before = _int_or_none(request.GET.get("before"))
    found = event_list(user=request.user, filters=filters, before=before, limit=PAGE_SIZE + 1) \
        if not form.is_bound or form.is_valid() else []
    page, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    query = filters.as_dict()
    older = f"?{urlencode({**query, 'before': page[-1].sequence})}" if more else ""
    return render(request, "audit/events.html", {
        "form": form,
        "events": page,
        "older_url": older,
        "newest_url": f"?{urlencode(query)}" if before else "",
        "filters": query,
        "export_form": ExportForm(),
        "filtered": bool(query),
    })


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@require_GET
@role_required(*AUDIT_READERS)
def event_detail(request: HttpRequest, sequence: int) -> HttpResponse:
    try:
        event = event_get(user=request.user, sequence=sequence)
    except NotFoundError as exc:
        raise Http404(exc.message) from exc
    changes = [(key, _as_text(old), _as_text(new)) for key, old, new in changes_of(event.details)]
    related = urlencode({"target_type": event.target_type, "target_id": event.target_id}) if event.target_id else ""
    return render(request, "audit/event_detail.html", {
        "event": event,
        "changes": changes,
        "details_json": json.dumps(event.details, indent=2, ensure_ascii=False, sort_keys=True),
        "target_url": target_url(event),
        "related_query": related,
        "request_query": urlencode({"q": event.request_id}) if event.request_id else "",
    })


@require_http_methods(["GET", "POST"])
@role_required(*AUDIT_READERS)
def exports(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        filter_form, export_form = EventFilterForm(request.POST), ExportForm(request.POST)
        if filter_form.is_valid() and export_form.is_valid():
            try:
                export = export_request(acting_user=request.user, filters=filter_form.filters(),
                                        fmt=export_form.cleaned_data["format"], request=request)
            except ApplicationError as exc:
                messages.error(request, exc.message)
            else:
                return redirect("audit:export_detail", export.pk)
        else:
            messages.error(request, _("The export request is not valid: check the filters."))
    return render(request, "audit/exports.html", {"exports": export_list(user=request.user)[:100]})


def _own_export(request: HttpRequest, pk: int) -> AuditExport:
    try:
        return export_get(user=request.user, export_id=pk)
    except NotFoundError as exc:
        # The same answer for "not yours" and "does not exist": ids reveal nothing.
        raise Http404(exc.message) from exc


@require_GET
@role_required(*AUDIT_READERS)
def export_detail(request: HttpRequest, pk: int) -> HttpResponse:
    export = _own_export(request, pk)
    return render(request, "audit/export_detail.html", {
        "export": export,
        "working": export.status in (AuditExport.Status.PENDING, AuditExport.Status.RUNNING),
        "manifest_json": json.dumps(export.manifest, indent=2, ensure_ascii=False) if export.manifest else "",
    })


CONTENT_TYPES = {
    AuditExport.Format.CSV: "text/csv; charset=utf-8",
    AuditExport.Format.JSONL: "application/x-ndjson; charset=utf-8",
    AuditExport.Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@require_GET
@role_required(*AUDIT_READERS)
def export_download(request: HttpRequest, pk: int, what: str) -> HttpResponse:
    export = _own_export(request, pk)
    if export.status != AuditExport.Status.DONE:
        raise Http404("This export is not ready.")
    path = export_file_path(export)
    if what == "manifest":
        path, content_type = manifest_path(path), "application/json"
    else:
        content_type = CONTENT_TYPES[export.format]
    if not path.exists():
        raise Http404("The export file is gone.")
    export_downloaded(acting_user=request.user, export=export, what=what, request=request)
    # FileResponse streams the file in blocks: memory stays flat however large the export.
    response = FileResponse(open(path, "rb"), as_attachment=True, filename=path.name, content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    return response


@require_http_methods(["GET", "POST"])
@role_required(*AUDIT_READERS)
def reports(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = ReportForm(request.POST)
        if form.is_valid():
            try:
                report_request(acting_user=request.user, period_start=form.cleaned_data["period_start"],
                               period_end=form.cleaned_data["period_end"], language=form.cleaned_data["language"],
                               request=request)
            except ApplicationError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, _("The report is being prepared; it appears below when ready."))
                return redirect("audit:reports")
    else:
        today = timezone.localdate()
        last_month_end = today.replace(day=1) - timedelta(days=1)
        form = ReportForm(initial={"period_start": last_month_end.replace(day=1), "period_end": last_month_end,
                                   "language": request.LANGUAGE_CODE})
    items = list(report_list(user=request.user)[:100])
    return render(request, "audit/reports.html", {
        "form": form,
        "reports": items,
        "working": any(r.status in (AuditReport.Status.PENDING, AuditReport.Status.RUNNING) for r in items),
        "archives": AuditArchive.objects.order_by("-first_sequence")[:20],
    })


@require_GET
@role_required(*AUDIT_READERS)
def report_download(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        report = report_get(user=request.user, report_id=pk)
    except NotFoundError as exc:
        raise Http404(exc.message) from exc
    path = report_file_path(report) if report.file_name else None
    if report.status != AuditReport.Status.DONE or path is None or not path.exists():
        raise Http404("This report is not ready.")
    report_downloaded(acting_user=request.user, report=report, request=request)
    response = FileResponse(open(path, "rb"), as_attachment=True, filename=path.name, content_type="application/pdf")
    response["Cache-Control"] = "private, no-store"
    return response
