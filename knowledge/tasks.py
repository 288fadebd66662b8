"""Knowledge tasks: a workbook import run (takes an id, claims the run, calls one service), its recovery."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from knowledge import services

# Transient errors (a vector store or embedding endpoint that did not answer) hand the run back to
# the queue and retry; anything else fails it.
TRANSIENT_ERRORS = (ConnectionError, TimeoutError)


# Safe to run twice: import_run_claim lets one worker take a queued run and fences its writes. A
# duplicate delivery (a redelivered message after a worker died) finds the run no longer queued and
# is skipped; the recovery sweep below is what queues an abandoned run again.
@shared_task(bind=True, name="knowledge.tasks.import_run_execute", acks_late=True, max_retries=3,
             soft_time_limit=3600, time_limit=3700)
def import_run_execute(self: Any, run_id: str) -> str:
    claim = services.import_run_claim(run_id=run_id, worker=self.request.hostname or "")
    if claim is None:
        return "skipped"
    try:
        return services.import_run_process(run_id=run_id, claim=claim).status
    except TRANSIENT_ERRORS as exc:
        if self.request.retries < self.max_retries:
            services.import_run_release(run_id=run_id, claim=claim, message=str(exc))
            raise self.retry(exc=exc, countdown=5 * 2**self.request.retries) from exc
        services.import_run_fail(run_id=run_id, claim=claim, message=str(exc))
        raise
    except Exception as exc:
        services.import_run_fail(run_id=run_id, claim=claim, message=str(exc))
        raise


@shared_task(name="knowledge.tasks.import_runs_recover", soft_time_limit=120, time_limit=150)
def import_runs_recover(worker: str | None = None) -> dict[str, list[str]]:
    """Beat's sweep (and a starting worker's): queues again imports whose worker stopped."""
    return services.import_runs_recover(worker=worker).as_dict()


# --- the AI auditor and continuous learning (issue 7) -----------------------------------------
# All safe to run twice: findings are keyed by fingerprint, drafts by conversation.


@shared_task(name="knowledge.tasks.auditor_entry", acks_late=True, soft_time_limit=120, time_limit=150)
def auditor_entry(entry_id: int) -> dict[str, int]:
    from knowledge.auditor import auditor_run

    run = auditor_run(entry_ids=[entry_id])
    return {"new": run.new, "resolved": run.resolved}


@shared_task(name="knowledge.tasks.auditor_sweep", acks_late=True, soft_time_limit=3600, time_limit=3700)
def auditor_sweep() -> dict[str, object]:
    from knowledge.auditor import auditor_run

    run = auditor_run()
    return {"entries": run.entries, "new": run.new, "resolved": run.resolved, "by_type": run.by_type,
            "skipped": run.skipped}


@shared_task(name="knowledge.tasks.learn_from_conversation", acks_late=True, autoretry_for=(ConnectionError,),
             max_retries=3, soft_time_limit=300, time_limit=330)
def learn_from_conversation(conversation_id: str, user_id: int | None, note: str, trigger: str) -> int | None:
    from django.contrib.auth import get_user_model

    from knowledge.learning import conversation_learn

    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    item = conversation_learn(conversation_id=conversation_id, acting_user=user, note=note, trigger=trigger)
    return item.pk if item else None


@shared_task(name="knowledge.tasks.learn_from_feedback", acks_late=True, soft_time_limit=300, time_limit=330)
def learn_from_feedback(feedback_id: int) -> int | None:
    from knowledge.learning import feedback_learn

    result = feedback_learn(feedback_id=feedback_id)
    return result.pk if result else None
