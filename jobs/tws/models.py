"""Typed views of the HWA REST API v2 objects Resync reads (field names are the spec's, in camelCase).

Unknown extra fields are ignored (HWA versions add fields); the few fields Resync cannot do without
(`id`, `name`) are required, and a missing one or a wrong type raises pydantic's ValidationError,
which the client turns into `HwaProtocolError`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Final internal statuses: nothing more happens to the run unless someone acts.
FINAL_JOB_STATUSES = frozenset({"SUCC", "ABEND", "FAIL", "SUPPR", "CANCL", "ERROR", "COMPLT", "END"})
FAILED_JOB_STATUSES = frozenset({"ABEND", "FAIL", "ERROR"})
RUNNING_JOB_STATUSES = frozenset({"EXEC", "INTRO", "SUCCP", "ABENP", "WAIT"})
NOT_STARTED_JOB_STATUSES = frozenset({"HOLD", "READY", "FENCE", "WAIT", "PEND"})


class HwaModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class CompositeStatus(HwaModel):
    status: str | None = None
    substatus: str | None = None
    canceled: bool = False
    error: bool = False
    started: bool = False
    cancel_pending: bool = False
    dont_run: bool = False


class TimeInfo(HwaModel):
    estimated_duration: str | None = None
    actual_start_time: datetime | None = None
    elapsed_time: str | None = None
    actual_end_time: datetime | None = None


class JobRun(HwaModel):
    id: str
    job_id: str | None = None
    name: str | None = None
    actual_workstation: str | None = None
    job_number: int | None = None
    composite_status: CompositeStatus | None = None
    common_status: str | None = None
    return_code: int | None = None
    rerun_job: bool = False
    rerun_type: str | None = None
    confirmed: bool = False
    time_info: TimeInfo | None = None
    submitted_time: datetime | None = None
    last_in_rerun_chain: bool = False
    run_attempt: int | None = None


class JobOptions(HwaModel):
    no_operation: bool = False
    critical: bool = False
    requires_confirmation: bool = False
    every: bool = False


class JobStatusFlags(HwaModel):
    job_late: bool = False
    deadline_has_passed: bool = False
    until_gone: bool = False
    restarted: bool = False
    job_stream_cancelled: bool = False


class DependenciesStats(HwaModel):
    number_of_dependencies: int = 0
    number_of_unresolved_dependencies: int = 0
    number_of_non_resource_unresolved_dependencies: int = 0


class TimeRestrictions(HwaModel):
    start_time: datetime | None = None
    deadline_time: datetime | None = None
    latest_start_time: datetime | None = None


class Dependency(HwaModel):
    """One `DependencyInPlanV2` variant, flattened: the fields of every variant are optional."""

    dependency_type: str
    id: str | None = None
    dependency_status: str | None = None
    satisfied: bool = False
    job_id: str | None = None
    job_name: str | None = None
    job_stream_id: str | None = None
    job_stream_name: str | None = None
    job_stream_folder: str | None = None
    predecessor_status: CompositeStatus | dict[str, Any] | None = None
    file: dict[str, Any] | None = None
    name: str | None = None  # resource name
    quantity: int | None = None
    available: int | None = None
    prompt_name: str | None = None
    text: str | None = None
    prompt_status: str | None = None

    @property
    def label(self) -> str:
        kind = self.dependency_type
        if kind in ("INTERNAL", "EXTERNAL_JOB"):
            return f"{self.job_stream_name + '.' if self.job_stream_name else ''}{self.job_name or self.job_id}"
        if kind == "EXTERNAL_JOBSTREAM":
            return self.job_stream_name or self.job_stream_id or "?"
        if kind == "FILE":
            return str((self.file or {}).get("name") or "?")
        if kind == "RESOURCE":
            return f"{self.name} x{self.quantity}"
        if kind == "PROMPT":
            return self.prompt_name or self.text or "?"
        return kind


class JobInPlan(HwaModel):
    id: str
    name: str
    key: str | None = None
    folder: str | None = None  # the job stream's folder (a job in the plan is in its stream's folder)
    folder_id: str | None = None
    workstation: str | None = None
    workstation_id: str | None = None
    job_stream_id: str | None = None
    job_stream_name: str | None = None
    job_stream_workstation: str | None = None
    priority: int | None = None
    orig_priority: int | None = None
    sched_time: datetime | None = None
    end_time: datetime | None = None
    time_zone: str | None = None
    last_run_composite_status: CompositeStatus | None = None
    last_run_common_status: str | None = None
    job_options: JobOptions | None = None
    job_status_flags: JobStatusFlags | None = None
    jobruns: list[JobRun] = Field(default_factory=list)
    dependencies: list[Dependency] = Field(default_factory=list)
    dependencies_stats: DependenciesStats | None = None
    time_restrictions: TimeRestrictions | None = None

    @property
    def status(self) -> str:
        return (self.last_run_composite_status.status if self.last_run_composite_status else None) or "UNKNOWN"

    @property
    def substatus(self) -> str:
        return (self.last_run_composite_status.substatus if self.last_run_composite_status else None) or ""

    @property
    def canceled(self) -> bool:
        return bool(self.last_run_composite_status and self.last_run_composite_status.canceled)

    @property
    def critical(self) -> bool:
        return bool(self.job_options and self.job_options.critical)

    @property
    def late(self) -> bool:
        flags = self.job_status_flags
        return bool(flags and (flags.job_late or flags.deadline_has_passed))

    @property
    def last_run(self) -> JobRun | None:
        for run in reversed(self.jobruns):
            if run.last_in_rerun_chain:
                return run
        return self.jobruns[-1] if self.jobruns else None


class JobStreamStats(HwaModel):
    number_of_job: int = 0
    number_of_successfull_job: int = 0  # spelled so in the spec
    number_of_executing_job: int = 0
    number_of_abended_job: int = 0
    number_of_failed_job: int = 0


class JobStreamStatusFlags(HwaModel):
    late_job_stream: bool = False


class JobStreamInPlan(HwaModel):
    id: str
    name: str
    folder: str | None = None
    folder_id: str | None = None
    workstation: str | None = None
    key: str | None = None
    sched_time: datetime | None = None
    composite_status: CompositeStatus | None = None
    common_status: str | None = None
    priority: int | None = None
    limit: int | None = None
    job_stream_stats: JobStreamStats | None = None
    js_status_flags: JobStreamStatusFlags | None = None

    @property
    def status(self) -> str:
        return (self.composite_status.status if self.composite_status else None) or "UNKNOWN"


class WorkstationInPlan(HwaModel):
    id: str
    name: str
    folder: str | None = None
    folder_id: str | None = None
    type: str | None = None
    os: str | None = None
    active_states: list[str] = Field(default_factory=list)
    active_flags: list[str] = Field(default_factory=list)
    limit: int | None = None
    fence: int | None = None
    domain_name: str | None = None
    time_zone: str | None = None

    @property
    def linked(self) -> bool:
        return "LINKED" in self.active_states

    @property
    def running(self) -> bool:
        return bool({"RUNNING", "JOBMAN_UP"} & set(self.active_states))


class FlowNode(HwaModel):
    """A predecessor or successor (`FlowNodeInPlanV2`: a job or a job stream)."""

    id: str
    name: str
    flow_node_type: str = "JOB"
    folder: str | None = None
    workstation: str | None = None
    job_stream_name: str | None = None
    priority: int | None = None
    last_run_composite_status: CompositeStatus | None = None
    last_run_common_status: str | None = None
    composite_status: CompositeStatus | None = None
    job_options: JobOptions | None = None
    dependencies_stats: DependenciesStats | None = None

    @property
    def status(self) -> str:
        composite = self.last_run_composite_status or self.composite_status
        return (composite.status if composite else None) or "UNKNOWN"

    @property
    def critical(self) -> bool:
        return bool(self.job_options and self.job_options.critical)


class EngineInfo(HwaModel):
    display_version: str | None = None
    full_version: str | None = None
    timezone: str | None = None
    locale: str | None = None


class ResourceResponse(HwaModel):
    id: str | None = None
    url: str | None = None


class ActionResourceResponse(HwaModel):
    id: str | None = None
    url: str | None = None
    message: str | None = None
    is_error: bool = False


class FilterActionResponse(HwaModel):
    successful_resource_responses: list[ActionResourceResponse] = Field(default_factory=list)
    failed_resource_responses: list[ActionResourceResponse] = Field(default_factory=list)


class GroupedCount(HwaModel):
    count: int
    grouped_count: dict[str, int] = Field(default_factory=dict)


class JobPage(HwaModel):
    count: int | None = None
    results: list[JobInPlan] = Field(default_factory=list)
    next: str | None = None


class JobStreamPage(HwaModel):
    count: int | None = None
    results: list[JobStreamInPlan] = Field(default_factory=list)
    next: str | None = None


class WorkstationPage(HwaModel):
    count: int | None = None
    results: list[WorkstationInPlan] = Field(default_factory=list)
    next: str | None = None


class FlowNodeList(HwaModel):
    count: int | None = None
    results: list[FlowNode] = Field(default_factory=list)
