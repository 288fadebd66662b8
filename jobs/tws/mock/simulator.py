"""The mock's plan simulator: workstations, job streams and jobs moving through HWA's states on a
simulated clock, deterministic for a given scenario, seed and sequence of advances/actions.

Time: `now = plan start + manual advances + real elapsed time x speed` (speed 0 freezes the clock,
which is what tests use). Work is event driven: a heap of timed events (start times, run ends,
file arrivals, kills, deadlines) plus a set of jobs to re-evaluate, so a 50,000-job plan costs
only what changes.

State rules follow docs/hwa-rest-api.md sections 5 and 6 (status mapping and action guards).
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs.tws.folders import ROOT, folder_canonical
from jobs.tws.mock.joblog import render

_UTC = UTC

_NS = uuid.UUID("6b1f0b5e-0d7e-4c53-9a55-1f3c9e7a2b10")

FINAL = frozenset({"SUCC", "ABEND", "FAIL", "SUPPR", "CANCL"})
NOT_STARTED = frozenset({"HOLD", "READY", "FENCE", "WAIT"})
RUNNING = frozenset({"INTRO", "EXEC", "SUCCP", "ABENP"})
INTRO_SECONDS = 2
KILL_SECONDS = 3

COMMON = {
    "READY": "READY", "EXEC": "RUNNING", "SUCCP": "RUNNING", "ABENP": "RUNNING", "STARTED": "RUNNING",
    "SUCC": "SUCCESSFUL", "ABEND": "ERROR", "FAIL": "ERROR", "SUPPR": "SUPPRESS", "EXTRN": "UNDECIDED",
    "ERROR": "UNDECIDED", "SUSP": "BLOCKED", "STUCK": "BLOCKED", "CANCL": "CANCELED", "CANCLP": "CANCELED",
    "COMPLT": "COMPLETED", "END": "COMPLETED", "INTRPT": "INTERRUPTED", "UNDCDED": "UNDECIDED",
}
STREAM_COMMON = {
    "SUCC": "SUCCESSFUL", "EXEC": "RUNNING", "STUCK": "BLOCKED", "ABEND": "ERROR", "HOLD": "WAITING",
    "READY": "READY", "CANCL": "CANCELED", "SUPPR": "SUPPRESS",
}

# Which job statuses each action accepts (docs/hwa-rest-api.md section 6).
ACTION_GUARDS: dict[str, frozenset[str]] = {
    "hold": frozenset({"HOLD", "READY", "FENCE", "WAIT"}),
    "release": frozenset({"HOLD"}),  # and priority 0: checked in code
    "release-dependencies": frozenset({"HOLD", "READY", "FENCE", "WAIT"}),
    "release-all-dependencies": frozenset({"HOLD", "READY", "FENCE", "WAIT"}),
    "kill": frozenset({"EXEC"}),
    "rerun": frozenset({"SUCC", "ABEND", "FAIL", "SUPPR"}),
    "confirm-succ": frozenset({"ABEND", "PEND", "READY", "HOLD", "EXEC", "ABENP"}),
    "confirm-abend": frozenset({"PEND", "READY", "HOLD", "EXEC"}),
    "cancel": frozenset({"HOLD", "READY", "FENCE", "WAIT", "INTRO", "EXEC"}),
    "update-priority": frozenset({"HOLD", "READY", "FENCE", "WAIT", "INTRO", "EXEC", "PEND"}),
}


_LIST_OMIT = ("engineId", "persistentId", "cpuFolderId", "jobDefinitionRefId", "actions", "jobDefinitionFlags",
              "jobStreamWorkstationId", "planId", "archived")
_RUN_LIST_OMIT = ("name", "jobId", "jobKey", "submittedTime", "released")


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None and v is not False and not (v == 0 and k.startswith("numberOf"))}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


class ActionRefused(Exception):
    def __init__(self, message_id: str, text: str) -> None:
        super().__init__(f"{message_id} {text}")
        self.message_id = message_id


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float) -> str:
    return f"PT{int(seconds)}S"


def stable_id(*parts: object) -> str:
    return str(uuid.uuid5(_NS, ":".join(str(p) for p in parts)))


def folder_id(path: str) -> str:
    return stable_id("folder", path)


@dataclass(eq=False)
class SimWorkstation:
    id: str
    name: str
    type: str
    os: str
    host_type: str
    limit: int
    fence: int
    linked: bool = True
    running: bool = True
    running_jobs: int = 0
    jobs: list[SimJob] = field(default_factory=list)
    version: int = 0
    folder: str = ROOT

    @property
    def path(self) -> str:
        """The workstation's name with its folder (`/PRD_LNX01`), as keys write it."""
        return f"{self.folder}{self.name}"

    def states(self) -> list[str]:
        states = ["INSTALLED", "IS_INITED"]
        if self.host_type == "MASTER":
            states += ["MASTER", "ONLINE"]
        if self.linked:
            states += ["LINKED", "FULLY_LINKED"]
        if self.linked and self.running:
            states += ["RUNNING", "JOBMAN_UP", "WRITER_RUNNING"]
        return states

    def to_json(self, time_zone: str) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "folder": self.folder, "folderId": folder_id(self.folder), "key": self.path, "type": self.type,
            "hostType": self.host_type, "os": self.os, "activeStates": self.states(),
            "activeFlags": ["AUTO_LINK", "FULL_STATUS", "TCP_IP_LINK"], "limit": self.limit, "fence": self.fence,
            "runNumber": 1, "nodeName": f"{self.name.lower()}.intranet.local", "tcpPort": 31111,
            "domainName": "MASTERDM", "version": "10.2.8", "timeZone": time_zone,
            "actions": [{"key": a, "id": a} for a in ("link", "unlink", "start", "stop", "update-limit", "update-fence")],
        }


@dataclass(eq=False)
class SimResource:
    id: str
    name: str
    ws: SimWorkstation
    quantity: int
    held: int = 0
    waiters: set[SimJob] = field(default_factory=set)

    @property
    def available(self) -> int:
        return self.quantity - self.held


@dataclass(eq=False)
class SimPrompt:
    id: str
    name: str
    text: str
    answer: bool | None = None
    asked: bool = False
    waiters: set[SimJob] = field(default_factory=set)

    @property
    def status(self) -> str:
        if self.answer is True:
            return "ANSWERED_YES"
        if self.answer is False:
            return "ANSWERED_NO"
        return "ASKED" if self.asked else "NOT_ASKED"


@dataclass(eq=False)
class SimFile:
    path: str
    ws: SimWorkstation
    arrives_at: datetime | None


@dataclass(eq=False)
class SimRun:
    id: str
    number: int
    job_number: int
    rerun_type: str
    submitted: datetime
    status: str = "HOLD"
    start: datetime | None = None
    end: datetime | None = None
    rc: int | None = None
    confirmed: bool = False
    killed: bool = False
    last: bool = True


@dataclass(eq=False)
class SimStream:
    id: str
    name: str
    ws: SimWorkstation
    sched: datetime
    deadline_at: datetime | None
    v1_internal_id: str
    jobs: list[SimJob] = field(default_factory=list)
    follows: list[SimStream] = field(default_factory=list)
    version: int = 0
    _status: tuple[int, str] | None = None
    folder: str = ROOT

    @property
    def key(self) -> str:
        """`/WS_FOLDER/WS#/FOLDER/STREAM` (folders included, the root one too)."""
        return f"{self.ws.path}#{self.folder}{self.name}"

    @property
    def sched_label(self) -> str:
        return self.sched.strftime("%H%M %m/%d/%y")

    def status(self) -> str:
        if self._status and self._status[0] == self.version:
            return self._status[1]
        statuses = [j.status for j in self.jobs]
        if statuses and all(s in ("SUCC", "SUPPR", "CANCL") for s in statuses):
            result = "SUCC"
        elif any(s in RUNNING for s in statuses):
            result = "EXEC"
        elif any(s in ("ABEND", "FAIL") for s in statuses):
            # Something failed and nothing runs: either everything else is done (ABEND) or the
            # rest waits on the failure and the stream cannot move (STUCK).
            result = "ABEND" if all(s in FINAL for s in statuses) else "STUCK"
        elif any(s in ("SUCC",) for s in statuses) or any(s == "READY" for s in statuses):
            result = "EXEC" if any(s == "SUCC" for s in statuses) else "READY"
        else:
            result = "HOLD"
        self._status = (self.version, result)
        return result


@dataclass(eq=False)
class SimJob:
    id: str
    name: str
    stream: SimStream
    ws: SimWorkstation
    position: int
    start_at: datetime
    until_at: datetime | None
    deadline_at: datetime | None
    duration: float
    rc: int | None
    abend: str
    launch_failure: bool
    rerun_rc: int
    priority: int
    critical: bool
    confirm: bool
    user: str
    command: str
    output: list[str]
    follows: list[SimJob] = field(default_factory=list)
    follows_streams: list[SimStream] = field(default_factory=list)
    file: SimFile | None = None
    prompt: SimPrompt | None = None
    resources: list[tuple[SimResource, int]] = field(default_factory=list)
    successors: list[SimJob] = field(default_factory=list)
    status: str = "HOLD"
    substatus: str | None = None
    canceled: bool = False
    orig_priority: int = 10
    runs: list[SimRun] = field(default_factory=list)
    released_deps: set[str] = field(default_factory=set)
    version: int = 0
    cache: tuple[int, bytes] | None = None

    @property
    def key(self) -> str:
        """`/WS_FOLDER/WS#/STREAM_FOLDER/STREAM.JOB`: a job is in its job stream's folder."""
        return f"{self.ws.path}#{self.stream.folder}{self.stream.name}.{self.name}"

    @property
    def v1_id(self) -> str:
        return f"{self.stream.ws.name};{self.stream.v1_internal_id};{self.name}"

    @property
    def last_run(self) -> SimRun | None:
        return self.runs[-1] if self.runs else None

    @property
    def common_status(self) -> str:
        if self.canceled:
            return "CANCELED"
        if self.status == "HOLD":
            return "HELD" if self.substatus == "HOLD_PRIORITY_ZERO" else "WAITING"
        if self.status in ("WAIT", "PEND", "INTRO", "FENCE"):
            return "WAITING"
        return COMMON.get(self.status, "UNDECIDED")

    def output_for(self, run: SimRun) -> list[str]:
        if run.killed:
            return [*self.output[: max(1, len(self.output) // 2)], "Resync mock: job process terminated by a kill request"]
        if run.number > 1 and run.rc == 0:
            return [*[line for line in self.output if "ERRO" not in line.upper() and "AWS" not in line and "ORA-" not in line][:6], "Processamento concluído com sucesso (reexecução)."]
        return self.output


class Simulator:
    def __init__(self, scenario: dict[str, Any], *, speed: float = 0.0, clock: Any = None) -> None:
        import time

        self.scenario = scenario
        self.name = scenario.get("name", "custom")
        self.seed = int(scenario.get("seed", 1))
        self.rng = random.Random(self.seed)
        self.time_zone = scenario.get("time_zone", "America/Sao_Paulo")
        self.plan_start = datetime.fromisoformat(scenario["plan_start"])
        self.plan_id = stable_id(self.name, self.seed, "plan")
        self._monotonic = clock or time.monotonic
        self._wall_anchor = self._monotonic()
        self._sim_anchor = self.plan_start
        self.speed = speed
        self.now = self.plan_start
        self._heap: list[tuple[datetime, int, str, SimJob | None, int]] = []
        self._seq = itertools.count()
        self._dirty: set[SimJob] = set()
        self._job_numbers = itertools.count(int(scenario.get("first_job_number", 51000)))
        self.workstations: dict[str, SimWorkstation] = {}
        self.resources: dict[str, SimResource] = {}
        self.prompts: dict[str, SimPrompt] = {}
        self.streams: list[SimStream] = []
        self.jobs: list[SimJob] = []
        self.jobs_by_id: dict[str, SimJob] = {}
        self.streams_by_id: dict[str, SimStream] = {}
        self.runs_by_id: dict[str, tuple[SimJob, SimRun]] = {}
        self.action_log: list[dict[str, Any]] = []
        self._build()
        self._settle()
        clock_start = scenario.get("clock_start")
        if clock_start:
            self.advance_to(self._at(clock_start))
        self._sim_anchor = self.now
        self._wall_anchor = self._monotonic()

    # --- building -----------------------------------------------------------------------------

    def _at(self, text: str | None, *, base: datetime | None = None) -> datetime:
        """'HH:MM' on the plan's night (times before the plan's start hour are the next morning)."""
        base = base or self.plan_start
        if not text:
            return base
        hours, minutes = (int(p) for p in text.split(":"))
        moment = base.replace(hour=hours, minute=minutes, second=0, microsecond=0)
        if moment < self.plan_start.replace(second=0, microsecond=0) - timedelta(hours=0):
            moment += timedelta(days=1)
        return moment

    def _build(self) -> None:
        sc = self.scenario
        for spec in sc.get("workstations", []):
            ws = SimWorkstation(
                id=stable_id(self.name, "ws", spec["name"]), name=spec["name"], type=spec.get("type", "FTA"),
                os=spec.get("os", "LINUX"), host_type=spec.get("host_type", "WORKSTATION"),
                limit=int(spec.get("limit", 20)), fence=int(spec.get("fence", 0)),
                linked=bool(spec.get("linked", True)), running=bool(spec.get("running", True)),
                folder=folder_canonical(spec.get("folder")),
            )
            self.workstations[ws.name] = ws
        for spec in sc.get("resources", []):
            ws = self.workstations[spec["workstation"]]
            self.resources[spec["name"]] = SimResource(stable_id(self.name, "res", spec["name"]), spec["name"], ws, int(spec["quantity"]))
        for spec in sc.get("prompts", []):
            self.prompts[spec["name"]] = SimPrompt(stable_id(self.name, "prompt", spec["name"]), spec["name"], spec.get("text", ""), spec.get("answer"))
        pending_follows: list[tuple[SimJob, list[str]]] = []
        pending_stream_follows: list[tuple[SimStream, list[str]]] = []
        by_stream_job: dict[str, SimJob] = {}
        for s_index, sspec in enumerate(sc.get("streams", [])):
            ws = self.workstations[sspec["workstation"]]
            sched = self._at(sspec.get("at"))
            stream = SimStream(
                id=stable_id(self.name, "js", sspec["name"], s_index), name=sspec["name"], ws=ws, sched=sched,
                deadline_at=self._at(sspec["deadline"]) if sspec.get("deadline") else None,
                v1_internal_id=f"0AAAAAAAAA{s_index + 1:06X}", folder=folder_canonical(sspec.get("folder")),
            )
            self.streams.append(stream)
            self.streams_by_id[stream.id] = stream
            if sspec.get("follows"):
                pending_stream_follows.append((stream, list(sspec["follows"])))
            for position, jspec in enumerate(sspec.get("jobs", []), start=1):
                jws = self.workstations[jspec.get("workstation", ws.name)]
                base = float(jspec.get("duration", 300))
                jitter = self.rng.uniform(0.9, 1.1) if base > 60 else 1.0
                output = list(jspec.get("output") or [f"Resync mock: {jspec['name']} processing step {i}" for i in range(1, 4)])
                job = SimJob(
                    id=stable_id(self.name, "job", sspec["name"], s_index, jspec["name"]), name=jspec["name"], stream=stream,
                    ws=jws, position=position, start_at=self._at(jspec.get("at") or sspec.get("at")),
                    until_at=self._at(jspec["until"]) if jspec.get("until") else None,
                    deadline_at=self._at(jspec["deadline"]) if jspec.get("deadline") else None,
                    duration=round(base * jitter), rc=jspec.get("rc", 0), abend=jspec.get("abend", ""),
                    launch_failure=jspec.get("outcome") == "FAIL", rerun_rc=int(jspec.get("rerun_rc", 0)),
                    priority=int(jspec.get("priority", 10)), critical=bool(jspec.get("critical", False)),
                    confirm=bool(jspec.get("confirm", False)), user=jspec.get("user", "batch"),
                    command=jspec.get("command", f"/opt/batch/bin/{jspec['name'].lower()}.sh"), output=output,
                )
                job.orig_priority = job.priority
                if jspec.get("file"):
                    fspec = jspec["file"]
                    job.file = SimFile(fspec["path"], jws, self._at(fspec["arrives"]) if fspec.get("arrives") else None)
                if jspec.get("prompt"):
                    job.prompt = self.prompts[jspec["prompt"]]
                for rspec in jspec.get("resources", []):
                    job.resources.append((self.resources[rspec["name"]], int(rspec.get("quantity", 1))))
                stream.jobs.append(job)
                jws.jobs.append(job)
                self.jobs.append(job)
                self.jobs_by_id[job.id] = job
                by_stream_job[f"{stream.name}.{job.name}"] = job
                by_stream_job[f"{stream.folder}{stream.name}.{job.name}"] = job  # `follows` may name the folder
                if jspec.get("follows"):
                    pending_follows.append((job, list(jspec["follows"])))
        streams_by_name = {s.name: s for s in self.streams} | {f"{s.folder}{s.name}": s for s in self.streams}
        for job, names in pending_follows:
            for name in names:
                if "." in name:
                    pred = by_stream_job[name]
                    job.follows.append(pred)
                    pred.successors.append(job)
                elif name in streams_by_name and f"{job.stream.folder}{job.stream.name}.{name}" not in by_stream_job:
                    job.follows_streams.append(streams_by_name[name])
                else:  # a job of its own stream: the stream's folder tells same-named streams apart
                    pred = by_stream_job[f"{job.stream.folder}{job.stream.name}.{name}"]
                    job.follows.append(pred)
                    pred.successors.append(job)
        for stream, names in pending_stream_follows:
            for name in names:
                if "." in name:
                    pred = by_stream_job[name]
                    for job in stream.jobs:
                        job.follows.append(pred)
                        pred.successors.append(job)
                else:
                    stream.follows.append(streams_by_name[name])
                    for job in stream.jobs:
                        job.follows_streams.append(streams_by_name[name])
        self._followers: dict[str, list[SimStream]] = {}
        for stream in self.streams:
            for pred in stream.follows:
                self._followers.setdefault(pred.id, []).append(stream)
        for job in self.jobs:
            self._schedule(job.start_at, "eval", job)
            if job.until_at:
                self._schedule(job.until_at + timedelta(seconds=1), "eval", job)
            if job.deadline_at:
                self._schedule(job.deadline_at + timedelta(seconds=1), "touch", job)
            if job.file and job.file.arrives_at:
                self._schedule(job.file.arrives_at, "eval", job)
            self._dirty.add(job)
        for stream in self.streams:
            if stream.deadline_at:
                self._schedule(stream.deadline_at + timedelta(seconds=1), "touch_stream", stream.jobs[0] if stream.jobs else None)

    # --- clock ----------------------------------------------------------------------------------

    def _schedule(self, when: datetime, kind: str, job: SimJob | None, run_number: int = 0) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), kind, job, run_number))

    def clock_now(self) -> datetime:
        return self._sim_anchor + timedelta(seconds=(self._monotonic() - self._wall_anchor) * self.speed)

    def tick(self) -> None:
        """Brings the plan up to the simulated clock (called before every request)."""
        target = self.clock_now()
        if target > self.now:
            self.advance_to(target)

    def advance(self, seconds: float) -> None:
        self.tick()
        self.advance_to(self.now + timedelta(seconds=seconds))
        self._sim_anchor = self.now
        self._wall_anchor = self._monotonic()

    def set_speed(self, speed: float) -> None:
        self.tick()
        self._sim_anchor = self.now
        self._wall_anchor = self._monotonic()
        self.speed = speed

    def advance_to(self, target: datetime) -> None:
        while self._heap and self._heap[0][0] <= target:
            when, _, kind, job, run_number = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            self._handle(kind, job, run_number)
            self._settle()
        self.now = max(self.now, target)
        self._settle()

    # --- state machine ----------------------------------------------------------------------------

    def _touch(self, job: SimJob) -> None:
        job.version += 1
        job.stream.version += 1

    def _set(self, job: SimJob, status: str, substatus: str | None = None) -> None:
        if job.status == status and job.substatus == substatus:
            return
        job.status = status
        job.substatus = substatus
        run = job.last_run
        if run is not None and run.last:
            run.status = status
        self._touch(job)

    def _handle(self, kind: str, job: SimJob | None, run_number: int) -> None:
        if job is None:
            return
        if kind == "eval":
            self._dirty.add(job)
        elif kind == "touch":
            self._touch(job)
        elif kind == "touch_stream":
            job.stream.version += 1
            for member in job.stream.jobs:
                member.version += 1
        elif kind == "exec":
            run = job.last_run
            if run is None or run.number != run_number or job.status != "INTRO":
                return
            if job.launch_failure and run.number == 1:
                run.end = self.now
                self._finish(job, "FAIL")
            else:
                self._set(job, "EXEC")
                self._schedule(self.now + timedelta(seconds=job.duration), "end", job, run.number)
        elif kind == "end":
            run = job.last_run
            if run is None or run.number != run_number or job.status not in ("EXEC", "SUCCP", "ABENP"):
                return
            run.end = self.now
            run.rc = job.rc if run.number == 1 else job.rerun_rc
            if job.status == "SUCCP":
                final = "SUCC"
            elif job.status == "ABENP":
                final = "ABEND"
            elif (job.abend and run.number == 1) or (run.rc or 0) != 0:
                final = "ABEND"
            elif job.confirm and not run.confirmed:
                final = "PEND"
            else:
                final = "SUCC"
            self._finish(job, final)
        elif kind == "killed":
            run = job.last_run
            if run is None or run.number != run_number or job.status != "EXEC":
                return
            run.end = self.now
            run.killed = True
            run.rc = None
            self._finish(job, "ABEND")

    def _finish(self, job: SimJob, status: str) -> None:
        self._set(job, status)
        job.ws.running_jobs = max(0, job.ws.running_jobs - 1)
        for resource, quantity in job.resources:
            resource.held = max(0, resource.held - quantity)
            self._dirty.update(resource.waiters)
        self._wake_workstation(job.ws)
        self._dirty.update(job.successors)
        for stream in self.streams_following(job.stream):
            self._dirty.update(stream.jobs)

    def streams_following(self, stream: SimStream) -> list[SimStream]:
        return self._followers.get(stream.id, [])

    def _wake_workstation(self, ws: SimWorkstation) -> None:
        self._dirty.update(j for j in ws.jobs if j.status in ("READY", "FENCE"))

    def _settle(self) -> None:
        rounds = 0
        while self._dirty:
            rounds += 1
            batch = sorted(self._dirty, key=lambda j: (j.start_at, -j.priority, j.stream.sched, j.position, j.id))
            self._dirty.clear()
            for job in batch:
                self._evaluate(job)
            if rounds > 100000:  # a scenario bug must not hang the server
                break

    def dependencies(self, job: SimJob) -> list[dict[str, Any]]:
        """The job's dependencies as `DependencyInPlanV2` objects, each with its satisfied state."""
        deps: list[dict[str, Any]] = []
        for pred in job.follows:
            dep_id = stable_id(job.id, "dep", pred.id)
            satisfied = pred.status == "SUCC" or dep_id in job.released_deps
            internal = pred.stream is job.stream
            deps.append({
                "dependencyType": "INTERNAL" if internal else "EXTERNAL_JOB", "id": dep_id,
                "dependencyStatus": "SATISFIED" if satisfied else "UNSATISFIED", "satisfied": satisfied, "mandatory": True,
                "jobId": pred.id, "jobName": pred.name, "jobStreamId": pred.stream.id, "jobStreamName": pred.stream.name,
                "jobStreamFolder": pred.stream.folder,
                "jobWorkstationName": pred.ws.name, "statusConditions": ["SUCC"],
                "predecessorStatus": {"status": pred.status, "canceled": pred.canceled},
            })
        for stream in job.follows_streams:
            dep_id = stable_id(job.id, "dep", stream.id)
            satisfied = stream.status() == "SUCC" or dep_id in job.released_deps
            deps.append({
                "dependencyType": "EXTERNAL_JOBSTREAM", "id": dep_id, "dependencyStatus": "SATISFIED" if satisfied else "UNSATISFIED",
                "satisfied": satisfied, "mandatory": True, "jobStreamId": stream.id, "jobStreamName": stream.name,
                "jobStreamFolder": stream.folder,
                "jobStreamWorkstation": stream.ws.name, "predecessorStatus": {"status": stream.status()},
            })
        if job.file:
            dep_id = stable_id(job.id, "dep", "file", job.file.path)
            arrived = job.file.arrives_at is not None and self.now >= job.file.arrives_at
            satisfied = arrived or dep_id in job.released_deps
            deps.append({
                "dependencyType": "FILE", "id": dep_id, "dependencyStatus": "SATISFIED" if satisfied else "UNSATISFIED",
                "satisfied": satisfied, "mandatory": True, "timeLastChecked": iso(self.now),
                "file": {"name": job.file.path, "workstation": job.file.ws.name, "status": "Exists" if arrived else "Checking"},
            })
        if job.prompt:
            dep_id = stable_id(job.id, "dep", "prompt", job.prompt.name)
            satisfied = job.prompt.answer is True or dep_id in job.released_deps
            deps.append({
                "dependencyType": "PROMPT", "id": dep_id, "dependencyStatus": "SATISFIED" if satisfied else "UNSATISFIED",
                "satisfied": satisfied, "mandatory": True, "promptName": job.prompt.name, "text": job.prompt.text,
                "promptStatus": job.prompt.status, "promptType": "Predefined Prompt", "number": 1,
                "actions": [{"key": "reply", "id": job.prompt.id}],
            })
        for resource, quantity in job.resources:
            dep_id = stable_id(job.id, "dep", "res", resource.name)
            holding = job.status in RUNNING
            satisfied = holding or resource.available >= quantity or dep_id in job.released_deps
            deps.append({
                "dependencyType": "RESOURCE", "id": dep_id, "dependencyStatus": "SATISFIED" if satisfied else "UNSATISFIED",
                "satisfied": satisfied, "mandatory": True, "name": resource.name, "workstation": resource.ws.name,
                "quantity": quantity, "quantityHeld": quantity if holding else 0, "available": resource.available,
            })
        return deps

    def _evaluate(self, job: SimJob) -> None:
        if job.status not in ("HOLD", "READY", "FENCE") or job.canceled:
            return
        now = self.now
        if job.until_at and now > job.until_at:
            self._set(job, "SUPPR")
            self._dirty.update(job.successors)
            return
        if job.priority == 0:
            self._set(job, "HOLD", "HOLD_PRIORITY_ZERO")
            return
        if now < job.start_at:
            self._set(job, "HOLD", "HOLD_WAITING_FOR_TIME")
            return
        resource_blocked = False
        for dep in self.dependencies(job):
            if dep["satisfied"]:
                continue
            kind = dep["dependencyType"]
            if kind == "RESOURCE":
                resource_blocked = True
                continue
            if kind == "PROMPT" and job.prompt:
                if not job.prompt.asked:
                    job.prompt.asked = True
                job.prompt.waiters.add(job)
            substatus = {"PROMPT": "HOLD_WAITING_FOR_PROMPT", "FILE": "HOLD_WAITING_FOR_FILE"}.get(kind, "HOLD_WAITING_FOR_PREDECESSOR")
            self._set(job, "HOLD", substatus)
            return
        ws = job.ws
        if not ws.linked or not ws.running:
            self._set(job, "READY", "READY_WAITING_FOR_AGENT")
            return
        if job.priority <= ws.fence and job.priority < 101:
            self._set(job, "FENCE")
            return
        if resource_blocked:
            for resource, _quantity in job.resources:
                resource.waiters.add(job)
            self._set(job, "HOLD")
            return
        if ws.running_jobs >= ws.limit:
            self._set(job, "READY", "READY_WAITING_FOR_LIMIT")
            return
        self._launch(job)

    def _launch(self, job: SimJob) -> None:
        run = job.last_run
        if run is None or run.start is not None:
            run = self._new_run(job, "REGULAR")
        run.start = self.now
        job.ws.running_jobs += 1
        for resource, quantity in job.resources:
            resource.held += quantity
            resource.waiters.discard(job)
        self._set(job, "INTRO")
        self._schedule(self.now + timedelta(seconds=INTRO_SECONDS), "exec", job, run.number)

    def _new_run(self, job: SimJob, rerun_type: str) -> SimRun:
        for old in job.runs:
            old.last = False
        number = len(job.runs) + 1
        run = SimRun(
            id=stable_id(job.id, "run", number), number=number, job_number=next(self._job_numbers),
            rerun_type=rerun_type, submitted=self.now, status=job.status,
        )
        job.runs.append(run)
        self.runs_by_id[run.id] = (job, run)
        return run

    # --- actions ------------------------------------------------------------------------------------

    def _refuse(self, job: SimJob, action: str) -> ActionRefused:
        return ActionRefused(
            "AWSBIN076E",
            f"Resync mock: the action '{action}' is not valid for job {job.key} in status {job.status}"
            + (" (canceled)" if job.canceled else "") + ".",
        )

    def job_action(self, job: SimJob, action: str, *, priority: int | None = None, dependency_ids: Iterable[str] = (),
                   justification: dict[str, str] | None = None, user: str = "") -> None:
        self.tick()
        guard = ACTION_GUARDS.get(action)
        if guard is None:
            raise ActionRefused("AWSBIN001E", f"Resync mock: unknown action '{action}'.")
        if job.status not in guard or (job.canceled and action not in ("update-priority",)):
            raise self._refuse(job, action)
        if action == "release" and job.priority != 0:
            raise self._refuse(job, action)
        if action == "rerun" and job.stream.status() == "CANCL":
            raise self._refuse(job, action)
        if action in ("release-dependencies", "release-all-dependencies"):
            unresolved = [d for d in self.dependencies(job) if not d["satisfied"]]
            if not unresolved:
                raise self._refuse(job, action)
        self._apply(job, action, priority=priority, dependency_ids=list(dependency_ids))
        self._settle()
        self.action_log.append({
            "at": iso(self.now), "user": user, "action": action, "job": job.key, "jobId": job.id,
            "justification": justification or {}, "status_after": job.status,
        })
        self._settle()

    def _apply(self, job: SimJob, action: str, *, priority: int | None, dependency_ids: list[str]) -> None:
        if action == "hold":
            job.orig_priority = job.priority or job.orig_priority
            job.priority = 0
            self._set(job, "HOLD", "HOLD_PRIORITY_ZERO")
        elif action == "release":
            job.priority = job.orig_priority or 10
            self._set(job, "HOLD", None)
            self._dirty.add(job)
        elif action == "update-priority":
            assert priority is not None
            if job.priority:
                job.orig_priority = job.priority
            job.priority = priority
            self._touch(job)
            self._dirty.add(job)
            if priority == 0 and job.status in NOT_STARTED:
                self._set(job, "HOLD", "HOLD_PRIORITY_ZERO")
        elif action in ("release-dependencies", "release-all-dependencies"):
            wanted = set(dependency_ids)
            for dep in self.dependencies(job):
                if not dep["satisfied"] and (action == "release-all-dependencies" or dep["id"] in wanted):
                    job.released_deps.add(dep["id"])
            self._touch(job)
            self._dirty.add(job)
        elif action == "kill":
            run = job.last_run
            assert run is not None
            self._schedule(self.now + timedelta(seconds=KILL_SECONDS), "killed", job, run.number)
        elif action == "cancel":
            job.canceled = True
            if job.status in NOT_STARTED:
                self._set(job, "CANCL")
                self._dirty.update(job.successors)
            self._touch(job)
        elif action == "rerun":
            run = self._new_run(job, "RERUN")
            run.status = "HOLD"
            job.status = "HOLD"
            job.substatus = None
            self._touch(job)
            self._dirty.add(job)
        elif action in ("confirm-succ", "confirm-abend"):
            succ = action == "confirm-succ"
            if job.status in ("EXEC", "ABENP"):
                target = "SUCCP" if succ else "ABENP"
                if job.last_run:
                    job.last_run.confirmed = True
                self._set(job, target)
            else:
                run = job.last_run or self._new_run(job, "REGULAR")
                run.confirmed = True
                if run.end is None:
                    run.end = self.now
                self._set(job, "SUCC" if succ else "ABEND")
                self._dirty.update(job.successors)
                for stream in self.streams_following(job.stream):
                    self._dirty.update(stream.jobs)

    def workstation_action(self, ws: SimWorkstation, action: str, *, value: int | None = None) -> None:
        self.tick()
        if action == "link":
            ws.linked = True
        elif action == "unlink":
            ws.linked = False
        elif action in ("start", "set-online"):
            ws.running = True
        elif action in ("stop", "set-offline"):
            ws.running = False
        elif action == "update-limit" and value is not None:
            ws.limit = value
        elif action == "update-fence" and value is not None:
            ws.fence = value
        else:
            raise ActionRefused("AWSBIN001E", f"Resync mock: action '{action}' is not valid for workstation {ws.name}.")
        ws.version += 1
        self._dirty.update(j for j in ws.jobs if j.status in ("HOLD", "READY", "FENCE"))
        self._settle()

    def prompt_reply(self, prompt: SimPrompt, answer: bool) -> None:
        self.tick()
        prompt.answer = answer
        for job in prompt.waiters:
            self._touch(job)
        self._dirty.update(prompt.waiters)
        self._settle()

    def churn(self, fraction: float, rng_seed: int | None = None) -> int:
        """Changes about `fraction` of the jobs at once (benchmarks' steady-state poll)."""
        rng = random.Random(rng_seed if rng_seed is not None else self.rng.random())
        count = max(1, int(len(self.jobs) * fraction))
        for job in rng.sample(self.jobs, count):
            if job.status in NOT_STARTED:
                run = job.last_run or self._new_run(job, "REGULAR")
                run.start = self.now
                self._set(job, "EXEC")
            elif job.status in RUNNING:
                run = job.last_run
                if run:
                    run.end = self.now
                    run.rc = 0
                self._set(job, "SUCC")
            else:
                job.priority = 11 if job.priority != 11 else 10
                self._touch(job)
        return count

    # --- serialization -------------------------------------------------------------------------------

    def run_json(self, job: SimJob, run: SimRun, *, with_definition: bool) -> dict[str, Any]:
        status = run.status if not run.last else job.status
        data: dict[str, Any] = {
            "id": run.id, "name": job.name, "jobId": job.id, "jobKey": job.key, "actualWorkstation": job.ws.name,
            "jobNumber": run.job_number,
            "compositeStatus": {"status": status, "canceled": job.canceled and run.last, "error": status in ("ABEND", "FAIL"),
                                "started": run.start is not None, "cancelPending": False, "dontRun": False},
            "commonStatus": job.common_status if run.last else COMMON.get(status, "UNDECIDED"),
            "rerunJob": run.number > 1, "confirmed": run.confirmed, "released": False, "rerunType": run.rerun_type,
            "timeInfo": {"estimatedDuration": duration(job.duration), "actualStartTime": iso(run.start),
                         "elapsedTime": duration(((run.end or self.now) - run.start).total_seconds()) if run.start else None,
                         "actualEndTime": iso(run.end)},
            "submittedTime": iso(run.submitted), "lastInRerunChain": run.last, "runAttempt": run.number,
        }
        if run.rc is not None:
            data["returnCode"] = run.rc
        if with_definition:
            data["jobDefinition"] = self.definition_json(job)
        return data

    def definition_json(self, job: SimJob) -> dict[str, Any]:
        task_key = "WINDOWS" if job.ws.os == "WINDOWS" else ("ZOS" if job.ws.os == "ZOS" else "UNIX")
        return {
            "name": job.name, "description": f"{job.stream.name} / {job.name}",
            "task": {task_key: {"taskString": job.command, "isCommand": False, "userName": job.user}},
            "isCommand": False, "userLogins": [job.user], "estimatedDuration": duration(job.duration), "recoveryOption": "STOP",
        }

    def valid_actions(self, job: SimJob) -> list[str]:
        found = []
        for action, guard in ACTION_GUARDS.items():
            if job.status in guard and not job.canceled:
                if action == "release" and job.priority != 0:
                    continue
                found.append(action)
        return found

    def job_json(self, job: SimJob, *, with_dependencies: bool, with_definition: bool = True) -> dict[str, Any]:
        deps = self.dependencies(job)
        unresolved = sum(1 for d in deps if not d["satisfied"])
        unresolved_non_res = sum(1 for d in deps if not d["satisfied"] and d["dependencyType"] != "RESOURCE")
        late = bool(job.deadline_at and self.now > job.deadline_at and job.status not in ("SUCC", "SUPPR", "CANCL"))
        data: dict[str, Any] = {
            "flowNodeType": "JOB", "id": job.id, "engineId": "mock-engine", "persistentId": job.id, "planId": self.plan_id,
            "key": job.key, "name": job.name, "folderId": folder_id(job.stream.folder), "folder": job.stream.folder,
            "workstationId": job.ws.id, "workstation": job.ws.name, "cpuFolderId": folder_id(job.ws.folder), "jobStreamId": job.stream.id, "jobStreamName": job.stream.name,
            "jobStreamWorkstationId": job.stream.ws.id, "jobStreamWorkstation": job.stream.ws.name, "position": job.position,
            "jobDefinitionFlags": {"monitored": job.critical, "aliased": False, "interactive": False},
            "jobStatusFlags": {"jobStreamCancelled": False, "promotedToUrgentQueue": job.critical and late, "jobLate": late,
                               "userRerunAgain": False, "restarted": len(job.runs) > 1,
                               "untilGone": bool(job.until_at and self.now > job.until_at), "buckujob": False,
                               "needMessage": False, "deadlineHasPassed": late, "altJobIssue": False},
            "jobOptions": {"noOperation": False, "critical": job.critical, "requiresConfirmation": job.confirm, "every": False},
            "lastRunCompositeStatus": {"canceled": job.canceled, "status": job.status, "substatus": job.substatus, "error": job.status in ("ABEND", "FAIL"),
                                       "started": bool(job.last_run and job.last_run.start), "cancelPending": False, "dontRun": False},
            "lastRunCommonStatus": job.common_status,
            "jobDefinitionRefId": stable_id(job.id, "def"),
            "priority": job.priority, "origPriority": job.orig_priority,
            "jobruns": [self.run_json(job, r, with_definition=with_definition) for r in job.runs],
            "schedTime": iso(job.stream.sched), "timeZone": self.time_zone,
            "timeRestrictions": {"startTime": iso(job.start_at), "timeDependent": job.start_at > job.stream.sched,
                                 "startTimeSatisfied": self.now >= job.start_at},
            "dependenciesStats": {
                "numberOfDependencies": len(deps),
                "numberOfJobDependencies": sum(1 for d in deps if d["dependencyType"] in ("INTERNAL", "EXTERNAL_JOB")),
                "numberOfJobStreamDependencies": sum(1 for d in deps if d["dependencyType"] == "EXTERNAL_JOBSTREAM"),
                "numberOfInternetworkDependencies": 0,
                "numberOfPromptDependencies": sum(1 for d in deps if d["dependencyType"] == "PROMPT"),
                "numberOfResourceDependencies": sum(1 for d in deps if d["dependencyType"] == "RESOURCE"),
                "numberOfFileDependencies": sum(1 for d in deps if d["dependencyType"] == "FILE"),
                "numberOfUnresolvedDependencies": unresolved,
                "numberOfNonResourceUnresolvedDependencies": unresolved_non_res,
            },
            "endTime": iso(job.start_at + timedelta(seconds=job.duration)),
            "actions": [{"key": a, "id": a} for a in self.valid_actions(job)],
            "archived": False,
        }
        if job.deadline_at:
            data["timeRestrictions"]["deadlineTime"] = iso(job.deadline_at)
            data["timeRestrictions"]["deadlineSatisfied"] = not late
        if job.until_at:
            data["timeRestrictions"]["latestStartTime"] = iso(job.until_at)
        if job.critical and job.deadline_at:
            data["criticalStart"] = iso(job.deadline_at - timedelta(seconds=job.duration))
        if with_definition:
            data["jobDefinition"] = self.definition_json(job)
        if with_dependencies:
            data["dependencies"] = deps
        return data

    def job_list_bytes(self, job: SimJob) -> bytes:
        """The job as a list item, cached until it changes.

        List items leave out `dependencies` (as HWA does), job definitions, per-object `actions` and
        identifiers that repeat the job's own, and omit false flags, nulls and zero counters
        (NON_DEFAULT inclusion): a 50,000-job plan stays around 40 MB instead of 100.
        """
        if job.cache is None or job.cache[0] != job.version:
            data = self.job_json(job, with_dependencies=False, with_definition=False)
            for key in _LIST_OMIT:
                data.pop(key, None)
            for run in data["jobruns"]:
                for key in _RUN_LIST_OMIT:
                    run.pop(key, None)
            job.cache = (job.version, json.dumps(_prune(data), separators=(",", ":")).encode())
        return job.cache[1]

    def stream_json(self, stream: SimStream, *, with_jobs: bool = False) -> dict[str, Any]:
        status = stream.status()
        statuses = [j.status for j in stream.jobs]
        late = bool(stream.deadline_at and self.now > stream.deadline_at and status != "SUCC")
        started = [j.last_run.start for j in stream.jobs if j.last_run and j.last_run.start]
        ended = [j.last_run.end for j in stream.jobs if j.last_run and j.last_run.end]
        data: dict[str, Any] = {
            "flowNodeType": "JOBSTREAM", "id": stream.id, "name": stream.name, "originalJobStreamName": stream.name,
            "folder": stream.folder, "folderId": folder_id(stream.folder), "cpuFolderId": folder_id(stream.ws.folder),
            "workstation": stream.ws.name, "workstationId": stream.ws.id, "key": stream.key, "jobStreamModelId": stable_id(stream.folder + stream.name, "model"), "planId": self.plan_id,
            "schedTime": iso(stream.sched), "scheduledDate": iso(stream.sched), "timeZone": self.time_zone,
            "compositeStatus": {"status": status, "canceled": False, "cancelPending": False, "started": bool(started),
                                "error": status in ("ABEND", "STUCK"), "dontRun": False},
            "commonStatus": STREAM_COMMON.get(status, "UNDECIDED"), "priority": 10, "origPriority": 10, "limit": -1,
            "jobStreamStats": {
                "numberOfJob": len(statuses), "numberOfSuccessfullJob": statuses.count("SUCC"),
                "numberOfExecutingJob": sum(1 for s in statuses if s in RUNNING),
                "numberOfAbendedJob": statuses.count("ABEND"), "numberOfFailedJob": statuses.count("FAIL"),
                "numberOfUndecidedJob": 0, "numberOfNotRunningJob": sum(1 for s in statuses if s in NOT_STARTED),
            },
            "timeInfo": {"actualStartTime": iso(min(started)) if started else None,
                         "actualEndTime": iso(max(ended)) if status == "SUCC" and ended else None},
            "jsStatusFlags": {"released": False, "lateJobStream": late, "pendingPredecessor": False, "hasEveryJobs": False,
                              "inOrder": False, "dontTouch": False},
            "jsOptions": {"monitored": False, "carryForward": False},
            "timeRestrictions": {"startTime": iso(stream.sched), **({"deadlineTime": iso(stream.deadline_at)} if stream.deadline_at else {})},
            "actions": [],
        }
        if with_jobs:
            data["jobs"] = [self.job_json(j, with_dependencies=False) for j in stream.jobs]
        return data

    def job_log(self, run_id: str) -> tuple[SimJob, SimRun, tuple[list[str], list[str], list[str]]] | None:
        found = self.runs_by_id.get(run_id)
        if found is None:
            return None
        job, run = found
        if run.start is None:
            return None
        return job, run, render(job, run, self.now, self.time_zone)

    def flow_neighbours(self, job: SimJob, *, successors: bool, depth: int) -> list[SimJob]:
        seen: dict[str, SimJob] = {}
        frontier = [job]
        for _ in range(max(1, depth)):
            following: list[SimJob] = []
            for node in frontier:
                if successors:
                    nexts = list(node.successors)
                    for stream in self.streams_following(node.stream):
                        nexts.extend(stream.jobs)
                else:
                    nexts = list(node.follows) + [j for s in node.follows_streams for j in s.jobs]
                for other in nexts:
                    if other.id not in seen and other is not job:
                        seen[other.id] = other
                        following.append(other)
            frontier = following
            if not frontier:
                break
        return list(seen.values())
