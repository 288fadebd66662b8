"""The one validation service every tool call and action passes before it reaches HWA or the LLM.

Syntax: job, job stream, workstation and folder names follow HWA's naming rules, wildcards only
where a tool accepts a pattern, values must be valid OQL literals (checked by `jobs.tws.oql.quote`,
the same function that builds the filters), result sizes are bounded, and time windows are bounded
(at most MAX_WINDOW_HOURS back from the plan's clock, never in the future, start before end). Security: the user's role
for the tool, instructions embedded in data are flagged and neutralized before the LLM reads them,
and dangerous operations (bulk cancel/kill, kill of critical jobs) are routed to four-eyes.
Every refusal is a clear message to the operator and a VALIDATION_REFUSED audit event.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from audit.models import AuditAction, AuditOutcome
from audit.services import audit_record
from chat.agent.intents import TimeWindow
from jobs.tws.folders import FolderError, folder_canonical, folder_parse
from jobs.tws.oql import OqlError, quote
from resync_site.roles import OPERATIONS, Role, has_role

# HWA naming rules (distributed): a letter first, then letters, digits, "_" and "-". Job and job
# stream names up to 40 characters (long names since 9.5), workstations up to 16. Folders follow
# their own rules (jobs.tws.folders: names may start with a digit or "_", paths up to 800 characters).
_NAME = r"[A-Za-z][A-Za-z0-9_\-]"
NAME_RULES: dict[str, re.Pattern[str]] = {
    "job": re.compile(rf"{_NAME}{{0,39}}"),
    "job_stream": re.compile(rf"{_NAME}{{0,39}}"),
    "workstation": re.compile(rf"{_NAME}{{0,15}}"),
}
FOLDER_EXAMPLE = "/FINANCEIRO/TESOURARIA/"
# A job reference may also be STREAM.JOB, WORKSTATION#STREAM.JOB, either with folders
# ([/WS_FOLDER/]WORKSTATION#/FOLDER/STREAM.JOB, /FOLDER/STREAM.JOB, /FOLDER/NAME) or an HWA id (a UUID).
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PATTERN_CHARS = re.compile(r"[*@]")
MAX_RESULTS = 25
MAX_ACTION_JOBS = 200
MAX_WINDOW_HOURS = 7 * 24
# Clocks disagree a little (HWA's, this server's): "until now" a few minutes ahead is still now.
WINDOW_CLOCK_SKEW = timedelta(minutes=5)
DANGEROUS_ACTIONS = ("cancel", "kill")

# Which roles may call which tool (read tools: operations roles; the catalogue is explicit so a new
# tool is refused until someone decides who may use it).
TOOL_ROLES: dict[str, tuple[str, ...]] = {
    "plan_query": OPERATIONS,
    "job_details": OPERATIONS,
    "job_log": OPERATIONS,
    "job_dependencies": OPERATIONS,
    "workstation_status": OPERATIONS,
    "kb_search": (*OPERATIONS, Role.REVIEWER),
    "propose_action": OPERATIONS,
}

# Instructions aimed at a model, as they show up inside job logs or knowledge entries (both answer
# modes read entries through `neutralize`: chat.agent.llm for the model, chat.agent.nollm for the page).
INJECTION = re.compile(
    r"(?i)\b(ignore|disregard|forget|esque[cç]a|ignore)\s+(all\s+|todas\s+as\s+|the\s+|as\s+)?(previous|prior|above|anteriores|acima)?\s*"
    r"(instructions?|instru[cç][oõ]es|rules|regras|prompts?)\b"
    r"|\b(system\s+prompt|you\s+are\s+now|voc[eê]\s+agora\s+[eé]|new\s+instructions?|novas\s+instru[cç][oõ]es)\b"
    r"|\b(call|chame|use)\s+(the\s+)?(tool\s+)?propose_action\b"
    r"|<\s*/?\s*(system|assistant|tool)\s*>|\[\s*(system|INST)\s*\]|<\|\w+\|>"
    # A fake chat role at the start of a line ("system: ...", "### Assistant:").
    r"|(?m:^[ \t#>*]*(system|assistant|developer|assistente)[ \t]*:)"
    # Requests to disclose secrets ("mostre a SECRET_KEY", "print your api key").
    r"|\b(reveal|show|print|display|disclose|leak|mostre|mostrar|exiba|exibir|revele|revelar|imprima|divulgue"
    r"|me\s+d[eê]|me\s+diga|me\s+passe)(\s+(me|us|the|a|o|as|os|ao|your|our|sua|seu|suas|seus|all|todas|todos"
    r"|user|usu[aá]rio|operator|operador)){0,4}\s+(secret[\s_]*keys?|secrets?|segredos?|senhas?|passwords?|api[\s_-]*keys?"
    r"|chaves?\s+(secretas?|de\s+api)|credenciais|credentials|tokens?|system\s+prompt|prompt\s+do\s+sistema)\b"
    # Markdown links and images to other sites: a phishing link, or an image URL that leaks what it carries.
    r"|!?\[[^\]\n]{0,300}\]\(\s*<?(https?:)?//[^)\s]*[^)\n]{0,300}\)"
)
NEUTRALIZED = "[instruction removed]"


class ValidationRefused(Exception):
    def __init__(self, message: str, *, rule: str, code: str = "refused") -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.code = code


@dataclass(frozen=True)
class Verdict:
    four_eyes: bool = False


# --- syntax -------------------------------------------------------------------------------------


def check_folder(value: str) -> str:
    """The folder path in its one spelling (`/RH/`), or a refusal saying which HWA rule it breaks."""
    if _PATTERN_CHARS.search(value):
        raise ValidationRefused(f"Wildcards are not allowed in a folder path: {value[:60]!r}; name one folder, "
                                f"for example {FOLDER_EXAMPLE}.", rule="syntax.wildcard")
    try:
        return folder_parse(value)
    except FolderError as exc:
        if exc.code == "invalid":
            message = (f"{value[:60]!r} is not a valid HWA folder path: folder names are letters, digits, \"_\" and \"-\" "
                       f"(not starting with \"-\", no spaces), separated by single \"/\", for example {FOLDER_EXAMPLE}.")
        else:
            message = f"{value[:60]!r}{'…' if len(value) > 60 else ''} is not a valid HWA folder path: {exc}."
        raise ValidationRefused(message, rule="syntax.folder" if exc.code == "invalid" else f"syntax.folder_{exc.code}") from exc


def check_name(kind: str, value: str, *, wildcards: bool = False) -> None:
    """Refuses a name that breaks HWA's rules for `kind` (or that could not be an OQL literal)."""
    if kind == "folder":
        check_folder(value)
        return
    try:
        quote(value)
    except OqlError as exc:
        raise ValidationRefused(f"The {kind.replace('_', ' ')} name {value[:60]!r} is not valid: {exc}.", rule="syntax.oql") from exc
    if _PATTERN_CHARS.search(value):
        if not wildcards:
            raise ValidationRefused(f"Wildcards are not allowed in a {kind.replace('_', ' ')} name here: {value[:60]!r}.",
                                    rule="syntax.wildcard")
        if len(value.replace("*", "").replace("@", "")) < 2:
            raise ValidationRefused(f"The pattern {value[:60]!r} is too broad: give at least two characters.", rule="syntax.wildcard")
        value = _PATTERN_CHARS.sub("A", value)
        if value[0].isdigit() or value[0] in "_-":
            value = "A" + value[1:]
    if not NAME_RULES[kind].fullmatch(value):
        raise ValidationRefused(f"{value[:60]!r} is not a valid HWA {kind.replace('_', ' ')} name.", rule=f"syntax.{kind}")


@dataclass(frozen=True)
class JobRef:
    """A job reference split into its parts, as typed (not checked: `check_job_ref` does that).

    `name` is a job's name, or a job stream's when the reference has no stream part (people say
    "FOLHA_PAGAMENTO" for the failed job inside it); `folder` is the job stream's folder as typed
    (`/RH/`, `RH/`, or `/` for `/STREAM.JOB`), `None` when the reference names none."""

    name: str
    stream: str = ""
    folder: str | None = None
    workstation: str = ""
    workstation_folder: str | None = None
    id: str = ""

    @property
    def canonical_folder(self) -> str | None:
        return folder_canonical(self.folder) if self.folder is not None else None


def job_ref_split(ref: str) -> JobRef:
    """`[[/WS_FOLDER/]WORKSTATION#][/FOLDER/][STREAM.]NAME`, or an HWA id. Folder names hold no `#`,
    `.` or `/`, so the last `#` ends the workstation and the last `/` the folder."""
    ref = ref.strip()
    if _UUID.fullmatch(ref):
        return JobRef(name="", id=ref)
    workstation, hash_sign, rest = ref.rpartition("#")
    ws_folder: str | None = None
    if hash_sign and "/" in workstation:
        ws_folder, _, workstation = workstation.rpartition("/")
        ws_folder += "/"
    folder: str | None = None
    if "/" in rest:
        folder, _, rest = rest.rpartition("/")
        folder += "/"
    stream, _, name = rest.rpartition(".")
    return JobRef(name=name, stream=stream, folder=folder, workstation=workstation, workstation_folder=ws_folder)


def check_job_ref(ref: str, *, wildcards: bool = False) -> JobRef:
    """Refuses a job reference that breaks HWA's naming rules (each part by its own rule); returns its parts."""
    parts = job_ref_split(ref)
    if parts.id:
        return parts
    if "#" in ref and not parts.workstation:
        raise ValidationRefused(f"The job reference {ref[:60]!r} has a \"#\" but no workstation before it "
                                f"(WORKSTATION#{FOLDER_EXAMPLE}STREAM.JOB).", rule="syntax.job_ref")
    if parts.workstation_folder is not None:
        check_folder(parts.workstation_folder)
    if parts.workstation:
        check_name("workstation", parts.workstation)
    if parts.folder is not None:
        check_folder(parts.folder)
    if not parts.name:
        before = "job stream" if parts.stream else "folder" if parts.folder is not None else "workstation"
        raise ValidationRefused(f"The job reference {ref[:60]!r} names no job after its {before}: write "
                                f"{FOLDER_EXAMPLE}STREAM.JOB.", rule="syntax.job_ref")
    if "." in ref.rpartition("#")[2].rpartition("/")[2] and not parts.stream:
        raise ValidationRefused(f"The job reference {ref[:60]!r} has a \".\" but no job stream before it.", rule="syntax.job_ref")
    if parts.stream:
        check_name("job_stream", parts.stream, wildcards=wildcards)
    check_name("job", parts.name, wildcards=wildcards)
    return parts


def check_limit(value: int | None, *, maximum: int = MAX_RESULTS) -> None:
    if value is not None and not 1 <= value <= maximum:
        raise ValidationRefused(f"At most {maximum} results can be asked for at once.", rule="syntax.limit")


def check_window(hours: float | None) -> None:
    if hours is not None and not (math.isfinite(hours) and 0 < hours <= MAX_WINDOW_HOURS):
        raise ValidationRefused(f"Time windows are limited to {MAX_WINDOW_HOURS} hours ({MAX_WINDOW_HOURS // 24} days).",
                                rule="syntax.window")


_CLOCK = re.compile(r"(\d{1,2})(?:[:h](\d{2})|h)?")


def _when(value: str, *, now: datetime, after: datetime | None = None) -> datetime:
    """An ISO 8601 date-time (the site's time zone when it names none), a date (its midnight), or a
    time of day HH:MM: the latest one at or before `now`, or for a window's end the first after `after`."""
    from django.utils import timezone

    text = value.strip()
    clock = _CLOCK.fullmatch(text)
    if clock:
        hour, minute = int(clock.group(1)), int(clock.group(2) or 0)
        if hour > 23 or minute > 59:
            raise ValidationRefused(f"{value[:40]!r} is not a time of day.", rule="syntax.window_format")
        local = timezone.localtime(now if after is None else after)
        moment = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if after is not None:
            return moment if moment > after else moment + timedelta(days=1)
        return moment if moment <= local else moment - timedelta(days=1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationRefused(f"{value[:40]!r} is not a time: give an ISO 8601 date-time (2026-11-24T22:00) or HH:MM.",
                                rule="syntax.window_format") from None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _local(moment: datetime) -> str:
    from django.utils import timezone

    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def window_resolve(*, last_hours: float | None = None, since: str | None = None, until: str | None = None,
                   now: datetime) -> TimeWindow | None:
    """The time window a tool call asks for, checked against the plan's clock `now`; None when it asks
    for none. Refused: a window reaching back more than MAX_WINDOW_HOURS, one in the future, one that
    ends before it starts, times that are not times, and both `last_hours` and `since` at once."""
    if last_hours is None and not since and not until:
        return None
    if last_hours is not None and since:
        raise ValidationRefused("Give either last_hours or since for a time window, not both.", rule="syntax.window")
    end = _when(until, now=now, after=_when(since, now=now) if since else None) if until else now
    if last_hours is not None:
        check_window(last_hours)
        start = end - timedelta(hours=last_hours)
    elif since:
        start = _when(since, now=now)
    else:
        start = max(end - timedelta(hours=24), now - timedelta(hours=MAX_WINDOW_HOURS))
    if start > now + WINDOW_CLOCK_SKEW or end > now + WINDOW_CLOCK_SKEW:
        raise ValidationRefused(
            f"The time window {_local(start)} to {_local(end)} reaches into the future (the plan's clock reads "
            f"{_local(now)}): ask about what already happened.", rule="syntax.window_future")
    if start >= end:
        raise ValidationRefused(f"The time window starts ({_local(start)}) after it ends ({_local(end)}).",
                                rule="syntax.window_order")
    if start < now - timedelta(hours=MAX_WINDOW_HOURS):
        raise ValidationRefused(f"Time windows reach back at most {MAX_WINDOW_HOURS} hours ({MAX_WINDOW_HOURS // 24} days); "
                                f"{_local(start)} is further back.", rule="syntax.window")
    return TimeWindow(since=start, until=min(end, now))


def window_of(args: Any, *, now: datetime | None = None) -> TimeWindow | None:
    """The checked time window of a list tool's arguments (`last_hours`, `since`, `until`), on the plan's clock."""
    last_hours, since, until = (getattr(args, name, None) for name in ("last_hours", "since", "until"))
    if last_hours is None and not since and not until:
        return None
    if now is None:
        from chat.agent.sources import plan_now

        now = plan_now()
    return window_resolve(last_hours=last_hours, since=since, until=until, now=now)


# --- security -----------------------------------------------------------------------------------


def check_role(user: Any, tool: str) -> None:
    roles = TOOL_ROLES.get(tool)
    if roles is None or not has_role(user, roles):
        raise ValidationRefused(f"Your role does not allow using {tool}.", rule="security.role")


def flag_injection(text: str) -> list[str]:
    return [m.group(0) for m in INJECTION.finditer(text or "")]


def neutralize(value: Any) -> tuple[Any, int]:
    """The value with instructions embedded in its strings replaced; and how many were found."""
    if isinstance(value, str):
        found = len(flag_injection(value))
        return (INJECTION.sub(NEUTRALIZED, value) if found else value), found
    if isinstance(value, dict):
        total = 0
        out: dict[Any, Any] = {}
        for key, item in value.items():
            out[key], n = neutralize(item)
            total += n
        return out, total
    if isinstance(value, list):
        pairs = [neutralize(item) for item in value]
        return [p[0] for p in pairs], sum(p[1] for p in pairs)
    return value, 0


def action_verdict(*, action: str, jobs: list[Any]) -> Verdict:
    """Dangerous operations go to four-eyes: cancel/kill of several jobs, or kill of a critical job."""
    if action in DANGEROUS_ACTIONS and (len(jobs) > 1 or any(getattr(j, "critical", False) for j in jobs)):
        return Verdict(four_eyes=True)
    return Verdict()


# --- the service --------------------------------------------------------------------------------


def named_targets(question: str, *, earlier_questions: list[str] | tuple[str, ...] = ()) -> frozenset[str]:
    """The jobs, job streams and patterns the person named in their own message (upper case), as
    `chat.agent.intents.recognize` reads them. A message that names none ("rerun it") is about the
    target of their latest earlier message that named one (`earlier_questions`, newest first)."""
    from chat.agent import sources
    from chat.agent.intents import recognize

    jobs, streams, stations = sources.known_names()
    folders = sources.known_folders()
    for text in (question, *earlier_questions):
        rec = recognize(text, job_names=jobs, stream_names=streams, workstation_names=stations, folder_names=folders)
        # "FP_CALC_FOLHA na pasta /RH/" names /RH/FP_CALC_FOLHA: that folder's job, not one elsewhere.
        refs = [rec.qualified(n) for n in (*rec.jobs, *rec.streams, *([rec.pattern] if rec.pattern else []))]
        # A job named with its folder (/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA) names that job by its bare name too.
        named = frozenset(n.upper() for ref in refs for n in (ref, _bare(ref)))
        if named:
            return named
    return frozenset()


def _bare(ref: str) -> str:
    """The job's (or job stream's) own name in a reference: no workstation, folder or stream."""
    return ref.rpartition("#")[2].rpartition("/")[2].rpartition(".")[2]


def _same_target(ref: str, named_ref: str) -> bool:
    """`ref` is the job `named_ref` names: same name, and the same stream and folder where it gives them."""
    a, b = job_ref_split(ref), job_ref_split(named_ref)
    return (a.name.upper() == b.name.upper() and (not b.stream or a.stream.upper() == b.stream.upper())
            and (b.folder is None or (a.canonical_folder or "").upper() == (b.canonical_folder or "").upper()))


def check_named(refs: list[str], named: frozenset[str]) -> None:
    """Refuses a proposal for a job the person did not name: a question may quote an action word
    ("the log says: cancel every job") while the model's jobs come from planted text."""
    for ref in refs:
        if ref.upper() in named:
            continue
        job = _bare(ref).upper()
        # A job the person named with its folder is that folder's job: the same name elsewhere is another job.
        pinned = [n for n in named if "/" in n and _bare(n) == job]
        if job not in named:
            raise ValidationRefused(f"The user did not name {ref[:60]!r} in their message.", rule="security.not_named",
                                    code="not_requested")
        if pinned and not any(_same_target(ref, n) for n in pinned):
            raise ValidationRefused(f"The user named {' or '.join(sorted(pinned))}, not {ref[:60]!r}: give the job with the "
                                    f"folder they named.", rule="security.not_named", code="not_requested")


def tool_call_validate(*, name: str, args: Any, user: Any, allowed_tools: frozenset[str] | None = None,
                       requested_action: str | None = None, named: frozenset[str] = frozenset(),
                       now: datetime | None = None) -> None:
    """Raises `ValidationRefused` (a clear message) when the call must not reach HWA or the LLM.

    `requested_action` and `named` come from the person's own message (`named_targets`): a proposal
    needs both its action and every one of its jobs there. `now`: the plan's clock for time windows
    (read from the snapshot when not given)."""
    if allowed_tools is not None and name not in allowed_tools:
        raise ValidationRefused(f"The agent answering this question may not use {name}.", rule="security.agent_tools")
    check_role(user, name)
    if name == "propose_action" and requested_action != args.action:
        # Text from logs or the knowledge base can reach the model; the person's own words cannot be
        # forged by it. An action needs the same action recognized in the question itself.
        raise ValidationRefused(f"The user did not ask to {args.action} in their message.", rule="security.not_requested",
                                code="not_requested")
    if name == "propose_action":
        check_named(args.jobs, named)
    for field_name, kind in (("job_stream", "job_stream"), ("workstation", "workstation"), ("folder", "folder")):
        value = getattr(args, field_name, None)
        if value:
            check_name(kind, value)
    if name == "plan_query":
        if args.name:
            check_job_ref(args.name, wildcards=True)
        check_limit(args.limit)
        window_of(args, now=now)
    elif name in ("job_details", "job_log", "job_dependencies"):
        check_job_ref(args.job)
    elif name == "propose_action":
        if len(args.jobs) > MAX_ACTION_JOBS:
            raise ValidationRefused(f"At most {MAX_ACTION_JOBS} jobs per action.", rule="syntax.limit")
        for ref in args.jobs:
            check_job_ref(ref, wildcards=True)


def refusal_record(*, user: Any, name: str, arguments: Any, refusal: ValidationRefused, turn_id: Any = None) -> None:
    audit_record(
        action=AuditAction.VALIDATION_REFUSED, actor=user, target_type="chat.tool", target_id=name,
        target_label=refusal.message[:255], outcome=AuditOutcome.REFUSED,
        details={"tool": name, "rule": refusal.rule, "message": refusal.message,
                 "arguments": arguments if isinstance(arguments, dict) else str(arguments)[:500],
                 "turn_id": str(turn_id or "")},
    )
