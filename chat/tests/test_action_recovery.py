"""Confirmed actions whose task message is lost or whose worker dies: never run twice, never silently stuck.

HWA actions are not idempotent. A confirmed proposal is carried out at most once (the first delivery
of its task stamps `started_at` before anything reaches HWA); one stuck executing is failed by the
sweep (`proposals_recover`), audited, and shown on its card, for the operator to decide.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone, translation

from audit.models import AuditAction, AuditEvent
from chat import services
from chat.models import ActionProposal, ChatEvent, ProposalStatus
from chat.tasks import proposal_run
from resync_site.celery import app

OLD = timezone.now() - timedelta(hours=1)


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    with translation.override("en"):
        yield


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs (not an Exception, nothing catches it)."""


def _confirmed(ask: Any, operator: Any, django_capture_on_commit_callbacks: Any, question: str = "reexecutar FP_CALC_FOLHA") -> ActionProposal:
    proposal = ActionProposal.objects.get(turn=ask(question))
    # Confirmed, and its task message lost: these tests never commit, so the on-commit send never runs.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.proposal_confirm(proposal_id=proposal.id, acting_user=operator, justification="RH liberou a competência")
    assert callbacks, "the task is sent once the confirmation commits"
    proposal.refresh_from_db()
    return proposal


def _hwa_actions() -> int:
    """Job actions sent to HWA (each one writes a pending job.action event just before the call)."""
    return AuditEvent.objects.filter(action=AuditAction.JOB_ACTION, outcome="pending").count()


def _failed_event(proposal: ActionProposal) -> AuditEvent:
    return AuditEvent.objects.get(action=AuditAction.ACTION_FAILED, target_id=str(proposal.id))


def test_a_confirmed_action_whose_message_was_lost_is_failed_and_never_run(
    hwa: Any, kb: Any, ask: Any, operator: Any, django_capture_on_commit_callbacks: Any
) -> None:
    proposal = _confirmed(ask, operator, django_capture_on_commit_callbacks)
    assert proposal.status == ProposalStatus.EXECUTING and proposal.started_at is None
    assert services.proposals_recover() == {"never_started": [], "interrupted": []}  # a worker may be on its way

    ActionProposal.objects.filter(pk=proposal.pk).update(confirmed_at=OLD)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.proposals_recover() == {"never_started": [str(proposal.id)], "interrupted": []}
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.FAILED and proposal.result["code"] == "never_started"
    assert "Nothing was sent to HWA" in proposal.result["message"]
    event = _failed_event(proposal)
    assert event.outcome == "failure" and event.actor_label == "system"
    assert event.details["reason"] == "never_started" and event.details["jobs"] == ["FP_CALC_FOLHA"]
    card = ChatEvent.objects.filter(turn=proposal.turn, type="action_result").latest("id").payload
    assert card["status"] == "failed" and card["ok"] is False and "Nothing was sent to HWA" in card["message"]

    # The message turns up after all (it was late, not lost): the action is not run.
    assert services.proposal_execute(proposal_id=proposal.id) is None
    assert _hwa_actions() == 0
    assert services.proposals_recover() == {"never_started": [], "interrupted": []}  # audited once
    assert AuditEvent.objects.filter(action=AuditAction.ACTION_FAILED).count() == 1


def test_an_approved_action_counts_from_its_approval(
    hwa: Any, kb: Any, ask: Any, operator: Any, supervisor: Any, django_capture_on_commit_callbacks: Any
) -> None:
    proposal = _confirmed(ask, operator, django_capture_on_commit_callbacks, "cancela o FP_ENVIA_BANCO")
    assert proposal.status == ProposalStatus.AWAITING_APPROVAL
    ActionProposal.objects.filter(pk=proposal.pk).update(confirmed_at=OLD)  # it waited long for a supervisor
    assert services.proposals_recover()["never_started"] == []  # waiting for approval is not stuck
    with django_capture_on_commit_callbacks(execute=False):
        services.proposal_approve(proposal_id=proposal.id, acting_user=supervisor)
    assert services.proposals_recover()["never_started"] == []  # approved just now
    ActionProposal.objects.filter(pk=proposal.pk).update(decided_at=OLD)
    assert services.proposals_recover()["never_started"] == [str(proposal.id)]
    assert _hwa_actions() == 0


def test_a_worker_killed_mid_action_never_runs_it_again_and_the_sweep_reports_it(
    hwa: Any, kb: Any, ask: Any, operator: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from chat.agent import sources

    proposal = _confirmed(ask, operator, django_capture_on_commit_callbacks)
    real = sources.action_execute

    def then_killed(**kwargs: Any) -> Any:
        real(**kwargs)  # the rerun reached HWA...
        raise WorkerKilled  # ...and the worker died before recording it

    monkeypatch.setattr(sources, "action_execute", then_killed)
    with pytest.raises(WorkerKilled):
        proposal_run.apply(args=[str(proposal.id)], throw=True)
    monkeypatch.undo()
    assert _hwa_actions() == 1
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.EXECUTING and proposal.started_at is not None and not proposal.result

    # acks_late + reject_on_worker_lost: Redis hands the message to the next worker. It must not rerun the job.
    proposal_run.apply(args=[str(proposal.id)], throw=True)
    assert services.proposal_execute(proposal_id=proposal.id) is None
    assert _hwa_actions() == 1

    assert services.proposals_recover() == {"never_started": [], "interrupted": []}  # it may still be running
    ActionProposal.objects.filter(pk=proposal.pk).update(started_at=OLD)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.proposals_recover() == {"never_started": [], "interrupted": [str(proposal.id)]}
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.FAILED and proposal.result["code"] == "interrupted"
    assert "may have been changed in HWA" in proposal.result["message"]
    assert "not run again" in proposal.result["message"]
    assert _failed_event(proposal).details["reason"] == "interrupted"
    assert _hwa_actions() == 1


def test_a_confirmation_the_broker_refuses_fails_the_action_at_once(
    hwa: Any, kb: Any, ask: Any, operator: Any, monkeypatch: Any, caplog: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from kombu.exceptions import OperationalError

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Connection refused")

    assert not app.conf.task_always_eager  # the test settings send tasks to Redis
    monkeypatch.setattr(proposal_run, "apply_async", broker_down)
    proposal = ActionProposal.objects.get(turn=ask("reexecutar FP_CALC_FOLHA"))
    with caplog.at_level("ERROR", logger="chat.services"), django_capture_on_commit_callbacks(execute=True):
        services.proposal_confirm(proposal_id=proposal.id, acting_user=operator, justification="RH liberou a competência")
    assert any("COULD NOT SEND" in r.getMessage() and str(proposal.id) in r.getMessage() for r in caplog.records)
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.FAILED and proposal.result["code"] == "not_sent"
    assert _failed_event(proposal).details["reason"] == "not_sent"
    assert services.proposal_execute(proposal_id=proposal.id) is None and _hwa_actions() == 0


def test_the_sweep_runs_on_the_chat_queue_and_at_worker_start() -> None:
    from django.conf import settings

    from resync_site.lib.work import RECOVERY_TASKS

    schedule = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "chat.tasks.proposals_recover" in schedule and "chat.tasks.proposals_recover" in RECOVERY_TASKS
    assert app.amqp.router.route({}, "chat.tasks.proposals_recover")["queue"].name == "chat"
    assert settings.ACTION_START_TIMEOUT_SECONDS < settings.ACTION_RUN_TIMEOUT_SECONDS


# --- chat turns: a lost message blocks a conversation for one budget at most -----------------------


def test_a_turn_whose_message_was_lost_is_failed_when_the_next_message_comes_after_the_budget(
    hwa: Any, kb: Any, operator: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    import uuid

    from chat.models import Conversation, Turn, TurnStatus
    from chat.tasks import turn_run
    from resync_site.lib.errors import ConflictError

    conversation = Conversation.objects.create(user=operator)
    with django_capture_on_commit_callbacks(execute=False):  # the turn's message is lost
        lost = services.turn_start(acting_user=operator, conversation=conversation, turn_id=uuid.uuid4(),
                                   question="o que abendou esta noite?")
    with pytest.raises(ConflictError):  # within the budget the turn may still be on its way
        services.turn_start(acting_user=operator, conversation=conversation, turn_id=uuid.uuid4(), question="e agora?")

    budget = settings.LLM_TURN_BUDGET_SECONDS + services.STALE_TURN_MARGIN_SECONDS
    Turn.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(seconds=budget + 1))
    with django_capture_on_commit_callbacks(execute=False):
        nxt = services.turn_start(acting_user=operator, conversation=conversation, turn_id=uuid.uuid4(), question="e agora?")
    lost.refresh_from_db()
    assert lost.status == TurnStatus.FAILED and lost.finished_at is not None
    # The lost message turns up late: the failed turn is not run; the new one runs once.
    turn_run.apply(args=[str(lost.id)], throw=True)
    lost.refresh_from_db()
    assert lost.status == TurnStatus.FAILED and not lost.messages.filter(role="assistant").exists()
    for _delivery in range(2):
        turn_run.apply(args=[str(nxt.id)], throw=True)
    nxt.refresh_from_db()
    assert nxt.status == TurnStatus.DONE and nxt.messages.filter(role="assistant").count() == 1
