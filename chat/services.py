"""Writes of the chat: turns, the agent run, feedback, and the action confirmation flow.

Action proposals move through: pending → (confirmed by the proposer with a justification) →
executing → executed | failed; high-risk ones stop at awaiting_approval until a supervisor other
than the proposer approves from their own session. Any open proposal can be rejected, and one
past its expiry becomes expired the moment anyone touches it (or the periodic sweep runs). Every
step writes its audit event in the same transaction as the state change. A confirmed proposal is
carried out at most once (`started_at` is stamped before anything reaches HWA); one stuck executing
(its task message lost, or its worker dead) is failed by `proposals_recover` for the operator to
decide, never run again.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditAction, AuditOutcome
from audit.services import audit_record
from chat.events import APPROVERS_GROUP, TurnEmitter, event_publish, group_send
from chat.models import (
    ActionProposal,
    Conversation,
    Feedback,
    Message,
    MessageRole,
    ProposalAction,
    ProposalStatus,
    Turn,
    TurnStatus,
)
from knowledge import learning
from resync_site.lib.errors import ApplicationError, ConflictError, ForbiddenError, NotFoundError
from resync_site.roles import APPROVERS, OPERATIONS, has_role

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000
HISTORY_TURNS = 3
STOP_CHECK_SECONDS = 0.2
STALE_TURN_MARGIN_SECONDS = 120
HIGH_RISK_ACTIONS = (ProposalAction.CANCEL, ProposalAction.KILL)


# --- turns ----------------------------------------------------------------------------------------


def conversation_open(*, acting_user: Any, conversation_id: uuid.UUID | None) -> Conversation:
    """The user's conversation with that id, created when new; someone else's is "not found"."""
    if not has_role(acting_user, OPERATIONS):
        raise ForbiddenError("Your role does not allow using the chat.")
    if conversation_id is None:
        return Conversation.objects.create(user=acting_user)
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return Conversation.objects.create(id=conversation_id, user=acting_user)
    if conversation.user_id != acting_user.pk:
        raise NotFoundError("No such conversation.", code="conversation_not_found")
    return conversation


@transaction.atomic
def turn_start(*, acting_user: Any, conversation: Conversation | uuid.UUID, turn_id: uuid.UUID, question: str,
               agent: str = "") -> Turn:
    """Records the question and queues the turn; refuses while another turn of the conversation runs.

    `agent`: the slug of the agent the operator picked in the chat's agent picker (empty: "Automatic",
    the router picks). The choice is kept on the conversation, so the page shows it again after a
    reload. A leading "@slug" in the question pins that agent for this message only. An unknown,
    disabled or (for the user's role) unusable agent is refused with a clear error.

    `conversation` may be an id the caller already checked belongs to the user (or made itself);
    a conversation with that id is created for the user when none exists yet.
    """
    if not isinstance(conversation, Conversation):
        conversation = conversation_open(acting_user=acting_user, conversation_id=conversation)
    question = question.strip()
    if not question:
        raise ApplicationError("The message is empty.", code="empty_message")
    if len(question) > MAX_QUESTION_CHARS:
        raise ApplicationError(f"The message is longer than {MAX_QUESTION_CHARS} characters.", code="message_too_long")
    from chat.agent.router import agent_mention, agent_pin

    picked = agent_pin(agent, user=acting_user) if agent else None
    # "@knowledge how do I fix X?" pins the knowledge agent from the chat box itself, for this message.
    mentioned, question = agent_mention(question)
    if not question:
        raise ApplicationError("The message is empty.", code="empty_message")
    pinned = agent_pin(mentioned, user=acting_user) if mentioned else picked
    # A turn whose worker died (or never picked it up) must not block the conversation forever.
    stale_before = timezone.now() - timedelta(seconds=settings.LLM_TURN_BUDGET_SECONDS + STALE_TURN_MARGIN_SECONDS)
    Turn.objects.filter(conversation=conversation, status__in=[TurnStatus.QUEUED, TurnStatus.RUNNING],
                        created_at__lt=stale_before).update(status=TurnStatus.FAILED, finished_at=timezone.now())
    try:
        with transaction.atomic():
            turn = Turn.objects.create(id=turn_id, conversation=conversation, user=acting_user, question=question,
                                       agent=pinned, agent_pinned=pinned is not None)
    except IntegrityError as exc:
        raise ConflictError("An answer is still being written in this conversation: wait or stop it.", code="turn_in_progress") from exc
    Message.objects.create(conversation=conversation, turn=turn, role=MessageRole.USER, content=question)
    updates: dict[str, Any] = {"updated_at": timezone.now()}
    if conversation.agent_id != (picked.pk if picked else None):
        updates["agent"] = picked
    if not conversation.title:
        updates["title"] = question[:120]
    Conversation.objects.filter(pk=conversation.pk).update(**updates)
    # The question is an event too, so a replay rebuilds the whole conversation; it goes out
    # before the turn is queued (on-commit callbacks run in order).
    transaction.on_commit(lambda: event_publish(
        conversation_id=conversation.id, turn_id=turn.id, type="question",
        payload={"text": question, "user": acting_user.get_username()}))
    transaction.on_commit(lambda: dispatch("chat.tasks.turn_run", str(turn.id)))
    return turn


@transaction.atomic
def turn_stop(*, acting_user: Any, conversation_id: uuid.UUID, turn_id: uuid.UUID | None = None) -> int:
    """Stops the user's turn(s): a running one is asked to stop (the runner ends it); a queued one
    ends here, and the worker's conditional claim will then find nothing to run."""
    turns = Turn.objects.filter(conversation_id=conversation_id, conversation__user=acting_user,
                                status__in=[TurnStatus.QUEUED, TurnStatus.RUNNING])
    if turn_id is not None:
        turns = turns.filter(pk=turn_id)
    queued = list(turns.filter(status=TurnStatus.QUEUED).values_list("pk", flat=True))
    Turn.objects.filter(pk__in=queued, status=TurnStatus.QUEUED).update(
        status=TurnStatus.STOPPED, stop_requested=True, finished_at=timezone.now())
    for pk in queued:
        transaction.on_commit(lambda pk=pk: event_publish(
            conversation_id=conversation_id, turn_id=pk, type="done",
            payload={"latency_ms": 0, "model": "", "sources": [], "message_id": None, "status": str(TurnStatus.STOPPED)}))
    return turns.update(stop_requested=True) + len(queued)


def _history(turn: Turn) -> list[dict[str, str]]:
    previous = (Message.objects.filter(conversation_id=turn.conversation_id, created_at__lt=turn.created_at)
                .exclude(turn=turn).order_by("-created_at", "-id")[: HISTORY_TURNS * 2])
    return [{"role": m.role, "content": m.content[:2000]} for m in reversed(previous) if m.content]


class _StopWatch:
    """Reads the turn's stop flag at most every STOP_CHECK_SECONDS (it is set from another process)."""

    def __init__(self, turn_id: uuid.UUID) -> None:
        self.turn_id = turn_id
        self.checked = 0.0
        self.stopped = False

    def __call__(self) -> bool:
        if self.stopped:
            return True
        now = time.monotonic()
        if now - self.checked >= STOP_CHECK_SECONDS:
            self.checked = now
            self.stopped = Turn.objects.filter(pk=self.turn_id, stop_requested=True).exists()
        return self.stopped


def turn_execute(*, turn_id: uuid.UUID | str) -> None:
    from chat.agent import tracing

    # The root span of the turn: routing, tools, HWA, LLM and Qdrant spans are its children.
    with tracing.span("chat.turn", **{"resync.turn_id": str(turn_id)}):
        _turn_execute(turn_id=turn_id)


def _turn_execute(*, turn_id: uuid.UUID | str) -> None:
    """Runs one turn: the LLM loop (or no-LLM mode), events, records and the AI_ANSWER audit.

    Safe to run twice: the turn is claimed with a conditional UPDATE, a second run finds nothing.
    """
    from chat.agent import nollm, validation
    from chat.agent.intents import detect_language, recognize
    from chat.agent.llm import LlmUnavailable, StopRequested, llm_answer
    from chat.agent.tools import ToolContext

    started = time.monotonic()
    claimed = Turn.objects.filter(pk=turn_id, status=TurnStatus.QUEUED).update(status=TurnStatus.RUNNING, started_at=timezone.now())
    if not claimed:
        return
    turn = Turn.objects.select_related("user", "conversation").get(pk=turn_id)
    emitter = TurnEmitter(conversation_id=turn.conversation_id, turn_id=turn.id)
    language = detect_language(turn.question)
    recognized = recognize(turn.question)
    ctx = ToolContext(user=turn.user, conversation_id=turn.conversation_id, turn_id=turn.id, question=turn.question,
                      language=language, emitter=emitter, requested_action=recognized.action)
    # What the person named: their message, else ("rerun it") the latest of their earlier ones that named something.
    earlier = (Message.objects.filter(conversation_id=turn.conversation_id, role=MessageRole.USER,
                                      created_at__lt=turn.created_at).exclude(turn=turn)
               .order_by("-created_at", "-id").values_list("content", flat=True)[:HISTORY_TURNS])
    ctx.named = validation.named_targets(turn.question, earlier_questions=tuple(earlier))
    from chat.agent.manager import agent_run_config
    from chat.agent.router import agent_route

    agent = agent_run_config(agent_route(recognized=recognized, pinned=turn.agent if turn.agent_pinned else None,
                                         turn_id=turn.id))
    ctx.allowed_tools, ctx.agent = agent.tools, agent.slug
    # Pinned and honoured: the pinned agent may have been disabled since (then the router chose).
    pinned = turn.agent_pinned and agent.agent_id is not None and agent.agent_id == turn.agent_id
    tokens = 0
    stop = _StopWatch(turn.id)
    model = "no-llm"
    fallback_reason = ""
    status = TurnStatus.DONE
    verified: str | None = None
    try:
        # A question the team already answered and approved gets that answer as is, in both modes.
        verified = nollm.verified_answer(ctx)
        if verified is not None:
            model = "verified"
            if not stop():
                emitter.token(verified)
        elif settings.LLM_MODEL:
            try:
                outcome = llm_answer(ctx, history=_history(turn), on_token=emitter.token, should_stop=stop, agent=agent)
                model, tokens = outcome.model, outcome.tokens
            except LlmUnavailable as exc:
                fallback_reason = exc.reason
                logger.warning("LLM unavailable for turn %s: %s; answering in no-LLM mode", turn.id, exc.reason)
                note = nollm.fallback_note(language, exc.reason)
                emitter.token(("\n\n" if exc.spoke else "") + note)
                emitter.token(nollm.compose(ctx) if not stop() else "")
        else:
            text = nollm.compose(ctx)
            if not stop():
                emitter.token(text)
    except StopRequested:
        status = TurnStatus.STOPPED
    except Exception:
        logger.exception("chat turn %s failed", turn.id)
        status = TurnStatus.FAILED
        emitter.emit("error", code="internal", message="Something went wrong while answering; it has been logged.")
    if stop():
        status = TurnStatus.STOPPED
    try:
        answer = _turn_record(turn, emitter, ctx=ctx, agent=agent, pinned=pinned, status=status, model=model,
                              language=language, fallback_reason=fallback_reason, tokens=tokens)
    except Exception:
        # The answer was streamed but cannot be stored (the database failing): the person is told at
        # once, instead of a turn that never ends on their screen.
        logger.exception("recording chat turn %s failed", turn.id)
        _turn_unrecorded(turn)
        return
    latency_ms = int((time.monotonic() - started) * 1000)
    first_token_ms = int((emitter.first_token_at - started) * 1000) if emitter.first_token_at else None
    emitter.emit("done", latency_ms=latency_ms, first_token_ms=first_token_ms, model=model, sources=ctx.sources_used,
                 message_id=answer.pk, status=str(status), fallback_reason=fallback_reason, language=language,
                 agent=agent.slug, agent_pinned=pinned, prompt_version=agent.version_label,
                 verified=verified is not None)


def _turn_record(turn: Turn, emitter: TurnEmitter, *, ctx: Any, agent: Any, pinned: bool, status: str, model: str,
                 language: str, fallback_reason: str, tokens: int) -> Message:
    """The answer, the turn's outcome and its AI_ANSWER audit event, together or not at all."""
    emitter.flush()
    with transaction.atomic():
        answer = Message.objects.create(conversation_id=turn.conversation_id, turn=turn, role=MessageRole.ASSISTANT,
                                        content=emitter.text, model=model, language=language)
        Turn.objects.filter(pk=turn.id).update(status=status, finished_at=timezone.now(), model=model, language=language,
                                               prompt_version=agent.version_label[:32], fallback_reason=fallback_reason[:200],
                                               agent_id=agent.agent_id, agent_version_id=agent.version_id, tokens=tokens)
        audit_record(
            action=AuditAction.AI_ANSWER, actor=turn.user, target_type="chat.turn", target_id=str(turn.id),
            target_label=turn.question[:120], request_id=turn.id.hex,
            outcome=AuditOutcome.SUCCESS if status == TurnStatus.DONE else AuditOutcome.FAILURE,
            details={
                "question": turn.question[:2000], "tools": ctx.tools_called, "sources": ctx.sources_used,
                "model": model, "prompt_version": agent.version_label, "agent": agent.slug, "agent_pinned": pinned,
                "language": language,
                "fallback_reason": fallback_reason, "status": str(status), "proposals": ctx.proposals,
            },
        )
    return answer


def _turn_unrecorded(turn: Turn) -> None:
    """A live-only error frame (storing it may fail too), then the turn marked failed if the database allows."""
    event_publish(conversation_id=turn.conversation_id, turn_id=turn.id, type="error", persist=False,
                  payload={"code": "internal", "message": "The answer could not be saved; it has been logged. Please ask again."})
    try:
        Turn.objects.filter(pk=turn.id, status=TurnStatus.RUNNING).update(status=TurnStatus.FAILED, finished_at=timezone.now())
    except Exception:  # the stale-turn rule in turn_start frees the conversation later
        logger.exception("marking chat turn %s failed", turn.id)


@transaction.atomic
def conversation_resolve(*, acting_user: Any, conversation_id: uuid.UUID, note: str = "") -> Conversation:
    """The person says the conversation solved their problem: a candidate for learned knowledge."""
    conversation = Conversation.objects.select_for_update().filter(pk=conversation_id, user=acting_user).first()
    if conversation is None:
        raise NotFoundError("No such conversation.", code="conversation_not_found")
    if conversation.resolved_at is None:
        conversation.resolved_at = timezone.now()
        conversation.save(update_fields=["resolved_at"])
        audit_record(action=AuditAction.CONVERSATION_RESOLVED, actor=acting_user, target_type="chat.conversation",
                     target_id=str(conversation.pk), target_label=conversation.title[:255],
                     details={"note": note[:1000], "turns": conversation.turns.count()})
        learning.on_conversation_resolved(conversation=conversation, acting_user=acting_user, note=note)
    return conversation


# --- feedback -----------------------------------------------------------------------------------


@transaction.atomic
def feedback_record(*, acting_user: Any, message_id: int, rating: str, reason: str = "") -> Feedback:
    message = Message.objects.filter(pk=message_id, role=MessageRole.ASSISTANT, conversation__user=acting_user).first()
    if message is None:
        raise NotFoundError("No such answer.", code="message_not_found")
    feedback, _ = Feedback.objects.update_or_create(message=message, user=acting_user,
                                                    defaults={"rating": rating, "reason": reason[:1000]})
    audit_record(action=AuditAction.FEEDBACK, actor=acting_user, target_type="chat.message", target_id=message.pk,
                 target_label=message.content[:120], details={"rating": rating, "reason": reason[:1000], "turn_id": str(message.turn_id)})
    learning.on_feedback(feedback=feedback)
    return feedback


# --- actions --------------------------------------------------------------------------------------


def proposal_card(proposal: ActionProposal) -> dict[str, Any]:
    return {
        "proposal_id": str(proposal.id),
        "action": proposal.action,
        "action_label": str(ProposalAction(proposal.action).label),
        "jobs": proposal.jobs,
        "impact": proposal.impact,
        "needs_second_approver": proposal.high_risk,
        "status": proposal.status,
        "status_label": str(ProposalStatus(proposal.status).label),
        "proposed_by": proposal.proposed_by.get_username() if proposal.proposed_by_id else "",
        "expires_at": proposal.expires_at.isoformat(),
        "ticket_required": settings.ACTION_TICKET_REQUIRED,
        "result": proposal.result,
    }


def _publish_proposal(proposal: ActionProposal, type: str = "action_proposal", **extra: Any) -> None:
    card = {**proposal_card(proposal), **extra}

    def send() -> None:
        event_publish(conversation_id=proposal.conversation_id, turn_id=proposal.turn_id, type=type, payload=card)
        # Approvers hear of a high-risk proposal once the operator has confirmed it, and of its end.
        if proposal.high_risk and proposal.status != ProposalStatus.PENDING:
            group_send(APPROVERS_GROUP, {"type": "approval_update", "turn_id": None, **card,
                                         "conversation_id": str(proposal.conversation_id)})

    transaction.on_commit(send)


def proposal_create(*, conversation_id: Any, turn_id: Any, acting_user: Any, action: str, jobs: list[Any], reason: str = "",
                    four_eyes: bool = False) -> ActionProposal:
    """A proposal for a person to confirm. Never executes anything. `four_eyes`: the validation layer
    routed it to a second approver (bulk cancel/kill, kill of a critical job)."""
    from chat.agent import sources

    if not has_role(acting_user, OPERATIONS):
        raise ForbiddenError("Your role does not allow proposing actions.")
    action = ProposalAction(action)
    impact = sources.action_preview(action=action, jobs=jobs, acting_user=acting_user)
    if not impact.allowed:
        raise ApplicationError(impact.reason or "The action is not allowed for the job's current state.", code="not_allowed")
    critical = [j.label for j in jobs if j.critical]
    high_risk = four_eyes or (action in HIGH_RISK_ACTIONS and bool(critical or impact.critical)) or len(jobs) > settings.ACTION_BULK_LIMIT
    with transaction.atomic():
        proposal = ActionProposal.objects.create(
            conversation_id=conversation_id, turn_id=turn_id, proposed_by=acting_user, action=action,
            jobs=[{"id": j.id, "name": j.name, "stream": j.stream, "workstation": j.workstation, "status": j.status,
                   "critical": j.critical, "folder": j.folder, "label": j.label} for j in jobs],
            impact=impact.as_data(), reason=reason[:1000], high_risk=high_risk,
            expires_at=timezone.now() + timedelta(seconds=settings.ACTION_PROPOSAL_TTL_SECONDS),
        )
        audit_record(action=AuditAction.ACTION_PROPOSED, actor=acting_user, target_type="chat.proposal", target_id=str(proposal.id),
                     target_label=str(proposal)[:255],
                     details={"proposal_id": str(proposal.id), "action": action.value, "jobs": [j.label for j in jobs],
                              "high_risk": high_risk, "impact": impact.as_data(), "turn_id": str(turn_id or "")})
        _publish_proposal(proposal)
    return proposal


def _lock_open(proposal_id: Any) -> ActionProposal:
    proposal = ActionProposal.objects.select_for_update().select_related("proposed_by").filter(pk=proposal_id).first()
    if proposal is None:
        raise NotFoundError("No such proposal.", code="proposal_not_found")
    return proposal


def _expire_if_due(proposal: ActionProposal) -> bool:
    if not proposal.is_expired:
        return False
    previous = proposal.status
    proposal.status = ProposalStatus.EXPIRED
    proposal.save(update_fields=["status"])
    audit_record(action=AuditAction.ACTION_EXPIRED, actor_label="system", target_type="chat.proposal", target_id=str(proposal.id),
                 target_label=str(proposal)[:255], outcome=AuditOutcome.FAILURE,
                 details={"proposal_id": str(proposal.id), "action": proposal.action, "was": previous,
                          "high_risk": proposal.high_risk})
    _publish_proposal(proposal, "action_result", ok=False, message="The proposal expired before it was confirmed.")
    return True


def _check_open(proposal: ActionProposal, expected: tuple[str, ...]) -> None:
    if proposal.status not in expected:
        raise ConflictError(f"The proposal is {ProposalStatus(proposal.status).label.lower()}.", code="proposal_not_open")


def proposal_confirm(*, proposal_id: Any, acting_user: Any, justification: str, ticket: str = "") -> ActionProposal:
    justification = (justification or "").strip()
    ticket = (ticket or "").strip()
    with transaction.atomic():
        proposal = _lock_open(proposal_id)
        if proposal.proposed_by_id != acting_user.pk:
            raise NotFoundError("No such proposal.", code="proposal_not_found")
        if not has_role(acting_user, OPERATIONS):
            raise ForbiddenError("Your role does not allow confirming actions.")
        if _expire_if_due(proposal):
            expired = True
        else:
            expired = False
            _check_open(proposal, (ProposalStatus.PENDING,))
            if len(justification) < 5:
                raise ApplicationError("Write a justification (at least 5 characters).", code="justification_required")
            if settings.ACTION_TICKET_REQUIRED and not ticket:
                raise ApplicationError("A ticket id is required for actions.", code="ticket_required")
            proposal.justification = justification[:2000]
            proposal.ticket = ticket[:64]
            proposal.confirmed_by = acting_user
            proposal.confirmed_at = timezone.now()
            proposal.status = ProposalStatus.AWAITING_APPROVAL if proposal.high_risk else ProposalStatus.EXECUTING
            proposal.save()
            audit_record(action=AuditAction.ACTION_CONFIRMED, actor=acting_user, target_type="chat.proposal",
                         target_id=str(proposal.id), target_label=str(proposal)[:255],
                         outcome=AuditOutcome.PENDING,
                         details={"proposal_id": str(proposal.id), "action": proposal.action, "high_risk": proposal.high_risk,
                                  "approvers": [], "justification": proposal.justification, "ticket": proposal.ticket,
                                  "jobs": [j["name"] for j in proposal.jobs]})
            _publish_proposal(proposal)
            if not proposal.high_risk:
                transaction.on_commit(lambda: _proposal_dispatch(str(proposal.id)))
    if expired:
        raise ConflictError("The proposal expired; ask again to get a fresh one.", code="proposal_expired")
    return proposal


def proposal_approve(*, proposal_id: Any, acting_user: Any, note: str = "") -> ActionProposal:
    with transaction.atomic():
        proposal = _lock_open(proposal_id)
        if not has_role(acting_user, APPROVERS):
            raise ForbiddenError("Only a supervisor can approve high-risk actions.")
        if proposal.proposed_by_id == acting_user.pk:
            raise ForbiddenError("You cannot approve your own proposal: another supervisor must.", code="own_proposal")
        expired = _expire_if_due(proposal)
        if not expired:
            _check_open(proposal, (ProposalStatus.AWAITING_APPROVAL,))
            proposal.decided_by = acting_user
            proposal.decided_at = timezone.now()
            proposal.decision_note = (note or "")[:1000]
            proposal.status = ProposalStatus.EXECUTING
            proposal.save()
            audit_record(action=AuditAction.ACTION_APPROVED, actor=acting_user, target_type="chat.proposal",
                         target_id=str(proposal.id), target_label=str(proposal)[:255],
                         details={"proposal_id": str(proposal.id), "action": proposal.action, "high_risk": True,
                                  "approvers": [acting_user.get_username()], "proposed_by": proposal.proposed_by.get_username(),
                                  "note": proposal.decision_note, "jobs": [j["name"] for j in proposal.jobs]})
            _publish_proposal(proposal)
            transaction.on_commit(lambda: _proposal_dispatch(str(proposal.id)))
    if expired:
        raise ConflictError("The proposal expired before it was approved.", code="proposal_expired")
    return proposal


def proposal_reject(*, proposal_id: Any, acting_user: Any, reason: str = "") -> ActionProposal:
    """The proposer withdraws it, or an approver refuses it."""
    with transaction.atomic():
        proposal = _lock_open(proposal_id)
        is_owner = proposal.proposed_by_id == acting_user.pk
        is_approver = has_role(acting_user, APPROVERS) and proposal.status == ProposalStatus.AWAITING_APPROVAL
        if not (is_owner or is_approver):
            raise NotFoundError("No such proposal.", code="proposal_not_found")
        expired = _expire_if_due(proposal)
        if not expired:
            _check_open(proposal, (ProposalStatus.PENDING, ProposalStatus.AWAITING_APPROVAL))
            proposal.status = ProposalStatus.REJECTED
            proposal.decided_by = acting_user
            proposal.decided_at = timezone.now()
            proposal.decision_note = (reason or "")[:1000]
            proposal.save()
            audit_record(action=AuditAction.ACTION_REJECTED, actor=acting_user, target_type="chat.proposal",
                         target_id=str(proposal.id), target_label=str(proposal)[:255], outcome=AuditOutcome.REFUSED,
                         details={"proposal_id": str(proposal.id), "action": proposal.action, "high_risk": proposal.high_risk,
                                  "by": "proposer" if is_owner else "approver", "reason": proposal.decision_note})
            _publish_proposal(proposal, "action_result", ok=False,
                              message="Rejected" + (f": {proposal.decision_note}" if proposal.decision_note else "."))
    if expired:
        raise ConflictError("The proposal had already expired.", code="proposal_expired")
    return proposal


def proposal_execute(*, proposal_id: Any) -> ActionProposal | None:
    """Carries out a confirmed (and, when needed, approved) proposal through the jobs services."""
    from chat.agent import sources
    from chat.agent.sources import JobInfo

    proposal = ActionProposal.objects.select_related("proposed_by", "confirmed_by", "decided_by").filter(
        pk=proposal_id, status=ProposalStatus.EXECUTING).first()
    if proposal is None or proposal.result:
        return None  # already done (a retried task) or no longer executing
    # At most once: the first delivery stamps started_at before anything reaches HWA; another one (a
    # redelivery after a worker died, a message sent twice) finds it stamped and runs nothing.
    if not ActionProposal.objects.filter(pk=proposal.pk, status=ProposalStatus.EXECUTING,
                                         started_at__isnull=True).update(started_at=timezone.now()):
        logger.warning("action proposal %s was already started by another delivery: not run again", proposal.pk)
        return None
    approvers = [proposal.decided_by.get_username()] if proposal.decided_by_id else []
    outcomes = []
    for job in proposal.jobs:
        info = JobInfo(id=job["id"], name=job["name"], stream=job.get("stream", ""), workstation=job.get("workstation", ""),
                       status=job.get("status", ""), critical=job.get("critical", False), folder=job.get("folder", ""),
                       show_folder="/" in job.get("label", ""))
        try:
            outcome = sources.action_execute(action=proposal.action, job=info, acting_user=proposal.confirmed_by,
                                             justification=proposal.justification, ticket=proposal.ticket, approvers=approvers)
            outcomes.append({"job": info.label, "ok": True, **outcome})
        except ApplicationError as exc:
            outcomes.append({"job": info.label, "ok": False, "code": exc.code, "message": exc.message})
        except Exception as exc:  # one job's failure must not lose the others' outcomes
            logger.exception("action %s on %s failed", proposal.action, info.label)
            outcomes.append({"job": info.label, "ok": False, "code": "internal", "message": type(exc).__name__})
    ok = all(o["ok"] for o in outcomes)
    with transaction.atomic():
        proposal.status = ProposalStatus.EXECUTED if ok else ProposalStatus.FAILED
        proposal.result = {"ok": ok, "jobs": outcomes}
        proposal.save(update_fields=["status", "result"])
        _publish_proposal(proposal, "action_result", ok=ok, outcomes=outcomes)
    return proposal


def proposals_expire() -> int:
    """Sweeps open proposals past their expiry (beat task); each one is audited."""
    count = 0
    for pk in ActionProposal.objects.filter(status__in=[ProposalStatus.PENDING, ProposalStatus.AWAITING_APPROVAL],
                                            expires_at__lte=timezone.now()).values_list("pk", flat=True):
        with transaction.atomic():
            proposal = ActionProposal.objects.select_for_update().get(pk=pk)
            count += _expire_if_due(proposal)
    return count


# Why a confirmed action was failed without its outcome (chat.action_failed's `reason`).
STUCK_NOT_SENT = "not_sent"  # the broker refused its task message: nothing reached HWA
STUCK_NEVER_STARTED = "never_started"  # no worker took it in time (its message was lost): nothing reached HWA
STUCK_INTERRUPTED = "interrupted"  # its worker stopped mid-way: some jobs may have been changed


def _stuck_message(reason: str) -> str:
    if reason == STUCK_INTERRUPTED:
        return _("The worker carrying out this action stopped before recording its outcome: some of the jobs may "
                 "have been changed in HWA. Check them (the audit trail shows each job action sent) before acting "
                 "again; the action is not run again by itself.")
    return _("This action was not carried out: it never reached a worker (the task queue lost it, e.g. in a Redis "
             "restart). Nothing was sent to HWA. Check the job and ask again if the action is still needed.")


def _proposal_fail_stuck(proposal_id: Any, *, reason: str) -> bool:
    """Fails an executing proposal that will not finish by itself, audited and shown on its card.

    Never runs anything: HWA actions are not idempotent, so the operator decides. Under the row lock,
    and only while the proposal still is what `reason` says (not started, or started): a worker
    taking it at the same moment either started it first (then this does nothing) or finds it failed.
    """
    with transaction.atomic():
        proposal = (ActionProposal.objects.select_for_update(skip_locked=True, of=("self",)).select_related("proposed_by")
                    .filter(pk=proposal_id, status=ProposalStatus.EXECUTING).first())
        if proposal is None or proposal.result or (proposal.started_at is not None) != (reason == STUCK_INTERRUPTED):
            return False
        message = _stuck_message(reason)
        proposal.status = ProposalStatus.FAILED
        proposal.result = {"ok": False, "jobs": [], "code": reason, "message": message}
        proposal.save(update_fields=["status", "result"])
        audit_record(action=AuditAction.ACTION_FAILED, actor_label="system", target_type="chat.proposal",
                     target_id=str(proposal.id), target_label=str(proposal)[:255], outcome=AuditOutcome.FAILURE,
                     details={"proposal_id": str(proposal.id), "action": proposal.action, "reason": reason,
                              "high_risk": proposal.high_risk, "jobs": [j.get("name", "") for j in proposal.jobs],
                              "started_at": proposal.started_at.isoformat() if proposal.started_at else None})
        _publish_proposal(proposal, "action_result", ok=False, message=message)
    logger.warning("confirmed action %s failed without an outcome (%s): left to the operator", proposal_id, reason)
    return True


def proposals_recover() -> dict[str, list[str]]:
    """Fails confirmed actions stuck executing (beat task, and the embedded sweep; resync_site/lib/work.py).

    Stuck means: no worker started it within ACTION_START_TIMEOUT_SECONDS of its confirmation (or
    approval), since its task message was lost; or a worker started it and recorded no outcome within
    ACTION_RUN_TIMEOUT_SECONDS, since it died. Neither is run again (see `_proposal_fail_stuck`).
    """
    now = timezone.now()
    start_cutoff = now - timedelta(seconds=settings.ACTION_START_TIMEOUT_SECONDS)
    released = Q(decided_at__lt=start_cutoff) | Q(decided_at__isnull=True, confirmed_at__lt=start_cutoff)
    never_started = Q(started_at__isnull=True) & released
    interrupted = Q(started_at__lt=now - timedelta(seconds=settings.ACTION_RUN_TIMEOUT_SECONDS))
    failed: dict[str, list[str]] = {STUCK_NEVER_STARTED: [], STUCK_INTERRUPTED: []}
    stuck = ActionProposal.objects.filter(never_started | interrupted, status=ProposalStatus.EXECUTING)
    for pk, started_at in stuck.order_by("pk").values_list("pk", "started_at"):
        reason = STUCK_INTERRUPTED if started_at else STUCK_NEVER_STARTED
        if _proposal_fail_stuck(pk, reason=reason):
            failed[reason].append(str(pk))
    return failed


def _proposal_dispatch(proposal_id: str) -> None:
    """Sends a confirmed proposal's task (after the commit); one the broker refuses fails at once."""
    try:
        dispatch("chat.tasks.proposal_run", proposal_id)
    except Exception:
        logger.exception("COULD NOT SEND the confirmed action %s to a worker (the message broker did not take it)",
                         proposal_id)
        _proposal_fail_stuck(proposal_id, reason=STUCK_NOT_SENT)


# --- running tasks ------------------------------------------------------------------------------

_executor = None
_executor_pid = 0


def dispatch(task_name: str, *args: str) -> None:
    """Sends a chat task to Celery; in the embedded default (eager) runs it in a worker thread.

    An eager task would otherwise run inside the websocket consumer's call and block it until the
    answer is complete, so no token could stream.
    """
    from chat import tasks
    from resync_site.celery import app

    global _executor, _executor_pid
    task = getattr(tasks, task_name.rsplit(".", 1)[-1])
    if app.conf.task_always_eager:
        import os
        from concurrent.futures import ThreadPoolExecutor

        # A forked server inherits the pool object without its threads: make a new one there.
        if _executor is None or _executor_pid != os.getpid():
            _executor = ThreadPoolExecutor(max_workers=getattr(settings, "CHAT_EMBEDDED_WORKERS", 16), thread_name_prefix="chat-turn")
            _executor_pid = os.getpid()
        _executor.submit(_run_eager, task, args)
    else:
        task.apply_async(args=args)


def _run_eager(task: Any, args: tuple[str, ...]) -> None:
    from django.db import connections

    try:
        task.apply(args=args, throw=False)
    finally:
        connections.close_all()  # this thread's connections: a pooled thread may idle for long
