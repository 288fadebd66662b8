"""Celery tasks of the jobs app (queue `hwa`)."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="jobs.tasks.poll_plan", acks_late=False, ignore_result=True, soft_time_limit=120, time_limit=150)
def poll_plan() -> dict[str, Any]:
    """One plan poll (Celery beat runs it every TWS_POLL_SECONDS). Not retried: the next beat is the retry."""
    from dataclasses import asdict

    from jobs.poll import plan_poll

    return asdict(plan_poll())
