"""Job logs in the three-part shape of a distributed stdlist: launcher header, the job's own
output, and a trailer with the exit status and times. Wording is the mock's own (synthetic)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from jobs.tws.mock.simulator import SimJob, SimRun

RULE = "=" * 64


def _local(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%a %m/%d/%y %H:%M:%S %Z")


def render(job: SimJob, run: SimRun, now: datetime, zone: str) -> tuple[list[str], list[str], list[str]]:
    """(header, body, trailer) lines of `run`'s log as it stands at `now`."""
    assert run.start is not None
    header = [
        RULE,
        f"= JOB       : {job.ws.name}#{job.stream.name}[({job.stream.sched_label}),({job.stream.v1_internal_id})].{job.name}",
        f"= USER      : {job.user}",
        f"= JCLFILE   : {job.command}",
        f"= Job Number: {run.job_number}",
        f"= {_local(run.start, zone)}",
        RULE,
        "Resync mock jobmanrc: launching job under the batch user's environment",
        f"Resync mock jobmanrc: LANG=pt_BR.UTF-8 UNISON_JOB={job.name} UNISON_SCHED={job.stream.name}",
    ]
    body: list[str] = []
    elapsed = (min(now, run.end) if run.end else now) - run.start
    lines = job.output_for(run)
    if job.launch_failure and run.number == 1:
        lines = []
    # A running job has written only part of its output so far.
    if run.end is None and lines and job.duration > 0:
        done = max(1, int(len(lines) * min(1.0, elapsed.total_seconds() / job.duration)))
        lines = lines[:done]
    for offset, line in enumerate(lines):
        stamp = (run.start + timedelta(seconds=min(elapsed.total_seconds(), offset * 7))).astimezone(ZoneInfo(zone))
        body.append(f"{stamp:%H:%M:%S} {line}")
    trailer: list[str] = []
    if run.end is not None:
        rc = run.rc if run.rc is not None else (0 if run.status == "SUCC" else "-")
        trailer = [
            RULE,
            f"= Exit Status           : {rc}",
            f"= Elapsed Time (hh:mm:ss) : {_hms(elapsed.total_seconds())}",
            f"= Job CPU usage (user)   : {max(0.01, elapsed.total_seconds() * 0.03):.2f}s",
            f"= {_local(run.end, zone)}",
            RULE,
        ]
    return header, body, trailer


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
