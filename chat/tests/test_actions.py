"""Actions from chat: proposal, confirmation with justification, four-eyes approval, refusals, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from chat import services
from chat.models import ActionProposal, ChatEvent, ProposalStatus
from resync_site.lib.errors import ApplicationError, ConflictError, ForbiddenError, NotFoundError
from resync_site.roles import Role


def _proposal(turn) -> ActionProposal:
    return ActionProposal.objects.get(turn=turn)


def test_a_rerun_is_proposed_confirmed_and_executed_through_the_jobs_service(
    hwa, kb, ask, operator, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        turn = ask("reexecutar FP_CALC_FOLHA")
    proposal = _proposal(turn)
    assert proposal.status == ProposalStatus.PENDING and not proposal.high_risk
    assert proposal.jobs[0]["name"] == "FP_CALC_FOLHA"
    assert "FOLHA_PAGAMENTO.FP_GERA_CNAB_PAGTO" in proposal.impact["will_run"]
    assert not AuditEvent.objects.filter(action=AuditAction.JOB_ACTION).exists()  # nothing executed yet
    card = ChatEvent.objects.get(turn=turn, type="action_proposal").payload
    assert card["proposal_id"] == str(proposal.id) and card["needs_second_approver"] is False

    with pytest.raises(ApplicationError) as refused:
        services.proposal_confirm(proposal_id=proposal.id, acting_user=operator, justification="")
    assert refused.value.code == "justification_required"

    with django_capture_on_commit_callbacks() as callbacks:
        services.proposal_confirm(proposal_id=proposal.id, acting_user=operator, justification="RH liberou a competência", ticket="INC123")
    assert len(callbacks) >= 1  # the execution task is queued on commit
    services.proposal_execute(proposal_id=proposal.id)
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.EXECUTED and proposal.result["ok"] is True
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="chat.action")] == [
        AuditAction.ACTION_PROPOSED, AuditAction.ACTION_CONFIRMED]
    confirmed = AuditEvent.objects.get(action=AuditAction.ACTION_CONFIRMED)
    assert confirmed.details["proposal_id"] == str(proposal.id) and confirmed.details["high_risk"] is False
    job_events = AuditEvent.objects.filter(action=AuditAction.JOB_ACTION, outcome="success")
    assert job_events.count() == 1 and job_events.get().details["ticket"] == "INC123"
    # Running it twice (a retried task) does nothing more.
    assert services.proposal_execute(proposal_id=proposal.id) is None


def test_a_ticket_is_required_when_configured(hwa, kb, ask, operator, settings) -> None:
    settings.ACTION_TICKET_REQUIRED = True
    proposal = _proposal(ask("reexecutar FP_CALC_FOLHA"))
    with pytest.raises(ApplicationError) as refused:
        services.proposal_confirm(proposal_id=proposal.id, acting_user=operator, justification="rerun after fix")
    assert refused.value.code == "ticket_required"
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.PENDING


def test_cancel_of_a_critical_job_needs_another_supervisor(hwa, kb, ask, operator, supervisor, make_user) -> None:
    proposal = _proposal(ask("cancela o FP_ENVIA_BANCO"))
    assert proposal.action == "cancel" and proposal.high_risk
    services.proposal_confirm(proposal_id=proposal.id, acting_user=operator, justification="remessa será manual hoje")
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.AWAITING_APPROVAL
    assert not AuditEvent.objects.filter(action=AuditAction.JOB_ACTION).exists()

    with pytest.raises(ForbiddenError):
        services.proposal_approve(proposal_id=proposal.id, acting_user=operator)
    services.proposal_approve(proposal_id=proposal.id, acting_user=supervisor, note="ok, combinado com o banco")
    services.proposal_execute(proposal_id=proposal.id)
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.EXECUTED
    approved = AuditEvent.objects.get(action=AuditAction.ACTION_APPROVED)
    assert approved.details["approvers"] == [supervisor.get_username()] and approved.details["high_risk"] is True
    assert approved.actor_id == supervisor.pk


def test_a_supervisor_cannot_approve_their_own_proposal(hwa, kb, ask, supervisor, make_user) -> None:
    proposal = _proposal(ask("cancela o FP_ENVIA_BANCO", user=supervisor))
    services.proposal_confirm(proposal_id=proposal.id, acting_user=supervisor, justification="remessa manual")
    with pytest.raises(ForbiddenError) as refused:
        services.proposal_approve(proposal_id=proposal.id, acting_user=supervisor)
    assert refused.value.code == "own_proposal"
    other = make_user("sofia", Role.SUPERVISOR)
    services.proposal_approve(proposal_id=proposal.id, acting_user=other)
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.EXECUTING


def test_an_approver_can_refuse_and_the_proposal_is_then_closed(hwa, kb, ask, operator, supervisor) -> None:
    proposal = _proposal(ask("cancela o FP_ENVIA_BANCO"))
    services.proposal_confirm(proposal_id=proposal.id, acting_user=operator, justification="remessa manual")
    services.proposal_reject(proposal_id=proposal.id, acting_user=supervisor, reason="não cancelar: prazo do banco")
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.REJECTED
    rejected = AuditEvent.objects.get(action=AuditAction.ACTION_REJECTED)
    assert rejected.details["by"] == "approver" and rejected.outcome == "refused"
    with pytest.raises(ConflictError):
        services.proposal_approve(proposal_id=proposal.id, acting_user=supervisor)


def test_bulk_actions_over_the_limit_need_a_second_approver(hwa, kb, ask, operator, settings) -> None:
    settings.ACTION_BULK_LIMIT = 1
    proposal = _proposal(ask("segurar FP_GERA_CNAB_PAGTO e FP_ENVIA_BANCO"))
    assert proposal.action == "hold" and len(proposal.jobs) == 2 and proposal.high_risk


def test_an_expired_proposal_cannot_be_confirmed(hwa, kb, ask, operator) -> None:
    proposal = _proposal(ask("reexecutar FP_CALC_FOLHA"))
    ActionProposal.objects.filter(pk=proposal.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ConflictError) as refused:
        services.proposal_confirm(proposal_id=proposal.id, acting_user=operator, justification="rerun after fix")
    assert refused.value.code == "proposal_expired"
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.EXPIRED
    assert AuditEvent.objects.filter(action=AuditAction.ACTION_EXPIRED, target_id=str(proposal.id)).count() == 1


def test_the_sweep_expires_open_proposals(hwa, kb, ask) -> None:
    proposal = _proposal(ask("reexecutar FP_CALC_FOLHA"))
    ActionProposal.objects.filter(pk=proposal.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.proposals_expire() == 1
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.EXPIRED


def test_an_action_the_jobs_state_forbids_is_not_proposed(hwa, kb, ask) -> None:
    from chat.tests.conftest import answer_of

    turn = ask("kill FP_EXTRAI_PONTO")
    assert not ActionProposal.objects.exists()
    assert "cannot propose" in answer_of(turn) or "Não posso propor" in answer_of(turn)


def test_only_the_proposer_confirms(hwa, kb, ask, supervisor) -> None:
    proposal = _proposal(ask("reexecutar FP_CALC_FOLHA"))
    with pytest.raises(NotFoundError):
        services.proposal_confirm(proposal_id=proposal.id, acting_user=supervisor, justification="not mine to confirm")


def test_a_queued_turn_stops_at_once_and_a_dead_turn_does_not_block_the_conversation(operator) -> None:
    import uuid

    from chat.models import Conversation, Turn, TurnStatus

    conversation = Conversation.objects.create(user=operator)
    queued = Turn.objects.create(conversation=conversation, user=operator, question="status?")
    assert services.turn_stop(acting_user=operator, conversation_id=conversation.id) == 1
    queued.refresh_from_db()
    assert queued.status == TurnStatus.STOPPED
    services.turn_execute(turn_id=queued.id)  # a late worker finds nothing to claim
    assert not queued.messages.filter(role="assistant").exists()

    Turn.objects.create(conversation=conversation, user=operator, question="lost", status=TurnStatus.RUNNING,
                        created_at=timezone.now() - timedelta(hours=1))
    turn = services.turn_start(acting_user=operator, conversation=conversation, turn_id=uuid.uuid4(), question="again")
    assert turn.status == TurnStatus.QUEUED
    assert Turn.objects.filter(conversation=conversation, question="lost").get().status == TurnStatus.FAILED
