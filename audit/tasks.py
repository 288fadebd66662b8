"""Background work of the audit app: large exports, period reports, daily anchoring.

Each task takes ids, calls one function, and is safe to run twice (the functions claim their row
with a conditional UPDATE, or check that this period's work is already done).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from audit.exports import export_run
from audit.exports import exports_recover as exports_recover_run
from audit.reports import report_build
from audit.reports import report_monthly as report_monthly_build
from audit.retention import anchor_write


@shared_task(bind=True, acks_late=True, soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300)
def export_run_task(self: Any, export_id: int) -> None:
    export_run(export_id=export_id, worker=self.request.hostname or "")


@shared_task(soft_time_limit=120, time_limit=150)
def exports_recover(worker: str | None = None) -> dict[str, list[str]]:
    """Beat's sweep (and a starting worker's): queues again exports whose worker stopped."""
    return exports_recover_run(worker=worker).as_dict()


@shared_task(acks_late=True, soft_time_limit=3600, time_limit=3900)
def report_build_task(report_id: int) -> None:
    report_build(report_id=report_id)


@shared_task(acks_late=True, soft_time_limit=3600, time_limit=3900)
def report_monthly() -> None:
    report_monthly_build()


@shared_task(acks_late=True)
def anchor_daily() -> None:
    anchor_write()
