"""An export whose worker dies is queued again by the recovery sweep and yields exactly one file.

The sweep (resync_site/lib/work.py) runs here directly; tests/faults/test_worker_kill.py kills a
real background worker mid-export.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone, translation

from audit import exports
from audit.exports import export_claim, export_request, export_run, export_verify, exports_recover, manifest_path
from audit.models import AuditAction, AuditEvent, AuditExport, AuditOutcome
from audit.selectors import EventFilters, export_file_path
from audit.services import audit_record
from resync_site.celery import app

pytestmark = pytest.mark.django_db

OLD = timezone.now() - dt.timedelta(hours=1)


@pytest.fixture
def sent(monkeypatch: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """The tasks the sweep sends, recorded instead of going to a broker nobody consumes in these tests."""
    messages: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(exports, "send_task", lambda task, *args: messages.append((task.name, args)))
    return messages


@pytest.fixture
def eager() -> Any:
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def waiting_export(compliance: Any, settings: Any, django_capture_on_commit_callbacks: Any) -> AuditExport:
    settings.AUDIT_EXPORT_INLINE_ROWS = 2
    for n in range(30):
        audit_record(action=AuditAction.JOB_ACTION, actor_label="olivia", target_type="job", target_id=f"J#{n}")
    with django_capture_on_commit_callbacks(execute=False):  # the worker is played by the test
        return export_request(acting_user=compliance, filters=EventFilters(), fmt="csv")


def _files(settings: Any) -> list[str]:
    return sorted(p.name for p in Path(settings.AUDIT_EXPORT_DIR).iterdir())


def _finished(export: AuditExport) -> int:
    return AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORT, target_id=str(export.pk),
                                     details__step="finished").count()


def test_an_export_whose_worker_died_is_written_again_into_exactly_one_file(
    waiting_export: AuditExport, settings: Any, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    assert export_claim(export_id=waiting_export.pk, worker="bg@dead-host") is not None
    waiting_export.refresh_from_db()
    path = export_file_path(waiting_export)
    # What the killed worker left behind: half a file under a temporary name, and a stopped heartbeat.
    path.parent.mkdir(parents=True)
    path.with_name(path.name + ".dead0001.partial").write_text("sequence,timestamp\n1,2")
    AuditExport.objects.filter(pk=waiting_export.pk).update(heartbeat_at=OLD, rows_done=1000)

    with django_capture_on_commit_callbacks(execute=True):
        assert exports_recover().requeued == [str(waiting_export.pk)]

    export = AuditExport.objects.get(pk=waiting_export.pk)
    assert export.status == AuditExport.Status.DONE and export.attempts == 2
    assert export.file_name == waiting_export.file_name  # the name the first attempt chose
    assert _files(settings) == [path.name, manifest_path(path).name]
    assert export_verify(path, manifest_path(path)).ok
    assert export.rows_done == export.manifest["row_count"] == 31
    assert _finished(export) == 1
    requeued = AuditEvent.objects.get(action=AuditAction.AUDIT_EXPORT, details__step="requeued")
    assert requeued.actor_label == "system" and requeued.outcome == AuditOutcome.PENDING
    assert requeued.details["worker"] == "bg@dead-host"

    export_run(export_id=export.pk)  # the dead worker's message, redelivered later: nothing happens
    assert _files(settings) == [path.name, manifest_path(path).name] and _finished(export) == 1


def test_an_export_with_a_fresh_heartbeat_is_left_alone(waiting_export: AuditExport, sent: list[Any]) -> None:
    assert export_claim(export_id=waiting_export.pk, worker="bg@live") is not None
    assert exports_recover().as_dict() == {"requeued": [], "failed": []}
    assert exports_recover(worker="bg@other").requeued == []
    waiting_export.refresh_from_db()
    assert waiting_export.status == AuditExport.Status.RUNNING and sent == []


def test_an_export_that_keeps_dying_fails_with_a_clear_error(
    waiting_export: AuditExport, settings: Any, sent: list[Any]
) -> None:
    settings.WORK_MAX_ATTEMPTS = 2
    for _attempt in (1, 2):
        assert export_claim(export_id=waiting_export.pk) is not None
        AuditExport.objects.filter(pk=waiting_export.pk).update(heartbeat_at=OLD)
        with translation.override("en"):
            exports_recover()
    export = AuditExport.objects.get(pk=waiting_export.pk)
    assert export.status == AuditExport.Status.FAILED and export.attempts == 2
    assert "stopped 2 times" in export.error and "request the export again" in export.error
    steps = list(AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORT, target_id=str(export.pk))
                 .order_by("sequence").values_list("details__step", "outcome"))
    assert steps == [("requested", "pending"), ("requeued", "pending"), ("failed", "failure")]
    assert sent == [("audit.tasks.export_run_task", (export.pk,))]
    assert export_claim(export_id=export.pk) is None  # a late delivery does not bring it back


def test_a_worker_presumed_dead_cannot_publish_over_its_replacement(
    waiting_export: AuditExport, settings: Any, sent: list[Any], monkeypatch: Any
) -> None:
    settings.WORK_HEARTBEAT_SECONDS = 0
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 10)

    class Stalls(exports.Heartbeat):
        """The first worker stalls at its first progress report; meanwhile the sweep hands its export on."""

        def beat(self, **kwargs: Any) -> None:
            AuditExport.objects.filter(pk=waiting_export.pk).update(heartbeat_at=OLD)
            assert exports_recover().requeued == [str(waiting_export.pk)]
            super().beat(**kwargs)

    monkeypatch.setattr(exports, "Heartbeat", Stalls)
    export_run(export_id=waiting_export.pk, worker="bg@slow")  # stops at its heartbeat: claim lost
    export = AuditExport.objects.get(pk=waiting_export.pk)
    assert export.status == AuditExport.Status.PENDING and _files(settings) == []  # its partial file is gone

    monkeypatch.undo()
    export_run(export_id=waiting_export.pk, worker="bg@fast")
    export.refresh_from_db()
    assert export.status == AuditExport.Status.DONE and export.claimed_by == "bg@fast" and _finished(export) == 1
    assert len(_files(settings)) == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_take_an_export_once(compliance: Any, settings: Any) -> None:
    export = AuditExport.objects.create(requested_by=compliance, format="jsonl", filters={}, rows_total=1)
    barrier = threading.Barrier(6)
    claims: list[Any] = []

    def claim() -> None:
        try:
            barrier.wait(timeout=10)
            claims.append(export_claim(export_id=export.pk, worker="bg@host"))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    close_old_connections()
    assert len(claims) == 6 and sum(1 for c in claims if c is not None) == 1, claims
    assert AuditExport.objects.get(pk=export.pk).attempts == 1


# --- lost task messages: a waiting export no worker claims -----------------------------------------


def _steps(export: AuditExport) -> list[tuple[str, str]]:
    return list(AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORT, target_id=str(export.pk))
                .order_by("sequence").values_list("details__step", "outcome"))


def test_a_waiting_export_whose_message_was_lost_is_sent_again_and_written_once(
    waiting_export: AuditExport, settings: Any, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    # The fixture's on-commit send never ran: as if Redis had dropped the message.
    AuditExport.objects.filter(pk=waiting_export.pk).update(heartbeat_at=OLD)
    with django_capture_on_commit_callbacks(execute=True):
        assert exports_recover().as_dict() == {"requeued": [str(waiting_export.pk)], "failed": []}

    export = AuditExport.objects.get(pk=waiting_export.pk)
    assert export.status == AuditExport.Status.DONE and export.attempts == 1 and export.resends == 1
    path = export_file_path(export)
    assert _files(settings) == [path.name, manifest_path(path).name] and export_verify(path, manifest_path(path)).ok
    assert _steps(export) == [("requested", "pending"), ("requeued", "pending"), ("finished", "success")]
    requeued = AuditEvent.objects.get(action=AuditAction.AUDIT_EXPORT, details__step="requeued")
    assert requeued.details["reason"] == "not_claimed" and requeued.actor_label == "system"

    export_run(export_id=export.pk)  # the original message, late rather than lost: nothing happens
    assert _files(settings) == [path.name, manifest_path(path).name] and _finished(export) == 1


def test_an_export_no_worker_ever_claims_fails_after_the_resend_limit(
    waiting_export: AuditExport, settings: Any, sent: list[Any]
) -> None:
    settings.WORK_MAX_RESENDS = 1
    AuditExport.objects.filter(pk=waiting_export.pk).update(heartbeat_at=OLD)
    assert exports_recover().requeued == [str(waiting_export.pk)]
    assert exports_recover().requeued == []  # sent again just now: not yet late
    AuditExport.objects.filter(pk=waiting_export.pk).update(heartbeat_at=OLD)
    with translation.override("en"):
        assert exports_recover().failed == [str(waiting_export.pk)]
    export = AuditExport.objects.get(pk=waiting_export.pk)
    assert export.status == AuditExport.Status.FAILED and export.resends == 1 and export.attempts == 0
    assert "sent 2 times" in export.error and '"audit" queue' in export.error and "request the export again" in export.error
    assert _steps(export) == [("requested", "pending"), ("requeued", "pending"), ("failed", "failure")]
    assert sent == [("audit.tasks.export_run_task", (export.pk,))]
    assert export_claim(export_id=export.pk) is None  # a late delivery does not bring it back


def test_an_export_the_broker_refuses_is_logged_loudly_and_stays_waiting(
    compliance: Any, settings: Any, monkeypatch: Any, caplog: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from kombu.exceptions import OperationalError

    from audit.tasks import export_run_task

    def broker_down(*args: Any) -> None:
        raise OperationalError("Connection refused")

    monkeypatch.setattr(export_run_task, "delay", broker_down)
    settings.AUDIT_EXPORT_INLINE_ROWS = 0
    audit_record(action=AuditAction.JOB_ACTION, actor_label="olivia", target_type="job", target_id="J#1")
    with caplog.at_level("ERROR", logger="resync_site.lib.work"), django_capture_on_commit_callbacks(execute=True):
        export = export_request(acting_user=compliance, filters=EventFilters(), fmt="csv")
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "COULD NOT SEND" in record.getMessage() and f"audit export {export.pk}" in record.getMessage()
    export.refresh_from_db()
    assert export.status == AuditExport.Status.PENDING and export.heartbeat_at is not None
