"""Workers killed (SIGKILL) in the middle of an audit export and of a knowledge import: after they
are started again, each piece of work completes exactly once.

The Procfile's `worker` (knowledge imports) and `worker_bg` (audit exports) run as real processes
(tests/topology/stack.py) against the test database and the test Redis database, with a short
`WORK_STALE_SECONDS`. Each is killed, with its whole process group, once the run's heartbeat shows
it well under way, then started again: its start-up sweep (or the heartbeat going stale) queues the
run again (resync_site/lib/work.py). Then: one export file and one manifest that verify against the
chain, the exact number of knowledge entries, versions and index points, one completion audit
event each, and a late redelivery of the dead worker's message changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.chain import event_hash
from audit.exports import export_request, export_verify, manifest_path
from audit.models import AuditAction, AuditChainHead, AuditEvent, AuditExport
from audit.selectors import EventFilters, export_file_path
from audit.tasks import export_run_task
from knowledge import services as kb_services
from knowledge.models import ImportRun, ImportStatus, KnowledgeEntry
from knowledge.tasks import import_run_execute
from tests.faults.runs import index_points, kb_workbook, requeued
from tests.topology.client import stack_for_test
from tests.topology.stack import Stack, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(420)]

EXPORT_EVENTS = 80_000  # XLSX at a few thousand rows a second: long enough to be killed mid-way
IMPORT_ROWS = 1_500  # indexed 64 at a time: long enough to be killed mid-way


@pytest.fixture
def collection() -> str:
    """The stack's own Qdrant collection (its data folder outlives the test)."""
    return f"fault_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stack(settings: Any, tmp_path: Path, collection: str, transactional_db: Any) -> Iterator[Stack]:
    stack = stack_for_test(settings.REDIS_URL, processes=("worker", "worker_bg"), env={
        "WORK_STALE_SECONDS": "2",
        "QDRANT_COLLECTION": collection,
        "AUDIT_EXPORT_DIR": str(tmp_path / "exports"),
    })
    # This process writes the upload where the worker reads it, and reads the export where it writes it.
    settings.MEDIA_ROOT = stack.data_dir / "media"
    settings.AUDIT_EXPORT_DIR = tmp_path / "exports"
    stack.logs.mkdir(parents=True, exist_ok=True)
    try:
        yield stack
    except BaseException:
        print(stack.tail(60))
        raise
    finally:
        stack.stop()


def _append_events(count: int) -> None:
    """A long, valid chain appended in one COPY (audit_record would take minutes)."""
    head = AuditChainHead.objects.get(pk=1)
    columns = ("sequence", "timestamp", "actor_id", "actor_label", "ip_address", "request_id", "action",
               "target_type", "target_id", "target_label", "details", "outcome", "prev_hash", "hash")
    prev, start = head.hash, timezone.now() - timedelta(hours=1)
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY audit_auditevent ({', '.join(columns)}) FROM STDIN") as copy:
            for n in range(1, count + 1):
                fields = {
                    "sequence": head.sequence + n, "timestamp": start + timedelta(milliseconds=n), "actor_id": None,
                    "actor_label": f"user{n % 40}", "ip_address": "10.1.2.3", "request_id": f"r{n:x}",
                    "action": "job.action", "target_type": "job", "target_id": f"JOB_{n % 5000}",
                    "target_label": f"Job {n % 5000}", "details": {"verb": "rerun", "n": n}, "outcome": "success",
                    "prev_hash": prev,
                }
                fields["hash"] = prev = event_hash(fields)
                copy.write_row([json.dumps(fields["details"]) if c == "details" else fields[c] for c in columns])
        AuditChainHead.objects.filter(pk=1).update(sequence=head.sequence + count, hash=prev)


def _kill_mid_way(stack: Stack, name: str, started: Any, what: str) -> None:
    try:
        wait_for(started, timeout=120, interval=0.05, what=what)
    except TimeoutError:
        print(stack.tail(60))
        raise
    stack.kill(name)  # SIGKILL to the worker's whole process group: no clean shutdown, no ack


def test_killed_workers_finish_an_export_and_an_import_exactly_once(
    stack: Stack, collection: str, compliance: Any, admin_user: Any
) -> None:
    _append_events(EXPORT_EVENTS)
    for name in ("worker", "worker_bg"):
        stack.start_process(name, wait=False)
    stack.wait_ready(["worker", "worker_bg"], timeout=90)

    export = export_request(acting_user=compliance, filters=EventFilters(), fmt="xlsx")
    run = kb_services.import_run_create(acting_user=admin_user, data=kb_workbook(IMPORT_ROWS), file_name="kb.csv")
    kb_services.import_run_start(acting_user=admin_user, run=run)
    run_id = str(run.pk)

    # The export: killed once its heartbeat shows a fifth of the rows written.
    _kill_mid_way(stack, "worker_bg", lambda: AuditExport.objects.filter(
        pk=export.pk, status=AuditExport.Status.RUNNING, rows_done__gte=export.rows_total // 5).exists(),
        "the export to be under way")
    killed_export = AuditExport.objects.get(pk=export.pk)
    assert killed_export.status == AuditExport.Status.RUNNING and killed_export.rows_done < killed_export.rows_total
    stack.start_process("worker_bg", timeout=90)

    # The import: killed after its rows were committed, while it indexes them.
    _kill_mid_way(stack, "worker", lambda: ImportRun.objects.filter(
        pk=run_id, status=ImportStatus.RUNNING, processed__gte=128, to_process=IMPORT_ROWS).exists(),
        "the import to be indexing")
    killed_run = ImportRun.objects.get(pk=run_id)
    assert killed_run.written_at is not None and killed_run.processed < IMPORT_ROWS
    stack.start_process("worker", timeout=90)

    wait_for(lambda: AuditExport.objects.filter(pk=export.pk).exclude(status=AuditExport.Status.RUNNING)
             .exclude(status=AuditExport.Status.PENDING).exists(), timeout=180, interval=0.5, what="the export to end")
    wait_for(lambda: ImportRun.objects.filter(pk=run_id, status__in=[ImportStatus.SUCCEEDED, ImportStatus.FAILED])
             .exists(), timeout=180, interval=0.5, what="the import to end")

    # A late redelivery of each dead worker's message (Redis gives it back after the visibility timeout).
    late = [import_run_execute.delay(run_id).id, export_run_task.delay(export.pk).id]
    wait_for(lambda: all(f"[{task_id}] succeeded" in stack.tail(400) for task_id in late), timeout=60,
             what="the late deliveries to be handled")

    export.refresh_from_db()
    assert export.status == AuditExport.Status.DONE, export.error
    assert export.attempts == 2 and export.rows_done == export.rows_total >= EXPORT_EVENTS
    path = export_file_path(export)
    assert sorted(p.name for p in Path(settings.AUDIT_EXPORT_DIR).iterdir()) == sorted(
        [path.name, manifest_path(path).name])  # one file, one manifest, no temporary leftovers
    check = export_verify(path, manifest_path(path))
    assert check.ok and check.rows == export.rows_total, str(check)
    assert AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORT, target_id=str(export.pk),
                                     details__step="finished").count() == 1
    (dead,) = requeued(AuditAction.AUDIT_EXPORT, str(export.pk), "worker")
    assert dead.startswith("bg@")

    run = ImportRun.objects.get(pk=run_id)
    assert run.status == ImportStatus.SUCCEEDED, run.message
    assert run.attempts == 2 and run.processed == run.to_process == IMPORT_ROWS and run.counts["new"] == IMPORT_ROWS
    assert KnowledgeEntry.objects.count() == IMPORT_ROWS
    assert KnowledgeEntry.history.count() == IMPORT_ROWS  # one version each
    assert AuditEvent.objects.filter(action=AuditAction.KB_ENTRY_CREATED).count() == IMPORT_ROWS
    assert AuditEvent.objects.filter(action=AuditAction.KB_IMPORT, target_id=run_id,
                                     details__step="imported").count() == 1
    (dead,) = requeued(AuditAction.KB_IMPORT, run_id, "worker")
    assert dead.startswith("chat@")

    stack.stop()  # the local vector store admits one process: the worker's must be closed first
    assert index_points(stack, collection) == IMPORT_ROWS
