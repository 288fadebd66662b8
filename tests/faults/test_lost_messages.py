"""Task messages lost by Redis (it keeps nothing on disk) before any worker took them: the knowledge
import and the audit export they were for still complete, exactly once.

An import and a large export are queued while no worker runs: their messages wait in Redis. Redis
then loses its data (FLUSHDB of the test's Redis database: what a restart of a Redis that saves
nothing leaves behind). The Procfile's `worker` and `worker_bg` start afterwards (tests/topology/
stack.py), with a short `WORK_QUEUED_STALE_SECONDS`: each one's start-up sweep finds its run queued
with no claim for longer than that, sends the task again (audited `requeued`, reason `not_claimed`),
and runs it. Then: the exact number of entries, versions, index points and completion events, one
export file that verifies, and a late delivery of the original messages (had they only been late)
changes nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

from audit.exports import export_request, export_verify, manifest_path
from audit.models import AuditAction, AuditEvent, AuditExport
from audit.selectors import EventFilters, export_file_path
from audit.services import audit_record
from audit.tasks import export_run_task
from knowledge import services as kb_services
from knowledge.models import ImportRun, ImportStatus, KnowledgeEntry
from knowledge.tasks import import_run_execute
from tests.faults.runs import index_points, kb_workbook, requeued
from tests.topology.client import stack_for_test
from tests.topology.stack import Stack, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(300)]

IMPORT_ROWS = 40
QUEUED_STALE_SECONDS = 3


@pytest.fixture
def collection() -> str:
    return f"lost_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stack(settings: Any, tmp_path: Path, collection: str, transactional_db: Any) -> Iterator[Stack]:
    stack = stack_for_test(settings.REDIS_URL, processes=("worker", "worker_bg"), env={
        "WORK_STALE_SECONDS": "2",
        "WORK_QUEUED_STALE_SECONDS": str(QUEUED_STALE_SECONDS),
        "QDRANT_COLLECTION": collection,
        "AUDIT_EXPORT_DIR": str(tmp_path / "exports"),
    })
    settings.MEDIA_ROOT = stack.data_dir / "media"
    settings.AUDIT_EXPORT_DIR = tmp_path / "exports"
    settings.AUDIT_EXPORT_INLINE_ROWS = 0  # the export goes to a worker, however small
    stack.logs.mkdir(parents=True, exist_ok=True)
    try:
        yield stack
    except BaseException:
        print(stack.tail(60))
        raise
    finally:
        stack.stop()


def _queued_messages(client: redis.Redis, queue: str) -> int:
    """Messages waiting in a Celery queue (kombu's Redis transport keeps one list per queue and priority)."""
    return sum(int(client.llen(key)) for key in client.scan_iter(f"{queue}*") if client.type(key) == b"list")


def test_runs_whose_messages_redis_lost_are_sent_again_and_complete_once(
    stack: Stack, collection: str, compliance: Any, admin_user: Any
) -> None:
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.flushdb()  # messages other tests queued with no worker to take them are not this test's
    for n in range(50):
        audit_record(action=AuditAction.JOB_ACTION, actor_label="olivia", target_type="job", target_id=f"J#{n}")
    export = export_request(acting_user=compliance, filters=EventFilters(), fmt="csv")
    run = kb_services.import_run_create(acting_user=admin_user, data=kb_workbook(IMPORT_ROWS), file_name="kb.csv")
    kb_services.import_run_start(acting_user=admin_user, run=run)
    run_id = str(run.pk)

    assert _queued_messages(broker, "knowledge") == 1 and _queued_messages(broker, "audit") == 1
    broker.flushdb()  # Redis restarted with nothing on disk: both messages are gone
    assert _queued_messages(broker, "knowledge") == 0 and _queued_messages(broker, "audit") == 0
    time.sleep(QUEUED_STALE_SECONDS + 0.5)  # long enough unclaimed for a starting worker to call them lost

    for name in ("worker", "worker_bg"):
        stack.start_process(name, wait=False)
    stack.wait_ready(["worker", "worker_bg"], timeout=90)
    wait_for(lambda: AuditExport.objects.filter(pk=export.pk, status__in=["done", "failed"]).exists(),
             timeout=120, interval=0.5, what="the export to end")
    wait_for(lambda: ImportRun.objects.filter(pk=run_id, status__in=[ImportStatus.SUCCEEDED, ImportStatus.FAILED])
             .exists(), timeout=180, interval=0.5, what="the import to end")

    # Had the first messages been late rather than lost, they would arrive now: nothing happens.
    late = [import_run_execute.delay(run_id).id, export_run_task.delay(export.pk).id]
    wait_for(lambda: all(f"[{task_id}] succeeded" in stack.tail(400) for task_id in late), timeout=60,
             what="the late deliveries to be handled")

    export.refresh_from_db()
    assert export.status == AuditExport.Status.DONE, export.error
    assert export.attempts == 1 and export.resends == 1 and export.rows_done == export.rows_total
    path = export_file_path(export)
    assert sorted(p.name for p in Path(settings.AUDIT_EXPORT_DIR).iterdir()) == sorted(
        [path.name, manifest_path(path).name])
    check = export_verify(path, manifest_path(path))
    assert check.ok and check.rows == export.rows_total, str(check)
    assert AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORT, target_id=str(export.pk),
                                     details__step="finished").count() == 1
    assert requeued(AuditAction.AUDIT_EXPORT, str(export.pk), "reason") == ["not_claimed"]

    run = ImportRun.objects.get(pk=run_id)
    assert run.status == ImportStatus.SUCCEEDED, run.message
    assert run.attempts == 1 and run.resends == 1 and run.processed == run.to_process == IMPORT_ROWS
    assert KnowledgeEntry.objects.count() == IMPORT_ROWS and KnowledgeEntry.history.count() == IMPORT_ROWS
    assert AuditEvent.objects.filter(action=AuditAction.KB_ENTRY_CREATED).count() == IMPORT_ROWS
    assert AuditEvent.objects.filter(action=AuditAction.KB_IMPORT, target_id=run_id,
                                     details__step="imported").count() == 1
    assert requeued(AuditAction.KB_IMPORT, run_id, "reason") == ["not_claimed"]

    stack.stop()  # the local vector store admits one process: the worker's must be closed first
    assert index_points(stack, collection) == IMPORT_ROWS
