"""How the recovery sweeps are started: by beat, and by a worker starting, for its own queues only."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from kombu import Queue

from audit import exports
from audit.models import AuditExport
from knowledge import services as kb_services
from knowledge.models import ImportRun, ImportStatus
from resync_site.celery import app, recover_abandoned_work
from resync_site.lib import work

OLD = timezone.now() - dt.timedelta(hours=1)


def test_beat_runs_each_sweep_on_the_queue_of_the_work_it_recovers() -> None:
    schedule = {entry["task"]: entry for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    for task, queue in (("knowledge.tasks.import_runs_recover", "knowledge"), ("audit.tasks.exports_recover", "audit")):
        assert schedule[task]["schedule"] == django_settings.WORK_SWEEP_SECONDS
        assert app.amqp.router.route({}, task)["queue"].name == queue
        assert task in app.tasks
    # A sweep that waited a whole interval is superseded by the next one.
    assert django_settings.WORK_SWEEP_SECONDS < django_settings.WORK_STALE_SECONDS
    assert django_settings.WORK_HEARTBEAT_SECONDS < django_settings.WORK_STALE_SECONDS


@pytest.mark.django_db(transaction=True)  # the handler closes its database connection at the end
def test_a_starting_worker_recovers_only_the_work_of_its_queues(
    settings: Any, tmp_path: Any, compliance: Any, admin_user: Any, monkeypatch: Any
) -> None:
    settings.MEDIA_ROOT = tmp_path
    sent: list[str] = []
    monkeypatch.setattr(kb_services, "send_task", lambda task, *args: sent.append(task.name))
    monkeypatch.setattr(exports, "send_task", lambda task, *args: sent.append(task.name))
    data = b"ID,Sintoma,Solucao\nKB-1,Job falhou,Rerun\n"
    run = kb_services.import_run_start(
        acting_user=admin_user, run=kb_services.import_run_create(acting_user=admin_user, data=data, file_name="kb.csv")
    )
    assert kb_services.import_run_claim(run_id=str(run.pk)) is not None
    export = AuditExport.objects.create(requested_by=compliance, format="csv", filters={})
    assert exports.export_claim(export_id=export.pk) is not None
    ImportRun.objects.update(heartbeat_at=OLD)
    AuditExport.objects.update(heartbeat_at=OLD)

    def consumer(*queues: str) -> Any:
        return SimpleNamespace(app=app, hostname="bg@host", task_consumer=SimpleNamespace(queues=[Queue(q) for q in queues]))

    recover_abandoned_work(sender=consumer("hwa"))
    assert sent == []
    recover_abandoned_work(sender=consumer("audit"))
    assert sent == ["audit.tasks.export_run_task"]
    assert AuditExport.objects.get().status == AuditExport.Status.PENDING
    assert ImportRun.objects.get().status == ImportStatus.RUNNING
    recover_abandoned_work(sender=consumer("chat", "knowledge", "default"))
    assert sent == ["audit.tasks.export_run_task", "knowledge.tasks.import_run_execute"]
    assert ImportRun.objects.get().status == ImportStatus.QUEUED


def test_beat_sends_lost_messages_again_well_after_a_sweep_interval() -> None:
    # A queued run is taken for lost only after several sweeps that each saw their queue drain.
    assert django_settings.WORK_QUEUED_STALE_SECONDS >= 2 * django_settings.WORK_SWEEP_SECONDS
    assert django_settings.WORK_MAX_RESENDS >= 1


def test_without_redis_only_the_embedded_default_starts_the_sweep_thread(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:6379/11"
    assert work.start_embedded_recovery() is None
    assert "resync_site.lib.work.start_embedded_recovery" in django_settings.EMBEDDED_SERVICES  # `serve` starts it


@pytest.mark.django_db(transaction=True)  # the sweep thread has its own database connection
def test_the_embedded_default_recovers_in_a_thread_of_serve(
    settings: Any, tmp_path: Any, compliance: Any, admin_user: Any, operator: Any
) -> None:
    """No Redis, no beat, no worker: `manage.py serve`'s thread sweeps, and the tasks run in it (eager)."""
    from audit.services import audit_record
    from chat.models import ActionProposal, Conversation, ProposalStatus
    from knowledge.index import drop_collection
    from knowledge.models import KnowledgeEntry

    settings.REDIS_URL = None
    settings.WORK_SWEEP_SECONDS = 0.2
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.AUDIT_EXPORT_DIR = tmp_path / "exports"
    settings.QDRANT_COLLECTION = collection = f"test_embedded_{uuid.uuid4().hex[:10]}"
    eager, app.conf.task_always_eager = app.conf.task_always_eager, True
    try:
        # An import whose server died mid-run (a stale heartbeat)...
        data = b"ID,Sintoma,Solucao\nKB-1,Job falhou,Rerun\nKB-2,Job parou,Release\n"
        run = kb_services.import_run_create(acting_user=admin_user, data=data, file_name="kb.csv")
        ImportRun.objects.filter(pk=run.pk).update(status=ImportStatus.QUEUED)
        assert kb_services.import_run_claim(run_id=str(run.pk), worker="embedded") is not None
        ImportRun.objects.filter(pk=run.pk).update(heartbeat_at=OLD)
        # ...an export whose task never ran (queued long ago)...
        audit_record(action="job.action", actor_label="olivia", target_type="job", target_id="J#1")
        export = AuditExport.objects.create(requested_by=compliance, format="csv", filters={}, heartbeat_at=OLD)
        # ...and a confirmed action no worker ever started.
        proposal = ActionProposal.objects.create(
            conversation=Conversation.objects.create(user=operator), proposed_by=operator, confirmed_by=operator,
            action="rerun", jobs=[{"id": "x", "name": "FP_CALC_FOLHA"}], status=ProposalStatus.EXECUTING,
            confirmed_at=OLD, expires_at=timezone.now() + dt.timedelta(minutes=5), justification="rerun it")

        assert work.start_embedded_recovery()
        assert work.start_embedded_recovery() is None  # one thread per process

        def recovered() -> bool:
            return (ImportRun.objects.filter(pk=run.pk, status=ImportStatus.SUCCEEDED).exists()
                    and AuditExport.objects.filter(pk=export.pk, status=AuditExport.Status.DONE).exists()
                    and ActionProposal.objects.filter(pk=proposal.pk, status=ProposalStatus.FAILED).exists())

        deadline = time.monotonic() + 60
        while not recovered() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert recovered(), (ImportRun.objects.get(pk=run.pk).status, AuditExport.objects.get(pk=export.pk).status,
                             ActionProposal.objects.get(pk=proposal.pk).status)
    finally:
        assert work.stop_embedded_recovery(timeout=30)
        app.conf.task_always_eager = eager
        drop_collection(collection)
    run.refresh_from_db()
    assert run.attempts == 2 and KnowledgeEntry.objects.count() == 2
    export.refresh_from_db()
    assert export.attempts == 1 and export.resends == 1 and export.rows_done == export.rows_total >= 1
    assert ActionProposal.objects.get(pk=proposal.pk).result["code"] == "never_started"
    # Stopped means stopped: nothing sweeps any more.
    ImportRun.objects.filter(pk=run.pk).update(status=ImportStatus.QUEUED, heartbeat_at=OLD)
    time.sleep(0.6)
    assert ImportRun.objects.get(pk=run.pk).status == ImportStatus.QUEUED
