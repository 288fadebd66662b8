"""What the agent reads and does, as plain values: the one seam between the chat and jobs/knowledge.

The tools (chat/agent/tools.py) only talk to this module; this module only calls the jobs and
knowledge apps' selectors and services. Values are small frozen dataclasses so tool outputs can be
trimmed, cited and serialized without touching ORM rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from chat.agent import tracing

FAILED_STATUSES = frozenset({"ABEND", "FAIL", "ERROR", "STUCK"})


@dataclass(frozen=True)
class JobInfo:
    id: str
    name: str
    stream: str = ""
    workstation: str = ""
    status: str = ""
    common_status: str = ""
    return_code: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    critical: bool = False
    late: bool = False
    priority: int | None = None
    run_id: str | None = None
    unresolved_dependencies: int = 0
    folder: str = ""
    # The plan has a job stream of this name in another folder too: the folder tells them apart.
    show_folder: bool = False

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES or self.common_status in ("ERROR", "BLOCKED")

    @property
    def path(self) -> str:
        """HWA's reference with the folder: `/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA`."""
        return f"{self.folder}{self.stream}.{self.name}" if self.folder and self.stream else self.name

    @property
    def label(self) -> str:
        """STREAM.JOB, with the folder where another folder has a job stream of the same name."""
        if self.show_folder and self.folder:
            return self.path
        return f"{self.stream}.{self.name}" if self.stream else self.name

    def as_data(self) -> dict[str, Any]:
        data = asdict(self)
        del data["show_folder"]
        for key in ("started_at", "ended_at"):
            data[key] = timezone.localtime(data[key]).isoformat() if data[key] else None
        data["ref"] = self.label  # what to pass to the job tools to mean this job
        return {k: v for k, v in data.items() if v not in (None, "", 0, False) or k in ("status", "name")}


@dataclass(frozen=True)
class WorkstationInfo:
    id: str
    name: str
    type: str = ""
    linked: bool = True
    running: bool = True
    limit: int | None = None
    fence: int | None = None
    states: tuple[str, ...] = ()

    def as_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["states"] = list(self.states)
        return data


@dataclass(frozen=True)
class DependencyInfo:
    kind: str
    label: str
    satisfied: bool
    job: JobInfo | None = None


@dataclass(frozen=True)
class Dependencies:
    predecessors: list[DependencyInfo] = field(default_factory=list)
    successors: list[JobInfo] = field(default_factory=list)


@dataclass(frozen=True)
class KbHit:
    id: str
    title: str
    codes: tuple[str, ...] = ()
    cause: str = ""
    solution: str = ""
    score: float = 0.0
    url: str = ""


@dataclass(frozen=True)
class VerifiedHit:
    """An approved question-and-answer the team verified, matched to the person's question."""

    entry: KbHit
    question: str
    similarity: float


@dataclass(frozen=True)
class KbAnswer:
    confident: bool
    hits: list[KbHit] = field(default_factory=list)


@dataclass(frozen=True)
class ActionImpact:
    """What the jobs app says will happen: successors that run or stay blocked, critical jobs hit."""

    allowed: bool
    reason: str = ""
    will_run: list[str] = field(default_factory=list)
    stay_blocked: list[str] = field(default_factory=list)
    critical: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


def _info(job: Any, shared: frozenset[str] = frozenset()) -> JobInfo:
    """A JobInstance row of the plan snapshot as a JobInfo. `shared`: `shared_stream_names()`."""
    return JobInfo(
        id=job.hwa_id, name=job.name, stream=job.stream_name, workstation=job.workstation, status=job.status,
        common_status=job.common_status, return_code=job.return_code, started_at=job.started_at, ended_at=job.ended_at,
        critical=job.critical, late=job.late, priority=job.priority, run_id=job.run_id or None,
        unresolved_dependencies=job.unresolved_dependencies, folder=job.folder or "",
        show_folder=(job.stream_name or "").upper() in shared,
    )


def _node_info(node: Any, folders: dict[str, str] | None = None, shared: frozenset[str] = frozenset()) -> JobInfo:
    """A predecessor or successor; its folder from the snapshot's row (`folders`: HWA id -> folder)."""
    return JobInfo(id=node.hwa_id, name=node.name, stream=node.stream, workstation=node.workstation, status=node.status,
                   critical=node.critical, unresolved_dependencies=node.unresolved_dependencies,
                   folder=(folders or {}).get(node.hwa_id, ""), show_folder=(node.stream or "").upper() in shared)


# --- plan ---------------------------------------------------------------------------------------


# The plan's clock. A real HWA's plan runs on the wall clock; the bundled mock replays a fixed night
# (a date in the past or the future), and windows such as "tonight" must mean that night there. When
# the latest start or end the snapshot records is ahead of the wall clock, or further behind than a
# live plan ever goes quiet, the plan runs on its own clock: its latest activity is "now" (the
# dashboard's abends-per-hour chart reads the plan's clock the same way).
PLAN_CLOCK_SKEW = timedelta(minutes=5)
PLAN_IDLE_LIMIT = timedelta(hours=12)


def plan_now() -> datetime:
    from django.db.models import Max

    from jobs.models import JobInstance

    wall = timezone.now()
    latest = JobInstance.objects.filter(in_plan=True).aggregate(started=Max("started_at"), ended=Max("ended_at"))
    last = max((v for v in latest.values() if v is not None), default=None)
    if last is not None and (last > wall + PLAN_CLOCK_SKEW or last < wall - PLAN_IDLE_LIMIT):
        return last
    return wall


def plan_jobs(
    *,
    name: str | None = None,
    stream: str | None = None,
    workstation: str | None = None,
    statuses: list[str] | None = None,
    failed_only: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    folder: str | None = None,
    limit: int = 20,
) -> tuple[list[JobInfo], int]:
    """Jobs matching the filters (`*`/`@` wildcards in names), and how many matched in total.

    `name` may be a reference with a workstation, folder or stream (`/RH/FOLHA_PAGAMENTO.FP_*`): each
    part filters too. `folder`: that HWA folder only, not its sub-folders (checked by the validation
    layer first). `since`/`until`: only jobs whose run overlaps that window: started before it ends,
    and ended inside it or still running (a job that has not started: scheduled inside it). "What
    abended in the last 6 hours" is an end inside it; "what is running" includes a run that began earlier.
    """
    from django.db.models import Q

    from chat.agent.validation import job_ref_split
    from jobs.selectors import jobs_search
    from jobs.tws.folders import folder_canonical

    folders = [folder] if folder else []
    ref = job_ref_split(name) if name else None
    if ref is not None and not ref.id:  # an id stays a name that no job has, as before
        name = ref.name
        stream = stream or ref.stream or None
        workstation = workstation or ref.workstation or None
        if ref.folder is not None:
            folders.append(ref.folder)
    if len({folder_canonical(f).upper() for f in folders}) > 1:
        return [], 0  # a folder argument and another folder in the name: no job is in both
    wildcard = bool(name and ("*" in name or "@" in name))
    qs = jobs_search(
        name=None if wildcard else name, pattern=name if wildcard else None, stream=stream, workstation=workstation,
        status=statuses, failed=True if failed_only else None, folder=folders[0] if folders else None, limit=None,
    )
    if since is not None or until is not None:
        ran = Q(started_at__isnull=False)
        waiting = Q(started_at__isnull=True, sched_time__isnull=False)
        if until is not None:
            ran &= Q(started_at__lte=until)
            waiting &= Q(sched_time__lte=until)
        if since is not None:
            ran &= Q(ended_at__isnull=True) | Q(ended_at__gte=since)
            waiting &= Q(sched_time__gte=since)
        qs = qs.filter(ran | waiting)
    total = qs.count()
    shared = shared_stream_names()
    return [_info(j, shared) for j in qs[:limit]], total


def job_find(ref: str) -> list[JobInfo]:
    """Jobs `ref` names (an id, or `[WORKSTATION#][/FOLDER/][STREAM.]JOB`); several when the name
    exists in several streams or folders."""
    from chat.agent.validation import job_ref_split
    from jobs.models import JobInstance
    from jobs.selectors import jobs_search

    ref = ref.strip()
    by_id = list(JobInstance.objects.filter(in_plan=True, hwa_id=ref)[:1])
    if by_id:
        return [_info(by_id[0], shared_stream_names())]
    parts = job_ref_split(ref)
    if not parts.name:
        return []
    found = jobs_search(name=parts.name, stream=parts.stream or None, workstation=parts.workstation or None,
                        folder=parts.canonical_folder, limit=None).order_by("folder", "stream_name", "sched_time")[:10]
    shared = shared_stream_names()
    return [_info(j, shared) for j in found]


def stream_jobs(stream: str) -> list[JobInfo]:
    """The jobs of the job stream `stream` names (`[WORKSTATION#][/FOLDER/]STREAM`), in every folder
    that has one when it names none."""
    from chat.agent.validation import job_ref_split
    from jobs.selectors import jobs_search

    parts = job_ref_split(stream)
    if parts.stream or not parts.name:
        return []  # STREAM.JOB names a job, not a stream
    shared = shared_stream_names()
    return [_info(j, shared) for j in jobs_search(stream=parts.name, workstation=parts.workstation or None,
                                                   folder=parts.canonical_folder, limit=100)]


# Live reads (job logs, dependencies) go through Django's cache (Redis in production, local memory
# in the embedded default), shared by every worker: many operators asking about the same failure
# cost HWA one call per LIVE_CACHE_SECONDS. Lists come from the plan snapshot and never call HWA.
LIVE_CACHE_SECONDS = 30
LIVE_FILL_WAIT_SECONDS = 10  # at most this long behind another worker's HWA read (about HWA's timeout)


@dataclass(frozen=True)
class Live:
    """A live read and how old it is (0 when it was just read from HWA)."""

    value: Any
    age_seconds: int
    cached: bool = False


def _live_read(key: str, read: Any, *, span_name: str, **attributes: Any) -> Live:
    import time

    from django.conf import settings
    from django.core.cache import cache

    # Keyed by the HWA master too: the same job id on another master (or test server) is another job.
    key = f"{key}:{hash_text(settings.TWS_URL)}"
    cached = cache.get(key)
    if cached is None and not cache.add(f"{key}:filling", 1, LIVE_FILL_WAIT_SECONDS):
        # Another worker is reading this from HWA right now: wait for its answer rather than
        # sending HWA the same request again (a burst of operators costs one call, not one each).
        deadline = time.monotonic() + LIVE_FILL_WAIT_SECONDS
        while cached is None and time.monotonic() < deadline:
            time.sleep(0.05)
            cached = cache.get(key)
            if cached is None and cache.get(f"{key}:filling") is None:
                break  # that read failed: try ourselves (and get HWA's error first-hand)
    if cached is not None:
        return Live(value=cached[1], age_seconds=max(0, int(time.time() - cached[0])), cached=True)
    try:
        with tracing.span(span_name, **attributes):
            value = read()
        cache.set(key, (time.time(), value), LIVE_CACHE_SECONDS)
    finally:
        cache.delete(f"{key}:filling")
    return Live(value=value, age_seconds=0)


def hash_text(text: str) -> str:
    import hashlib

    return hashlib.blake2s((text or "").encode(), digest_size=8).hexdigest()


def job_log_live(job: JobInfo) -> Live:
    """The job's log lines (current run), read live from HWA through the shared cache."""
    from jobs.models import JobInstance
    from jobs.selectors import job_log_text

    row = JobInstance.objects.filter(hwa_id=job.id).first()
    if row is None:
        from resync_site.lib.errors import NotFoundError

        raise NotFoundError(f"No job {job.label} in the current plan", code="job_not_found")
    return _live_read(f"chat:joblog:{row.hwa_id}:{row.run_id or ''}", lambda: job_log_text(job=row).lines,
                      span_name="hwa.job_log", **{"resync.job": job.label})


def job_log_lines(job: JobInfo) -> list[str]:
    return job_log_live(job).value


def job_dependencies(job: JobInfo) -> Dependencies:
    return job_dependencies_live(job).value


def job_dependencies_live(job: JobInfo) -> Live:
    from jobs.models import JobInstance

    row = JobInstance.objects.filter(hwa_id=job.id).first()
    if row is None:
        return Live(value=Dependencies(), age_seconds=0)
    return _live_read(f"chat:deps:{row.hwa_id}:{row.run_id or ''}:{row.status}", lambda: _dependencies(row),
                      span_name="hwa.job_dependencies", **{"resync.job": job.label})


def _dependencies(row: Any) -> Dependencies:
    from jobs.models import JobInstance
    from jobs.selectors import job_dependencies as live_dependencies

    live = live_dependencies(job=row)
    by_id = {p.hwa_id: p for p in live.predecessors}
    # HWA's nodes name their stream; the snapshot knows each one's folder (one query for them all).
    ids = [n.hwa_id for n in (*live.predecessors, *live.successors)]
    folders = dict(JobInstance.objects.filter(hwa_id__in=ids).values_list("hwa_id", "folder"))
    shared = shared_stream_names()

    def info(node: Any) -> JobInfo:
        return _node_info(node, folders, shared)

    predecessors = []
    for dep in live.dependencies:
        node = by_id.get(dep.job_id or "")
        satisfied = bool(dep.satisfied or (dep.dependency_status or "").upper() == "SATISFIED")
        job = info(node) if node else None
        # HWA's label names no folder: where another folder has a stream of that name, the node's does.
        predecessors.append(DependencyInfo(kind=dep.dependency_type, label=job.label if job and job.show_folder else dep.label,
                                           satisfied=satisfied, job=job))
    listed = {d.job.id for d in predecessors if d.job}
    for node in live.predecessors:
        if node.hwa_id not in listed:
            job = info(node)
            predecessors.append(DependencyInfo(kind="JOB", label=job.label if job.show_folder else f"{node.stream}.{node.name}",
                                               satisfied=node.status == "SUCC", job=job))
    return Dependencies(predecessors=predecessors, successors=[info(n) for n in live.successors])


def workstations(name: str | None = None) -> list[WorkstationInfo]:
    from jobs.selectors import workstations_list

    qs = workstations_list()
    if name:
        qs = qs.filter(name__iexact=name)
    return [
        WorkstationInfo(id=w.hwa_id, name=w.name, type=w.type, linked=w.linked, running=w.running, limit=w.limit,
                        fence=w.fence, states=tuple(w.active_states or ()))
        for w in qs[:100]
    ]


_names_cache: tuple[float, tuple[frozenset[str], frozenset[str], frozenset[str]]] | None = None
NAMES_TTL_SECONDS = 30.0


def known_names() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Job, job stream and workstation names in the plan (for entity recognition), cached briefly."""
    import time

    from jobs.models import JobInstance, JobStream, Workstation

    global _names_cache
    now = time.monotonic()
    if _names_cache is not None and now - _names_cache[0] < NAMES_TTL_SECONDS:
        return _names_cache[1]
    names = (
        frozenset(JobInstance.objects.filter(in_plan=True).values_list("name", flat=True).distinct()),
        frozenset(JobStream.objects.filter(in_plan=True).values_list("name", flat=True).distinct()),
        frozenset(Workstation.objects.filter(in_plan=True).values_list("name", flat=True)),
    )
    _names_cache = (now, names)
    return names


_folders_cache: tuple[float, tuple[frozenset[str], frozenset[str]]] | None = None


def _folder_facts() -> tuple[frozenset[str], frozenset[str]]:
    """The plan's folders, and the job stream names found in more than one folder (upper case)."""
    import time

    from django.db.models import Count
    from django.db.models.functions import Upper

    from jobs.models import JobStream

    global _folders_cache
    now = time.monotonic()
    if _folders_cache is not None and now - _folders_cache[0] < NAMES_TTL_SECONDS:
        return _folders_cache[1]
    # From the job streams (a tenth of the jobs): a job is in its job stream's folder.
    streams = JobStream.objects.filter(in_plan=True).order_by()
    facts = (
        frozenset(streams.values_list("folder", flat=True).distinct()),
        frozenset(streams.annotate(stream=Upper("name")).values("stream")
                  .annotate(folders=Count(Upper("folder"), distinct=True)).filter(folders__gt=1)
                  .values_list("stream", flat=True)),
    )
    _folders_cache = (now, facts)
    return facts


def known_folders() -> frozenset[str]:
    """The folders of the plan's jobs (`/`, `/RH/`, …), cached briefly like `known_names`."""
    return _folder_facts()[0]


def shared_stream_names() -> frozenset[str]:
    """Job stream names (upper case) the plan has in more than one folder: where a label needs the folder."""
    return _folder_facts()[1]


def forget_names() -> None:
    global _names_cache, _folders_cache
    _names_cache = None
    _folders_cache = None


def job_url(job: JobInfo) -> str:
    """The job's page in the jobs app (state, history, dependencies, actions)."""
    from django.urls import reverse

    return reverse("jobs:detail", args=[job.id])


def job_log_url(job: JobInfo, start: int, end: int) -> str:
    """The jobs app's log viewer with lines `start`..`end` marked and scrolled to (see jobs/views.py)."""
    from django.urls import reverse

    return f"{reverse('jobs:log', args=[job.id])}?from={start}&to={end}#L{start}"


# --- knowledge ----------------------------------------------------------------------------------


def kb_search(question: str, *, limit: int = 3) -> KbAnswer:
    from knowledge.retrieval import search

    with tracing.span("qdrant.search", **{"resync.limit": limit}):
        result = search(question, limit=limit)
    hits = [
        KbHit(id=h.external_id, title=h.title, codes=tuple(h.codes), cause=h.cause, solution=h.solution, score=h.score, url=h.url)
        for h in result.hits
    ]
    return KbAnswer(confident=result.confident, hits=hits if result.confident else [])


def verified_answer(question: str) -> VerifiedHit | None:
    """The verified answer matching `question` (its hit is counted), or None."""
    from knowledge.learning import verified_answer_match

    match = verified_answer_match(question)
    if match is None:
        return None
    entry = match.entry
    hit = KbHit(id=entry.external_id, title=entry.title, codes=tuple(entry.error_codes or ()), cause=entry.cause,
                solution=entry.solution, score=match.similarity, url=entry.get_absolute_url())
    return VerifiedHit(entry=hit, question=match.answer.question, similarity=match.similarity)


# --- actions ------------------------------------------------------------------------------------

_JOB_ACTIONS = {"confirm_succ": "confirm-succ", "confirm_abend": "confirm-abend"}


def action_preview(*, action: str, jobs: list[JobInfo], acting_user: Any) -> ActionImpact:
    """The jobs app's live preview for each job, merged (a refusal for any job refuses the lot)."""
    from jobs.services import job_action_preview

    will_run: list[str] = []
    stay_blocked: list[str] = []
    critical: list[str] = []
    refusals: list[str] = []
    for job in jobs[:50]:
        preview = job_action_preview(job=job.id, action=_JOB_ACTIONS.get(action, action))
        if not preview.allowed:
            refusals.append(preview.reason)
        will_run += [f"{n.stream}.{n.name}" for n in preview.will_run]
        stay_blocked += [f"{n.stream}.{n.name}" for n in preview.stay_blocked]
        critical += [f"{n.stream}.{n.name}" for n in preview.critical_affected]
    unique = lambda items: list(dict.fromkeys(items))[:50]  # noqa: E731
    return ActionImpact(allowed=not refusals, reason=" ".join(refusals[:3]), will_run=unique(will_run),
                        stay_blocked=unique(stay_blocked), critical=unique(critical),
                        details={"checked": min(len(jobs), 50), "of": len(jobs)})


def action_execute(
    *, action: str, job: JobInfo, acting_user: Any, justification: str, ticket: str, approvers: list[str]
) -> dict[str, Any]:
    from jobs.services import job_action

    note = f" (approved by {', '.join(approvers)})" if approvers else ""
    result = job_action(acting_user=acting_user, job=job.id, action=_JOB_ACTIONS.get(action, action),
                        justification=justification + note, ticket=ticket)
    return {"status_after": result.status_after, "message": result.message, "audit_sequence": result.audit_sequence}
