"""Chat tasks: one agent turn, one confirmed action, the expiry sweep. Each takes ids and calls a service."""

from __future__ import annotations

from celery import shared_task

from chat import services


@shared_task(name="chat.tasks.turn_run", acks_late=True, soft_time_limit=180, time_limit=200)
def turn_run(turn_id: str) -> None:
    services.turn_execute(turn_id=turn_id)


# Not retried automatically: HWA actions are not idempotent; the proposal records what happened. A
# redelivery (a worker died mid-action) or a duplicate message finds the proposal started and runs nothing.
@shared_task(name="chat.tasks.proposal_run", acks_late=True, soft_time_limit=120, time_limit=150)
def proposal_run(proposal_id: str) -> None:
    services.proposal_execute(proposal_id=proposal_id)


@shared_task(name="chat.tasks.proposals_expire")
def proposals_expire() -> int:
    return services.proposals_expire()


@shared_task(name="chat.tasks.proposals_recover", soft_time_limit=120, time_limit=150)
def proposals_recover(worker: str | None = None) -> dict[str, list[str]]:
    """Beat's sweep (and a starting worker's): fails confirmed actions stuck executing; never re-runs them."""
    return services.proposals_recover()
