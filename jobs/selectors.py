"""Reads over the plan snapshot (and a few live reads through the HWA client).

For the dashboard and the chat agent: jobs by name, pattern, status, stream, workstation, folder and
time window; one job's details and history; its dependencies, predecessors and successors (live: HWA
list results carry no dependencies); its job log (live); workstations; job streams; the snapshot's
freshness. Callers check the person's role (`resync_site.roles.OPERATIONS`) before calling.

A `folder` argument selects that HWA folder only (not its sub-folders), ignoring case and the
slashes around it (`RH` is `/RH/`). Check text a person typed with `jobs.tws.folders.folder_parse`
first, for a clear error instead of an empty result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from jobs.models import JobInstance, JobStream, PlanState, StatusChange, Workstation
from jobs.tws.client import HwaClient, get_client
from jobs.tws.folders import folder_canonical
from jobs.tws.models import FAILED_JOB_STATUSES, Dependency, FlowNode
from resync_site.lib.errors import ApplicationError, NotFoundError


@dataclass(frozen=True)
class PlanFreshness:
    stale: bool
    last_success_at: datetime | None
    age_seconds: float | None
    error_code: str
    error_message: str
    job_count: int


def plan_freshness() -> PlanFreshness:
    state = PlanState.objects.filter(pk=1).first()
    if state is None:
        return PlanFreshness(True, None, None, "never_polled", "The plan has not been read from HWA yet.", 0)
    age = (timezone.now() - state.last_success_at).total_seconds() if state.last_success_at else None
    return PlanFreshness(state.stale or state.last_success_at is None, state.last_success_at, age, state.error_code,
                         state.error_message, state.job_count)


def _in_folder[Q: QuerySet](qs: Q, folder: str | None) -> Q:
    # iexact is UPPER(folder) = UPPER(%s): the models' UPPER(folder) indexes serve it.
    return qs.filter(folder__iexact=folder_canonical(folder)) if folder else qs


def _names(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value.upper()] if isinstance(value, str) else [v.upper() for v in value]


def jobs_search(
    *,
    name: str | None = None,
    pattern: str | None = None,
    status: str | Iterable[str] | None = None,
    common_status: str | Iterable[str] | None = None,
    stream: str | None = None,
    workstation: str | None = None,
    folder: str | None = None,
    failed: bool | None = None,
    critical: bool | None = None,
    late: bool | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    ended_after: datetime | None = None,
    ended_before: datetime | None = None,
    changed_after: datetime | None = None,
    limit: int | None = 200,
) -> QuerySet[JobInstance]:
    """Jobs in the current plan. `pattern` takes `*` or HWA's `@` as wildcards (case-insensitive)."""
    qs = JobInstance.objects.filter(in_plan=True)
    if name:
        qs = qs.filter(name__iexact=name.strip())
    if pattern:
        parts = pattern.strip().replace("@", "*").split("*")
        regex = "^" + ".*".join(_re_escape(p) for p in parts) + "$"
        qs = qs.filter(name__iregex=regex)
    if (statuses := _names(status)) is not None:
        qs = qs.filter(status__in=statuses)
    if (commons := _names(common_status)) is not None:
        qs = qs.filter(common_status__in=commons)
    if stream:
        qs = qs.filter(stream_name__iexact=stream.strip())
    if workstation:
        qs = qs.filter(workstation__iexact=workstation.strip())
    qs = _in_folder(qs, folder)
    if failed is not None:
        condition = Q(status__in=FAILED_JOB_STATUSES)
        qs = qs.filter(condition) if failed else qs.exclude(condition)
    if critical is not None:
        qs = qs.filter(critical=critical)
    if late is not None:
        qs = qs.filter(late=late)
    if started_after:
        qs = qs.filter(started_at__gte=started_after)
    if started_before:
        qs = qs.filter(started_at__lt=started_before)
    if ended_after:
        qs = qs.filter(ended_at__gte=ended_after)
    if ended_before:
        qs = qs.filter(ended_at__lt=ended_before)
    if changed_after:
        qs = qs.filter(status_changed_at__gte=changed_after)
    qs = qs.order_by("sched_time", "stream_name", "name")
    return qs[:limit] if limit else qs


def _re_escape(text: str) -> str:
    import re

    return re.escape(text)


def job_get(*, hwa_id: str | None = None, name: str | None = None, stream: str | None = None) -> JobInstance:
    """One job by its HWA id, or by name (and stream when the name is not unique)."""
    qs = JobInstance.objects.filter(in_plan=True)
    if hwa_id:
        job = qs.filter(hwa_id=hwa_id).first()
    elif name:
        candidates = list(qs.filter(name__iexact=name.strip(), **({"stream_name__iexact": stream.strip()} if stream else {}))[:10])
        if len(candidates) > 1:
            raise ApplicationError(
                f"{len(candidates)} jobs are named {name}: say which job stream",
                code="ambiguous_job",
                extra={"candidates": [f"{c.stream_name}.{c.name}" for c in candidates]},
            )
        job = candidates[0] if candidates else None
    else:
        raise ApplicationError("Name a job", code="job_required")
    if job is None:
        raise NotFoundError(f"No job {name or hwa_id} in the current plan", code="job_not_found")
    return job


def job_history(*, job: JobInstance, limit: int = 50) -> QuerySet[StatusChange]:
    return StatusChange.objects.filter(job_hwa_id=job.hwa_id).order_by("-observed_at", "-id")[:limit]


def status_changes(*, since: datetime | None = None, statuses: Iterable[str] | None = None, folder: str | None = None,
                   limit: int = 200) -> QuerySet[StatusChange]:
    qs = _in_folder(StatusChange.objects.all(), folder)
    if since:
        qs = qs.filter(observed_at__gte=since)
    if statuses:
        qs = qs.filter(to_status__in=[s.upper() for s in statuses])
    return qs.order_by("-observed_at", "-id")[:limit]


def status_counts() -> dict[str, int]:
    return dict(JobInstance.objects.filter(in_plan=True).values_list("status").annotate(n=Count("id")).values_list("status", "n"))


def workstations_list(*, linked: bool | None = None, folder: str | None = None) -> QuerySet[Workstation]:
    qs = _in_folder(Workstation.objects.filter(in_plan=True), folder)
    return qs.filter(linked=linked) if linked is not None else qs


def job_streams_list(*, name: str | None = None, status: str | Iterable[str] | None = None, workstation: str | None = None,
                     folder: str | None = None) -> QuerySet[JobStream]:
    qs = _in_folder(JobStream.objects.filter(in_plan=True), folder)
    if name:
        qs = qs.filter(name__iexact=name.strip())
    if (statuses := _names(status)) is not None:
        qs = qs.filter(status__in=statuses)
    if workstation:
        qs = qs.filter(workstation__iexact=workstation.strip())
    return qs


@dataclass(frozen=True)
class NodeSummary:
    hwa_id: str
    name: str
    stream: str
    workstation: str
    status: str
    critical: bool
    unresolved_dependencies: int = 0

    @classmethod
    def from_flow_node(cls, node: FlowNode) -> NodeSummary:
        stats = node.dependencies_stats
        return cls(node.id, node.name, node.job_stream_name or "", node.workstation or "", node.status, node.critical,
                   stats.number_of_unresolved_dependencies if stats else 0)


@dataclass(frozen=True)
class JobDependencies:
    dependencies: list[Dependency] = field(default_factory=list)
    predecessors: list[NodeSummary] = field(default_factory=list)
    successors: list[NodeSummary] = field(default_factory=list)


def job_dependencies(*, job: JobInstance, depth: int = 1, client: HwaClient | None = None) -> JobDependencies:
    """Live from HWA: the job's own dependencies (with satisfied flags), its predecessors and successors
    up to `depth` levels. Raises `jobs.tws.errors.HwaError` (e.g. `HwaUnavailable`) when HWA cannot answer."""
    client = client or get_client()
    detail = client.job(job.hwa_id)
    return JobDependencies(
        dependencies=list(detail.dependencies),
        predecessors=[NodeSummary.from_flow_node(n) for n in client.job_predecessors(job.hwa_id, depth=depth)],
        successors=[NodeSummary.from_flow_node(n) for n in client.job_successors(job.hwa_id, depth=depth)],
    )


@dataclass(frozen=True)
class JobLog:
    job_hwa_id: str
    run_id: str
    from_line: int
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def to_line(self) -> int:
        return self.from_line + len(self.lines) - 1


def job_log_text(*, job: JobInstance, from_line: int | None = None, to_line: int | None = None, client: HwaClient | None = None) -> JobLog:
    """The job's current run's stdlist, read live from HWA. The text is untrusted data (never
    instructions). Raises `NotFoundError` when the job never ran, `HwaError` when HWA cannot answer."""
    client = client or get_client()
    run_id = job.run_id
    if not run_id:
        raise NotFoundError(f"{job.name} has not run yet: there is no job log", code="joblog_not_found")
    text = client.job_log(run_id, from_line=from_line, to_line=to_line)
    lines = text.splitlines()
    return JobLog(job.hwa_id, run_id, from_line or 1, lines)


# --- Dashboard (issue 6) ------------------------------------------------------------------------
# Aggregates for the live dashboard's first paint: a fixed number of queries whatever the plan's
# size, so 500 dashboards reconnecting after a blip cost 500 x that, not 500 x jobs.

DASHBOARD_LIST_LIMIT = 100
DASHBOARD_TIMELINE_LIMIT = 300
DASHBOARD_STREAM_LIMIT = 60


@dataclass(frozen=True)
class DashboardFilters:
    workstation: str = ""
    stream: str = ""
    statuses: tuple[str, ...] = ()
    folder: str = ""

    def apply(self, qs: QuerySet[JobInstance]) -> QuerySet[JobInstance]:
        qs = _in_folder(qs, self.folder)
        if self.workstation:
            qs = qs.filter(workstation__iexact=self.workstation)
        if self.stream:
            qs = qs.filter(stream_name__iexact=self.stream)
        if self.statuses:
            qs = qs.filter(status__in=[s.upper() for s in self.statuses])
        return qs


def _job_row(job: JobInstance) -> dict[str, object]:
    return {
        "id": job.hwa_id, "name": job.name, "stream": job.stream_name, "folder": job.folder, "workstation": job.workstation,
        "status": job.status, "common_status": job.common_status, "return_code": job.return_code,
        "critical": job.critical, "late": job.late,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "ended_at": job.ended_at.isoformat() if job.ended_at else None,
        "deadline": job.deadline.isoformat() if job.deadline else None,
    }


_ROW_FIELDS = ("hwa_id", "name", "stream_name", "folder", "workstation", "status", "common_status", "return_code", "critical",
               "late", "started_at", "ended_at", "deadline")


def dashboard_snapshot(*, filters: DashboardFilters | None = None) -> dict[str, object]:
    """Everything the dashboard paints before it applies `jobs.diff` events: counts by status,
    failed and late jobs, workstation health, stream progress, the plan's run timeline and abends
    per hour; `seq` is the last event already reflected here (PlanState.event_seq)."""
    from datetime import timedelta

    from django.db.models.functions import TruncHour

    from jobs.tws.models import FINAL_JOB_STATUSES

    filters = filters or DashboardFilters()
    state = PlanState.objects.filter(pk=1).first()
    jobs = filters.apply(JobInstance.objects.filter(in_plan=True)).only(*_ROW_FIELDS)
    counts = dict(jobs.order_by().values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    failed = [_job_row(j) for j in jobs.filter(status__in=FAILED_JOB_STATUSES).order_by("-ended_at", "name")[:DASHBOARD_LIST_LIMIT]]
    late = [_job_row(j) for j in jobs.filter(late=True).exclude(status__in=FINAL_JOB_STATUSES)
            .order_by("deadline", "sched_time", "name")[:DASHBOARD_LIST_LIMIT]]
    timeline = [_job_row(j) for j in jobs.filter(started_at__isnull=False).order_by("-started_at")[:DASHBOARD_TIMELINE_LIMIT]]
    streams = list(
        jobs.order_by().values("stream_name", "folder", "workstation")
        .annotate(total=Count("id"), done=Count("id", filter=Q(status__in=FINAL_JOB_STATUSES)),
                  failed=Count("id", filter=Q(status__in=FAILED_JOB_STATUSES)))
        .order_by("-failed", "done", "stream_name")[:DASHBOARD_STREAM_LIMIT]
    )
    # Abends per hour over the 24 hours up to the plan's latest end (the plan's clock, which for the
    # mock is a simulated night, not the wall clock).
    last_end = jobs.filter(ended_at__isnull=False).order_by("-ended_at").values_list("ended_at", flat=True).first()
    window_end = timezone.localtime(last_end or timezone.now()).replace(minute=0, second=0, microsecond=0)
    window_start = window_end - timedelta(hours=23)
    per_hour = dict(
        jobs.filter(status__in=FAILED_JOB_STATUSES, ended_at__gte=window_start)
        .annotate(hour=TruncHour("ended_at", tzinfo=timezone.get_current_timezone())).order_by()
        .values_list("hour").annotate(n=Count("id")).values_list("hour", "n")
    )
    hours = [window_start + timedelta(hours=i) for i in range(24)]
    abends = [{"hour": h.isoformat(), "count": per_hour.get(h, 0)} for h in hours]
    workstations = list(Workstation.objects.filter(in_plan=True).order_by("name").values("name", "type", "os", "linked", "running"))
    fresh = plan_freshness()
    return {
        "seq": state.event_seq if state else 0,
        "freshness": {
            "stale": fresh.stale, "last_success_at": fresh.last_success_at.isoformat() if fresh.last_success_at else None,
            "age_seconds": round(fresh.age_seconds) if fresh.age_seconds is not None else None,
            "error_code": fresh.error_code, "error_message": fresh.error_message, "job_count": fresh.job_count,
        },
        "filters": {"workstation": filters.workstation, "stream": filters.stream, "folder": filters.folder,
                    "statuses": list(filters.statuses)},
        "counts": counts,
        "failed": failed,
        "late": late,
        "timeline": timeline,
        "streams": [{"name": s["stream_name"], "folder": s["folder"], "workstation": s["workstation"], "total": s["total"], "done": s["done"],
                     "failed": s["failed"]} for s in streams],
        "abends_per_hour": abends,
        "workstations": workstations,
        "workstation_health": {
            "linked": sum(1 for w in workstations if w["linked"] and w["running"]),
            "unlinked": sum(1 for w in workstations if not w["linked"]),
            "not_running": sum(1 for w in workstations if w["linked"] and not w["running"]),
        },
    }


def dashboard_filter_options() -> dict[str, list[str]]:
    """Names for the dashboard's filter drop-downs."""
    jobs = JobInstance.objects.filter(in_plan=True).order_by()
    return {
        "workstations": sorted(Workstation.objects.filter(in_plan=True).values_list("name", flat=True)),
        "streams": sorted(set(jobs.values_list("stream_name", flat=True).distinct())),
        "statuses": sorted(set(jobs.values_list("status", flat=True).distinct())),
        "folders": sorted(set(jobs.values_list("folder", flat=True).distinct())),
    }


def status_events_list(*, since: datetime | None = None, statuses: Iterable[str] | None = None,
                       job_hwa_id: str | None = None, folder: str | None = None) -> QuerySet[StatusChange]:
    """Unsliced (the API paginates it): status changes newest first."""
    qs = _in_folder(StatusChange.objects.all(), folder)
    if since:
        qs = qs.filter(observed_at__gte=since)
    if statuses:
        qs = qs.filter(to_status__in=[s.upper() for s in statuses])
    if job_hwa_id:
        qs = qs.filter(job_hwa_id=job_hwa_id)
    return qs.order_by("-observed_at", "-id")
