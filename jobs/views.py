"""Operators' pages: the live dashboard, a job's page, its log viewer and the action confirmation.

URL patterns (the chat's citations link here):

- ``/dashboard/``: live dashboard (initial state from ``/api/dashboard/``, then ``/ws/dashboard/``).
- ``/jobs/<hwa id>/``: the job's current state, history, predecessors/successors and actions.
- ``/jobs/<hwa id>/log/?from=<n>&to=<m>#L<n>``: the job log, one anchor per line (``#L12``); lines
  ``from``..``to`` are highlighted as cited, and lines that look like failures always are. A
  fragment ``#L12-L18`` highlights that range too (static/js/jobs.js).
- ``/jobs/<hwa id>/action/?action=<rerun|hold|...>``: preview the impact, then confirm with a
  justification (POST); the action runs through ``jobs.services.job_action`` like the chat's.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _

from jobs import selectors, services
from jobs.api import job_act
from jobs.models import JobInstance
from jobs.tws.errors import HwaError
from resync_site.lib.errors import ApplicationError, NotFoundError
from resync_site.roles import OPERATIONS, role_required

# Log lines worth a second look: HWA/job error codes, abends, exceptions, non-zero exits.
FAILURE_LINE = re.compile(
    r"\b(error|erro|abend\w*|abort\w*|fail\w*|falha|exception|denied|negad[oa]|fatal|ORA-\d+|AWS[A-Z]{3}\d{3}E|SQLCODE=-\d+)\b"
    r"|Exit Status\s*:\s*[1-9-]|\bRC=[1-9]",
    re.IGNORECASE,
)
ACTION_LABELS = {
    services.JobAction.RERUN: _("Rerun"),
    services.JobAction.HOLD: _("Hold"),
    services.JobAction.RELEASE: _("Release"),
    services.JobAction.CANCEL: _("Cancel"),
    services.JobAction.KILL: _("Kill"),
    services.JobAction.CONFIRM_SUCC: _("Confirm as successful"),
    services.JobAction.CONFIRM_ABEND: _("Confirm as abended"),
    services.JobAction.RELEASE_DEPENDENCIES: _("Release dependencies"),
}

# Strings dashboard.js shows, translated here and handed over as JSON (no JS catalog needed).
DASHBOARD_STRINGS = {
    "never": _("never"),
    "seconds_ago": _("%s s ago"),
    "minutes_ago": _("%s min ago"),
    "no_failed": _("No failed jobs."),
    "no_late": _("No late jobs."),
    "no_runs": _("No job has started in this plan yet."),
    "critical": _("critical"),
    "failed": _("failed"),
    "linked": _("linked"),
    "unlinked": _("unlinked"),
    "not_running": _("not running"),
    "last_change": _("Last change: %(job)s %(from)s → %(to)s"),
    "abends_label": _("Abends per hour: %s in the last 24 hours"),
    "timeline_label": _("Timeline of the %s most recent runs"),
}


def _job(hwa_id: str) -> JobInstance:
    try:
        return selectors.job_get(hwa_id=hwa_id)
    except NotFoundError as exc:
        raise Http404(exc.message) from exc


def _actions_for(job: JobInstance) -> list[dict[str, str]]:
    """Actions HWA would accept in the job's current (snapshot) state; the preview re-checks live."""
    return [{"value": str(a), "label": str(label)} for a, label in ACTION_LABELS.items()
            if job.status in services.ALLOWED_STATUSES[a] and not job.canceled]


@role_required(*OPERATIONS)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "jobs/dashboard.html", {
        "options": selectors.dashboard_filter_options(),
        "ws_path": "/ws/dashboard/",
        "i18n": {key: str(text) for key, text in DASHBOARD_STRINGS.items()},
    })


@role_required(*OPERATIONS)
def job_detail(request: HttpRequest, hwa_id: str) -> HttpResponse:
    job = _job(hwa_id)
    neighbours, live_error = None, ""
    try:
        neighbours = selectors.job_dependencies(job=job)
    except HwaError as exc:
        live_error = exc.message
    return render(request, "jobs/detail.html", {
        "job": job,
        "history": selectors.job_history(job=job, limit=50),
        "neighbours": neighbours,
        "graph": _graph(job, neighbours) if neighbours else None,
        "live_error": live_error,
        "actions": _actions_for(job),
        "freshness": selectors.plan_freshness(),
    })


def _graph(job: JobInstance, neighbours: selectors.JobDependencies) -> dict[str, Any]:
    """Coordinates for a small three-column SVG: predecessors, the job, successors."""
    row, width, box_w, box_h = 34, 720, 210, 26
    preds, succs = neighbours.predecessors[:12], neighbours.successors[:12]
    rows = max(len(preds), len(succs), 1)
    height = rows * row + 10
    centre_y = height / 2 - box_h / 2

    def column(nodes: list[selectors.NodeSummary], x: int) -> list[dict[str, Any]]:
        top = (height - len(nodes) * row) / 2
        return [{"node": n, "x": x, "y": top + i * row + (row - box_h) / 2, "cy": top + i * row + row / 2} for i, n in enumerate(nodes)]

    left, right = column(preds, 0), column(succs, width - box_w)
    centre = {"x": (width - box_w) // 2, "y": centre_y, "cy": height / 2}
    return {
        "width": width, "height": height, "box_w": box_w, "box_h": box_h, "left": left, "right": right, "centre": centre,
        "in_x1": box_w, "in_x2": centre["x"], "out_x1": centre["x"] + box_w, "out_x2": width - box_w,
        "more_preds": len(neighbours.predecessors) - len(preds), "more_succs": len(neighbours.successors) - len(succs),
    }


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


@role_required(*OPERATIONS)
def job_log(request: HttpRequest, hwa_id: str) -> HttpResponse:
    job = _job(hwa_id)
    first = _int(request.GET.get("from"))
    last = max(first, _int(request.GET.get("to")) or first)
    rows: list[dict[str, Any]] = []
    error = ""
    try:
        log = selectors.job_log_text(job=job)
        rows = [{"n": n, "text": text, "failure": bool(FAILURE_LINE.search(text)), "cited": first and first <= n <= last}
                for n, text in enumerate(log.lines, start=log.from_line)]
    except ApplicationError as exc:  # HwaError included: HWA down or the job never ran
        error = exc.message
    return render(request, "jobs/log.html", {
        "job": job, "rows": rows, "error": error, "first": first, "last": last,
        "failures": [r["n"] for r in rows if r["failure"]][:50],
    })


@role_required(*OPERATIONS)
def job_action(request: HttpRequest, hwa_id: str) -> HttpResponse:
    job = _job(hwa_id)
    action = request.POST.get("action") if request.method == "POST" else request.GET.get("action")
    try:
        action_enum = services.JobAction(action or "")
    except ValueError:
        messages.error(request, _("Choose an action."))
        return redirect("jobs:detail", hwa_id=job.hwa_id)
    context: dict[str, Any] = {"job": job, "action": str(action_enum), "action_label": ACTION_LABELS.get(action_enum, action_enum),
                               "ticket_required": settings.ACTION_TICKET_REQUIRED, "justification": "", "ticket": ""}
    status = 200
    if request.method == "POST":
        justification = request.POST.get("justification", "").strip()
        ticket = request.POST.get("ticket", "").strip()
        context.update(justification=justification, ticket=ticket)
        try:
            result = job_act(user=request.user, job=job, action=str(action_enum), justification=justification, ticket=ticket)
        except ApplicationError as exc:
            context["error"] = exc.message
            status = exc.http_status if 400 <= exc.http_status < 500 else 200
        else:
            messages.success(request, _("%(action)s sent to HWA for %(job)s. Status now: %(status)s.") % {
                "action": context["action_label"], "job": job.name, "status": result["status_after"]})
            return redirect("jobs:detail", hwa_id=job.hwa_id)
    try:
        context["preview"] = services.job_action_preview(job=job, action=action_enum)
    except ApplicationError as exc:
        context.setdefault("error", exc.message)
    return render(request, "jobs/action.html", context, status=status)
