"""The agent's tools: typed arguments, trimmed outputs, citations. Read-only except `propose_action`.

Both answer modes call tools through `tool_run`, which validates the arguments, records the call
(`ToolCall`), emits `tool_call` / `tool_result` / `citation` events and returns the trimmed data
the model (or the no-LLM composer) may use. Tool output is data: nothing in it is ever executed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chat.agent import sources, tracing, validation
from chat.agent.sources import JobInfo
from knowledge import learning
from resync_site.lib.errors import ApplicationError

LOG_CONTEXT_BEFORE = 12
LOG_CONTEXT_AFTER = 6
LOG_MAX_LINE_CHARS = 300
MAX_LIST = 25

_ERROR_LINE = re.compile(
    r"(?i)\b(AWS[A-Z]{3}\d{3}E|ORA-\d{5}|S0C\d|abend|error|erro|exception|failed|falha|fatal|exit status\s*[:=]?\s*[1-9]|rc\s*=\s*[1-9])"
)


class Args(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


# Room for the longest reference HWA allows (folders alone reach 800 characters), so that a longer one
# is refused by the validation layer (a clear message, audited) rather than by the argument parser.
MAX_REF_CHARS = 1000


class PlanQueryArgs(Args):
    name: str | None = Field(None, max_length=MAX_REF_CHARS,
                             description="Job name, or a pattern with * wildcards; may carry its folder: /RH/FP_*")
    status: list[str] | None = Field(None, description="Internal statuses such as ABEND, EXEC, HOLD, READY, SUCC")
    failed_only: bool = Field(False, description="Only jobs that failed (ABEND, FAIL, ERROR, STUCK)")
    job_stream: str | None = Field(None, max_length=120)
    workstation: str | None = Field(None, max_length=120)
    folder: str | None = Field(None, max_length=MAX_REF_CHARS,
                               description="HWA folder path such as /FINANCEIRO/ or /FINANCEIRO/TESOURARIA/: jobs of the job "
                                           "streams in that folder only (not its sub-folders); / is the root folder")
    # A time window (bounded by the validation layer): jobs that started or ended inside it.
    last_hours: float | None = Field(None, description="Only jobs that started or ended in the last N hours (at most 168)")
    since: str | None = Field(None, max_length=40, description="Window start: HH:MM (its latest occurrence) or an ISO 8601 date-time")
    until: str | None = Field(None, max_length=40, description="Window end (default: now): HH:MM or an ISO 8601 date-time")
    limit: int = Field(20, ge=1, le=MAX_LIST)


class JobArgs(Args):
    job: str = Field(..., min_length=1, max_length=MAX_REF_CHARS,
                     description="Job name, STREAM.JOB, with its folder /FOLDER/STREAM.JOB or WORKSTATION#/FOLDER/STREAM.JOB, "
                                 "or id. When a name exists in several folders, give the folder.")


class WorkstationArgs(Args):
    workstation: str | None = Field(None, max_length=120, description="Workstation name; empty for all")


class KbSearchArgs(Args):
    question: str = Field(..., min_length=2, max_length=1000)


class ProposeActionArgs(Args):
    action: Literal["rerun", "hold", "release", "cancel", "kill", "confirm_succ", "confirm_abend"]
    jobs: list[str] = Field(..., min_length=1, max_length=200,
                            description="Job names (STREAM.JOB, /FOLDER/STREAM.JOB when the name is in several folders) or ids")
    reason: str = Field("", max_length=1000)


@dataclass
class ToolContext:
    """What a tool run knows about the turn it serves."""

    user: Any
    conversation_id: Any
    turn_id: Any
    question: str
    language: str
    emitter: Any = None
    step: int = 0
    # The action the person asked for in their own words (recognized from the question only).
    requested_action: str | None = None
    # The jobs, streams and patterns the person named (`validation.named_targets`): a proposal's only targets.
    named: frozenset[str] = frozenset()
    cited: dict[str, int] = field(default_factory=dict)  # citation id -> its [n] in the answer
    sources_used: list[str] = field(default_factory=list)
    tools_called: list[str] = field(default_factory=list)
    proposals: list[str] = field(default_factory=list)
    # The tools the answering agent may use (None: all); see chat.agent.manager.
    allowed_tools: frozenset[str] | None = None
    agent: str = ""


@dataclass
class ToolResult:
    data: dict[str, Any]
    summary: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    refs: list[int] = field(default_factory=list)  # the [n] of each citation, in order


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[Args]
    run: Callable[[Any, ToolContext], ToolResult]

    def schema(self) -> dict[str, Any]:
        """The tool's JSON schema for the LLM: built once (pydantic takes milliseconds per tool, on
        every turn's path to its first token), handed out as a fresh copy each time."""
        key = (self.name, self.description, self.args)
        cached = _SCHEMAS.get(key)
        if cached is None:
            params = self.args.model_json_schema()
            params.pop("title", None)
            cached = _SCHEMAS[key] = json.dumps(
                {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": params}})
        return json.loads(cached)


_SCHEMAS: dict[tuple[str, str, type[Args]], str] = {}


REGISTRY: dict[str, Tool] = {}


def tool(name: str, description: str, args: type[Args]) -> Callable[[Callable[[Any, ToolContext], ToolResult]], Callable[[Any, ToolContext], ToolResult]]:
    def register(fn: Callable[[Any, ToolContext], ToolResult]) -> Callable[[Any, ToolContext], ToolResult]:
        REGISTRY[name] = Tool(name=name, description=description, args=args, run=fn)
        return fn

    return register


def tool_schemas(allowed: frozenset[str] | None = None) -> list[dict[str, Any]]:
    return [t.schema() for t in REGISTRY.values() if allowed is None or t.name in allowed]


# --- citations ----------------------------------------------------------------------------------


def plan_citation(job: JobInfo) -> dict[str, Any]:
    return {"kind": "plan", "id": f"job:{job.id}", "title": f"{job.label} ({job.status or '?'})", "url": sources.job_url(job)}


def joblog_citation(job: JobInfo, start: int, end: int) -> dict[str, Any]:
    url = sources.job_log_url(job, start, end)
    return {
        "kind": "joblog",
        "id": f"joblog:{job.id}:{start}-{end}",
        "title": f"{job.label} log, lines {start}-{end}",
        "url": url,
        "lines": [start, end],
    }


def kb_citation(hit: sources.KbHit) -> dict[str, Any]:
    return {"kind": "kb", "id": hit.id, "title": f"{hit.id}: {hit.title}", "url": hit.url}


def _age(live: sources.Live) -> str:
    # Cached live reads say how old they are, so nobody mistakes a 20 s old log for the current one.
    return f" (cached: read from HWA {live.age_seconds} s ago)" if live.cached else ""


def _with_plan_age(result: ToolResult) -> ToolResult:
    """Marks a result read from the plan snapshot when the poller could not refresh it: a status from
    the last good read must not pass for the live one (the answer says it is stale, and how old)."""
    from jobs.selectors import plan_freshness

    fresh = plan_freshness()
    if fresh.stale:
        minutes = None if fresh.age_seconds is None else int(fresh.age_seconds // 60)
        result.data["plan_stale"] = {"last_read_at": fresh.last_success_at.isoformat() if fresh.last_success_at else None,
                                     "age_minutes": minutes, "error": fresh.error_message[:200]}
        result.summary += (f" (stale: from the last plan read, {minutes} min ago; HWA could not be read since)"
                           if minutes is not None else " (stale: the plan could not be read from HWA)")
    return result


def _pick(matches: list[JobInfo]) -> JobInfo | None:
    if len(matches) == 1:
        return matches[0]
    # Several runs or streams: prefer the one that failed.
    failed = [j for j in matches if j.failed]
    return failed[0] if len(failed) == 1 else None


def _resolve_job(ref: str) -> tuple[JobInfo | None, list[JobInfo]]:
    """The job `ref` means, or None and the candidates to ask about. A name found in several folders is
    never guessed (a failed run in one folder says nothing about which folder the person meant): the
    candidates are then each folder's job, for the answer to ask which one."""
    matches = sources.job_find(ref)
    if not matches:
        # A job stream's name: people say "FOLHA_PAGAMENTO" for the failed job inside it.
        matches = sources.stream_jobs(ref)
    by_folder: dict[str, list[JobInfo]] = {}
    for job in matches:
        by_folder.setdefault(job.folder.upper(), []).append(job)
    if len(by_folder) <= 1:
        return _pick(matches), matches
    candidates: list[JobInfo] = []
    for group in by_folder.values():
        pick = _pick(group)
        candidates.extend([pick] if pick else group)
    return None, candidates


def _job_not_found(ref: str, matches: list[JobInfo]) -> ToolResult:
    if not matches:
        return ToolResult(data={"found": False, "job": ref}, summary=f"no job named {ref} in the plan", error="not_found")
    data: dict[str, Any] = {"found": False, "ambiguous": True, "candidates": [j.as_data() for j in matches[:MAX_LIST]]}
    summary = f"{len(matches)} jobs match {ref}"
    folders = sorted({j.folder for j in matches})
    if len(folders) > 1:
        paths = [j.path for j in matches[:MAX_LIST]]
        data["folders"] = folders
        data["ask"] = (f"{ref} is in {len(folders)} folders ({', '.join(folders)}): ask the user which one they mean "
                       f"({', '.join(paths[:8])}); do not pick one.")
        summary = f"{ref} is in {len(folders)} folders: {', '.join(paths[:8])}"
    return ToolResult(data=data, summary=summary, citations=[plan_citation(j) for j in matches[:5]], error="ambiguous")


# --- the tools ----------------------------------------------------------------------------------


@tool("plan_query", "List jobs in the current plan by name or pattern, status, job stream, workstation or HWA folder, "
      "optionally only those that started or ended in a time window (last_hours, or since/until).", PlanQueryArgs)
def plan_query(args: PlanQueryArgs, ctx: ToolContext) -> ToolResult:
    window = validation.window_of(args)  # already checked by the validation layer: this only resolves it
    folder = validation.check_folder(args.folder) if args.folder else None  # checked too: this only spells it
    jobs, total = sources.plan_jobs(
        folder=folder,
        name=args.name,
        stream=args.job_stream,
        workstation=args.workstation,
        statuses=[s.upper() for s in args.status or []] or None,
        failed_only=args.failed_only,
        since=window.since if window else None,
        until=window.until if window else None,
        limit=args.limit,
    )
    data: dict[str, Any] = {"total": total, "shown": len(jobs), "jobs": [j.as_data() for j in jobs]}
    summary = f"{total} job(s) found" + (f" in folder {folder}" if folder else "") + (f", {len(jobs)} shown" if total > len(jobs) else "")
    if folder:
        data["folder"] = folder
    if window:
        since, until = (timezone.localtime(t) for t in (window.since, window.until))
        data["window"] = {"since": since.isoformat(), "until": until.isoformat()}
        summary += f" between {since:%Y-%m-%d %H:%M} and {until:%Y-%m-%d %H:%M}"
    return _with_plan_age(ToolResult(data=data, summary=summary, citations=[plan_citation(j) for j in jobs[:10]]))


@tool("job_details", "Status, return code, times, stream, workstation, priority and flags of one job.", JobArgs)
def job_details(args: JobArgs, ctx: ToolContext) -> ToolResult:
    job, matches = _resolve_job(args.job)
    if job is None:
        return _job_not_found(args.job, matches)
    return _with_plan_age(ToolResult(data={"found": True, "job": job.as_data()}, summary=f"{job.label}: {job.status}",
                                     citations=[plan_citation(job)]))


def failure_excerpt(lines: list[str]) -> tuple[int, int, list[str]]:
    """The lines around the first error (1-based, inclusive), or the log's tail when none is marked."""
    if not lines:
        return 0, 0, []
    hit = next((i for i, line in enumerate(lines) if _ERROR_LINE.search(line)), None)
    if hit is None:
        start = max(0, len(lines) - LOG_CONTEXT_BEFORE)
        end = len(lines)
    else:
        start = max(0, hit - LOG_CONTEXT_BEFORE // 2)
        end = min(len(lines), hit + LOG_CONTEXT_AFTER + 1)
        # Stretch to include the exit status line when it is close: it says how the run ended.
        for j in range(end, min(len(lines), end + 8)):
            if "exit status" in lines[j].lower():
                end = j + 1
    return start + 1, end, [line[:LOG_MAX_LINE_CHARS] for line in lines[start:end]]


@tool("job_log", "The job's log lines around the failure, with line numbers.", JobArgs)
def job_log(args: JobArgs, ctx: ToolContext) -> ToolResult:
    job, matches = _resolve_job(args.job)
    if job is None:
        return _job_not_found(args.job, matches)
    live = sources.job_log_live(job)
    lines = live.value
    start, end, excerpt = failure_excerpt(lines)
    if not excerpt:
        return ToolResult(data={"job": job.label, "lines": []}, summary=f"{job.label}: the log is empty", error="empty_log")
    numbered = [{"n": start + i, "text": text} for i, text in enumerate(excerpt)]
    codes = sorted(set(re.findall(r"AWS[A-Z]{3}\d{3}[IWE]|ORA-\d{5}|\bS0C\d\b|\bU\d{4}\b", "\n".join(excerpt))))
    return ToolResult(
        data={"job": job.label, "total_lines": len(lines), "from": start, "to": end, "lines": numbered, "codes": codes,
              "age_seconds": live.age_seconds, "cached": live.cached},
        summary=f"{job.label}: log lines {start}-{end} of {len(lines)}" + _age(live),
        citations=[joblog_citation(job, start, end)],
    )


@tool("job_dependencies", "Predecessors (with whether each is satisfied), successors and the impact of this job.", JobArgs)
def job_dependencies(args: JobArgs, ctx: ToolContext) -> ToolResult:
    job, matches = _resolve_job(args.job)
    if job is None:
        return _job_not_found(args.job, matches)
    live = sources.job_dependencies_live(job)
    deps = live.value
    blocked = [s for s in deps.successors if not s.started_at and s.status not in ("SUCC",)]
    data = {
        "job": job.as_data(),
        "predecessors": [{"kind": d.kind, "name": d.label, "satisfied": d.satisfied,
                          "status": d.job.status if d.job else None} for d in deps.predecessors[:MAX_LIST]],
        "successors": [s.as_data() for s in deps.successors[:MAX_LIST]],
        "waiting_successors": [s.label for s in blocked[:MAX_LIST]],
        "critical_successors": [s.label for s in deps.successors if s.critical][:MAX_LIST],
        "age_seconds": live.age_seconds,
        "cached": live.cached,
    }
    cites = [plan_citation(job)] + [plan_citation(s) for s in deps.successors[:5]]
    return ToolResult(
        data=data,
        summary=f"{job.label}: {len(deps.predecessors)} predecessor(s), {len(deps.successors)} successor(s)" + _age(live),
        citations=cites,
    )


@tool("workstation_status", "Link and run state, limit and fence of workstations.", WorkstationArgs)
def workstation_status(args: WorkstationArgs, ctx: ToolContext) -> ToolResult:
    found = sources.workstations(args.workstation)
    if not found:
        return ToolResult(data={"found": False}, summary="no such workstation", error="not_found")
    return ToolResult(
        data={"workstations": [w.as_data() for w in found[:MAX_LIST]]},
        summary=f"{len(found)} workstation(s)",
        citations=[{"kind": "plan", "id": f"workstation:{w.id}", "title": f"workstation {w.name}", "url": ""} for w in found[:5]],
    )


@tool("kb_search", "Search the team's knowledge base of known problems and their solutions.", KbSearchArgs)
def kb_search(args: KbSearchArgs, ctx: ToolContext) -> ToolResult:
    answer = sources.kb_search(args.question, limit=3)
    if not answer.confident or not answer.hits:
        learning.on_kb_not_confident(ctx=ctx)
        return ToolResult(data={"confident": False, "entries": []}, summary="nothing confident in the knowledge base")
    entries = [
        {"id": h.id, "title": h.title, "codes": list(h.codes), "cause": h.cause[:800], "solution": h.solution[:1500]}
        for h in answer.hits
    ]
    return ToolResult(
        data={"confident": True, "entries": entries},
        summary=f"{len(answer.hits)} entr{'y' if len(answer.hits) == 1 else 'ies'}: " + ", ".join(h.id for h in answer.hits),
        citations=[kb_citation(h) for h in answer.hits],
    )


@tool(
    "propose_action",
    "Propose an action on jobs for the operator to confirm. It never executes anything by itself; "
    "only use it when the user asked for that action.",
    ProposeActionArgs,
)
def propose_action(args: ProposeActionArgs, ctx: ToolContext) -> ToolResult:
    # Text from logs or the knowledge base can reach the model; the person's own words cannot be
    # forged by it. A proposal needs the same action recognized in the question itself.
    if ctx.requested_action != args.action:
        return ToolResult(
            data={"created": False, "reason": "The user did not ask for this action in their message."},
            summary=f"refused: the user did not ask to {args.action}",
            error="not_requested",
        )
    from chat.services import proposal_create

    resolved: list[JobInfo] = []
    for ref in dict.fromkeys(args.jobs):
        if "*" in ref or "@" in ref:
            jobs, _ = sources.plan_jobs(name=ref, limit=500)
            resolved.extend(jobs)
            continue
        job, matches = _resolve_job(ref)
        if job is None:
            return _job_not_found(ref, matches)
        resolved.append(job)
    if not resolved:
        return ToolResult(data={"created": False, "reason": "no job matches"}, summary="no job matches", error="not_found")
    verdict = validation.action_verdict(action=args.action, jobs=resolved)
    try:
        proposal = proposal_create(
            conversation_id=ctx.conversation_id,
            turn_id=ctx.turn_id,
            acting_user=ctx.user,
            action=args.action,
            jobs=resolved,
            reason=args.reason,
            four_eyes=verdict.four_eyes,
        )
    except ApplicationError as exc:
        return ToolResult(data={"created": False, "reason": exc.message}, summary=f"refused: {exc.message}", error=exc.code)
    ctx.proposals.append(str(proposal.id))
    return ToolResult(
        data={
            "created": True,
            "proposal_id": str(proposal.id),
            "action": proposal.action,
            # The name, or the reference with the folder where another folder has a stream of the same name.
            "jobs": [j["label"] if "/" in j.get("label", "") else j["name"] for j in proposal.jobs],
            "needs_second_approver": proposal.high_risk,
            "impact": proposal.impact,
            "note": "Nothing was executed. The operator must confirm it with a justification.",
        },
        summary=f"proposal to {proposal.action} {len(proposal.jobs)} job(s) created; waiting for confirmation",
        citations=[plan_citation(j) for j in resolved[:5]],
    )


# --- running a tool -----------------------------------------------------------------------------


def tool_run(name: str, raw_args: dict[str, Any] | str, ctx: ToolContext) -> ToolResult:
    """Validates, runs, records and announces one tool call. Never raises for a tool's own failure."""
    with tracing.span(f"chat.tool {name}", **{"resync.turn_id": str(ctx.turn_id), "resync.tool": name,
                                               "resync.step": ctx.step}) as current:
        result = _tool_run(name, raw_args, ctx)
        current.set_attribute("resync.tool.error", result.error)
        return result


def _tool_run(name: str, raw_args: dict[str, Any] | str, ctx: ToolContext) -> ToolResult:
    import json

    from chat.models import Citation, ToolCall

    started = time.monotonic()
    if isinstance(raw_args, str):
        try:
            raw_args = json.loads(raw_args or "{}")
        except ValueError:
            raw_args = {"_unparsed": raw_args[:500]}
    if not isinstance(raw_args, dict):
        raw_args = {"_unparsed": str(raw_args)[:500]}
    spec = REGISTRY.get(name)
    if ctx.emitter is not None:
        ctx.emitter.emit("tool_call", name=name, arguments=raw_args, step=ctx.step)
    ctx.tools_called.append(name)
    if spec is None:
        result = ToolResult(data={"error": f"unknown tool {name}"}, summary=f"unknown tool {name}", error="unknown_tool")
    else:
        try:
            args = spec.args.model_validate(raw_args)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            result = ToolResult(data={"error": f"invalid arguments: {problems}"}, summary="invalid arguments", error="invalid_arguments")
        else:
            try:
                validation.tool_call_validate(name=name, args=args, user=ctx.user, allowed_tools=ctx.allowed_tools,
                                              requested_action=ctx.requested_action, named=ctx.named)
            except validation.ValidationRefused as refusal:
                validation.refusal_record(user=ctx.user, name=name, arguments=raw_args, refusal=refusal, turn_id=ctx.turn_id)
                result = ToolResult(data={"created": False, "error": refusal.message, "reason": refusal.message,
                                          "refused": True, "rule": refusal.rule},
                                    summary=f"refused: {refusal.message}", error=refusal.code)
            else:
                try:
                    result = spec.run(args, ctx)
                except ApplicationError as exc:
                    result = ToolResult(data={"error": exc.message}, summary=exc.message, error=exc.code)
    duration = int((time.monotonic() - started) * 1000)
    ToolCall.objects.create(
        turn_id=ctx.turn_id, step=ctx.step, name=name, arguments=raw_args, result=result.data,
        summary=result.summary[:2000], error=result.error[:500], duration_ms=duration,
    )
    if ctx.emitter is not None:
        ctx.emitter.emit("tool_result", name=name, summary=result.summary, ok=not result.error, duration_ms=duration)
    fresh: list[dict[str, Any]] = []
    for citation in result.citations:
        if citation["id"] in ctx.cited:
            result.refs.append(ctx.cited[citation["id"]])
            continue
        ctx.cited[citation["id"]] = len(ctx.cited) + 1
        result.refs.append(ctx.cited[citation["id"]])
        fresh.append({**citation, "n": ctx.cited[citation["id"]]})
        ctx.sources_used.append(f"{citation['kind']}:{citation['id']}")
    # One INSERT for the rows and one for the events: a list of jobs can carry many citations.
    Citation.objects.bulk_create([
        Citation(turn_id=ctx.turn_id, kind=c["kind"], ref=c["id"][:200], title=c["title"][:300], url=c.get("url", "")[:500],
                 line_start=(c.get("lines") or [None, None])[0], line_end=(c.get("lines") or [None, None])[1])
        for c in fresh
    ])
    if ctx.emitter is not None:
        ctx.emitter.emit_many("citation", fresh)
    return result
