"""Job actions: the only way anything in Resync changes HWA state.

Each action (`job_rerun`, `job_hold`, `job_release`, `job_cancel`, `job_kill`, `job_confirm`,
`job_release_dependencies`, `job_update_priority`, or `job_action` with an `action` name):

1. checks the acting user's role (operators, supervisors, admins); a refusal is audited;
2. requires a justification (and a ticket when ACTION_TICKET_REQUIRED);
3. re-reads the job's current state from HWA and checks the action is valid for it;
4. computes the impact (successors that will run or stay blocked, critical jobs affected);
5. writes a `job.action` audit event (outcome pending), calls HWA with the justification headers,
   records the outcome in a second event, and refreshes the job in the snapshot.

The steps are separate commits on purpose: the pending event must exist even if the process dies
during the HWA call, and a refusal must be recorded even though the call raises.

`job_action_preview(job=..., action=...)` gives the impact without acting, for a confirmation
screen or the chat's action proposal.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from django.conf import settings

from audit.models import AuditAction, AuditOutcome
from audit.services import audit_record
from jobs.models import JobInstance
from jobs.poll import job_refresh
from jobs.selectors import NodeSummary
from jobs.tws.client import HwaClient, Justification, get_client
from jobs.tws.errors import HwaError
from jobs.tws.models import FINAL_JOB_STATUSES, JobInPlan
from resync_site.lib.errors import ApplicationError, ConflictError, ForbiddenError
from resync_site.roles import OPERATIONS, has_role

logger = logging.getLogger(__name__)


class JobAction(StrEnum):
    RERUN = "rerun"
    HOLD = "hold"
    RELEASE = "release"
    CANCEL = "cancel"
    KILL = "kill"
    CONFIRM_SUCC = "confirm-succ"
    CONFIRM_ABEND = "confirm-abend"
    RELEASE_DEPENDENCIES = "release-dependencies"
    UPDATE_PRIORITY = "update-priority"


# Job statuses (lastRunCompositeStatus.status) in which HWA accepts each action
# (docs/hwa-rest-api.md section 6; the mock enforces the same table).
ALLOWED_STATUSES: dict[JobAction, frozenset[str]] = {
    JobAction.HOLD: frozenset({"HOLD", "READY", "FENCE", "WAIT"}),
    JobAction.RELEASE: frozenset({"HOLD"}),
    JobAction.RELEASE_DEPENDENCIES: frozenset({"HOLD", "READY", "FENCE", "WAIT"}),
    JobAction.KILL: frozenset({"EXEC"}),
    JobAction.RERUN: frozenset({"SUCC", "ABEND", "FAIL", "SUPPR"}),
    JobAction.CONFIRM_SUCC: frozenset({"ABEND", "PEND", "READY", "HOLD", "EXEC", "ABENP"}),
    JobAction.CONFIRM_ABEND: frozenset({"PEND", "READY", "HOLD", "EXEC"}),
    JobAction.CANCEL: frozenset({"HOLD", "READY", "FENCE", "WAIT", "INTRO", "EXEC"}),
    JobAction.UPDATE_PRIORITY: frozenset({"HOLD", "READY", "FENCE", "WAIT", "INTRO", "EXEC", "PEND"}),
}
UNBLOCKING = frozenset({JobAction.RERUN, JobAction.RELEASE, JobAction.CONFIRM_SUCC, JobAction.RELEASE_DEPENDENCIES})
BLOCKING = frozenset({JobAction.HOLD, JobAction.CANCEL, JobAction.KILL, JobAction.CONFIRM_ABEND})
IMPACT_DEPTH = 3


@dataclass(frozen=True)
class ActionPreview:
    action: JobAction
    job: NodeSummary
    allowed: bool
    reason: str
    will_run: list[NodeSummary] = field(default_factory=list)
    stay_blocked: list[NodeSummary] = field(default_factory=list)
    critical_affected: list[NodeSummary] = field(default_factory=list)
    high_risk: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = str(self.action)
        return data


@dataclass(frozen=True)
class ActionResult:
    action: JobAction
    job: NodeSummary
    status_after: str
    audit_sequence: int
    message: str


def _action(value: str | JobAction) -> JobAction:
    try:
        return JobAction(str(value))
    except ValueError as exc:
        raise ApplicationError(f"Unknown job action {value!r}", code="unknown_action") from exc


def _summary(job: JobInPlan) -> NodeSummary:
    stats = job.dependencies_stats
    return NodeSummary(job.id, job.name, job.job_stream_name or "", job.workstation or "", job.status, job.critical,
                       stats.number_of_unresolved_dependencies if stats else 0)


def _hwa_id(job: JobInstance | str) -> str:
    return job.hwa_id if isinstance(job, JobInstance) else str(job)


def _guard(action: JobAction, live: JobInPlan) -> tuple[bool, str]:
    if live.canceled and action is not JobAction.UPDATE_PRIORITY:
        return False, f"{live.name} was cancelled: no action other than a priority change applies."
    if live.status not in ALLOWED_STATUSES[action]:
        return False, f"{action} is not valid for {live.name} in status {live.status}."
    if action is JobAction.RELEASE and live.priority != 0:
        return False, f"{live.name} is not held (priority {live.priority}): release only applies to a held job; release its dependencies instead."
    if action is JobAction.RELEASE_DEPENDENCIES and not (live.dependencies_stats and live.dependencies_stats.number_of_unresolved_dependencies):
        return False, f"{live.name} has no unresolved dependency to release."
    return True, ""


def job_action_preview(*, job: JobInstance | str, action: str | JobAction, client: HwaClient | None = None) -> ActionPreview:
    """What `action` on `job` would do, from HWA's live state: whether it is allowed now, which
    successors would run or stay blocked, and which critical jobs are affected. Acts on nothing."""
    action = _action(action)
    client = client or get_client()
    live = client.job(_hwa_id(job))
    allowed, reason = _guard(action, live)
    successors = [NodeSummary.from_flow_node(n) for n in client.job_successors(live.id, depth=IMPACT_DEPTH)]
    pending = [s for s in successors if s.status not in FINAL_JOB_STATUSES]
    will_run: list[NodeSummary] = []
    stay_blocked: list[NodeSummary] = []
    if action in UNBLOCKING:
        direct = {n.id for n in client.job_successors(live.id, depth=1)}
        for node in pending:
            # A direct successor waiting only on this job is released by it; everything else still waits.
            (will_run if node.hwa_id in direct and node.unresolved_dependencies <= 1 else stay_blocked).append(node)
    elif action in BLOCKING:
        stay_blocked = pending
    critical = [n for n in [_summary(live), *(will_run + stay_blocked)] if n.critical]
    high_risk = action in (JobAction.CANCEL, JobAction.KILL) and bool(critical)
    return ActionPreview(action, _summary(live), allowed, reason, will_run, stay_blocked, critical, high_risk)


def _audit(action: AuditAction, *, acting_user: Any, target: NodeSummary | str, outcome: AuditOutcome, details: dict[str, Any]) -> int:
    if isinstance(target, NodeSummary):
        target_id, label = target.hwa_id, f"{target.workstation}#{target.stream}.{target.name}"
    else:
        target_id, label = target, target
    event = audit_record(action=action, actor=acting_user, target_type="job", target_id=target_id, target_label=label,
                         outcome=outcome, details=details)
    return event.sequence


def job_action(
    *,
    acting_user: Any,
    job: JobInstance | str,
    action: str | JobAction,
    justification: str,
    ticket: str = "",
    priority: int | None = None,
    client: HwaClient | None = None,
) -> ActionResult:
    action = _action(action)
    hwa_id = _hwa_id(job)
    target: NodeSummary | str = hwa_id
    if isinstance(job, JobInstance):
        target = NodeSummary(job.hwa_id, job.name, job.stream_name, job.workstation, job.status, job.critical)
    base = {"action": str(action), "justification": justification.strip()[:1000], "ticket": ticket.strip()[:64]}
    if not has_role(acting_user, OPERATIONS):
        _audit(AuditAction.JOB_ACTION_REFUSED, acting_user=acting_user, target=target, outcome=AuditOutcome.REFUSED,
               details={**base, "reason": "role"})
        raise ForbiddenError("Your role does not allow actions on jobs.", code="role_required")
    if not base["justification"]:
        _audit(AuditAction.JOB_ACTION_REFUSED, acting_user=acting_user, target=target, outcome=AuditOutcome.REFUSED,
               details={**base, "reason": "justification_missing"})
        raise ApplicationError("A justification is required for every action on a job.", code="justification_required")
    if settings.ACTION_TICKET_REQUIRED and not base["ticket"]:
        _audit(AuditAction.JOB_ACTION_REFUSED, acting_user=acting_user, target=target, outcome=AuditOutcome.REFUSED,
               details={**base, "reason": "ticket_missing"})
        raise ApplicationError("A ticket number is required for every action on a job.", code="ticket_required")
    if action is JobAction.UPDATE_PRIORITY and (priority is None or not 0 <= priority <= 101):
        raise ApplicationError("A priority between 0 and 101 is required.", code="priority_required")
    client = client or get_client()
    try:
        preview = job_action_preview(job=hwa_id, action=action, client=client)
    except HwaError as exc:
        _audit(AuditAction.JOB_ACTION, acting_user=acting_user, target=target, outcome=AuditOutcome.FAILURE,
               details={**base, "stage": "read", "error": exc.code, "message": exc.message[:300], "hwa_message_ids": exc.message_ids})
        raise
    target = preview.job
    impact = {
        "status_before": preview.job.status,
        "will_run": [n.name for n in preview.will_run],
        "stay_blocked": [n.name for n in preview.stay_blocked][:50],
        "critical_affected": [n.name for n in preview.critical_affected],
        "high_risk": preview.high_risk,
    }
    if priority is not None:
        impact["priority"] = priority
    if not preview.allowed:
        _audit(AuditAction.JOB_ACTION_REFUSED, acting_user=acting_user, target=target, outcome=AuditOutcome.REFUSED,
               details={**base, **impact, "reason": "state", "message": preview.reason})
        raise ConflictError(preview.reason, code="action_not_allowed", extra={"status": preview.job.status})
    _audit(AuditAction.JOB_ACTION, acting_user=acting_user, target=target, outcome=AuditOutcome.PENDING, details={**base, **impact})
    headers = Justification(description=base["justification"], ticket=base["ticket"])
    try:
        if action is JobAction.RERUN:
            client.job_rerun(hwa_id, justification=headers)
        elif action is JobAction.RELEASE_DEPENDENCIES:
            client.job_release_dependencies(hwa_id, justification=headers)
        elif action is JobAction.UPDATE_PRIORITY:
            assert priority is not None
            client.job_update_priority(hwa_id, priority=priority, justification=headers)
        else:
            client.job_action(hwa_id, str(action), justification=headers)
    except HwaError as exc:
        _audit(AuditAction.JOB_ACTION, acting_user=acting_user, target=target, outcome=AuditOutcome.FAILURE,
               details={**base, "stage": "call", "error": exc.code, "message": exc.message[:300], "hwa_message_ids": exc.message_ids})
        raise
    status_after = preview.job.status
    try:
        refreshed = job_refresh(hwa_id=hwa_id, client=client)
        if refreshed is not None:
            status_after = refreshed.status
    except HwaError as exc:  # the action happened; the next poll will catch up
        logger.warning("refresh after %s of %s failed: %s", action, hwa_id, exc.message)
    sequence = _audit(AuditAction.JOB_ACTION, acting_user=acting_user, target=target, outcome=AuditOutcome.SUCCESS,
                      details={**base, "status_after": status_after})
    return ActionResult(action, preview.job, status_after, sequence, f"{action} sent to HWA for {preview.job.name}")


def job_rerun(*, acting_user: Any, job: JobInstance | str, justification: str, ticket: str = "", client: HwaClient | None = None) -> ActionResult:
    return job_action(acting_user=acting_user, job=job, action=JobAction.RERUN, justification=justification, ticket=ticket, client=client)


def job_hold(*, acting_user: Any, job: JobInstance | str, justification: str, ticket: str = "", client: HwaClient | None = None) -> ActionResult:
    return job_action(acting_user=acting_user, job=job, action=JobAction.HOLD, justification=justification, ticket=ticket, client=client)


def job_release(*, acting_user: Any, job: JobInstance | str, justification: str, ticket: str = "", client: HwaClient | None = None) -> ActionResult:
    return job_action(acting_user=acting_user, job=job, action=JobAction.RELEASE, justification=justification, ticket=ticket, client=client)


def job_cancel(*, acting_user: Any, job: JobInstance | str, justification: str, ticket: str = "", client: HwaClient | None = None) -> ActionResult:
    return job_action(acting_user=acting_user, job=job, action=JobAction.CANCEL, justification=justification, ticket=ticket, client=client)


def job_kill(*, acting_user: Any, job: JobInstance | str, justification: str, ticket: str = "", client: HwaClient | None = None) -> ActionResult:
    return job_action(acting_user=acting_user, job=job, action=JobAction.KILL, justification=justification, ticket=ticket, client=client)


def job_confirm(
    *, acting_user: Any, job: JobInstance | str, success: bool, justification: str, ticket: str = "", client: HwaClient | None = None
) -> ActionResult:
    action = JobAction.CONFIRM_SUCC if success else JobAction.CONFIRM_ABEND
    return job_action(acting_user=acting_user, job=job, action=action, justification=justification, ticket=ticket, client=client)


def job_release_dependencies(
    *, acting_user: Any, job: JobInstance | str, justification: str, ticket: str = "", client: HwaClient | None = None
) -> ActionResult:
    return job_action(acting_user=acting_user, job=job, action=JobAction.RELEASE_DEPENDENCIES, justification=justification,
                      ticket=ticket, client=client)


def job_update_priority(
    *, acting_user: Any, job: JobInstance | str, priority: int, justification: str, ticket: str = "", client: HwaClient | None = None
) -> ActionResult:
    return job_action(acting_user=acting_user, job=job, action=JobAction.UPDATE_PRIORITY, priority=priority,
                      justification=justification, ticket=ticket, client=client)
