"""An import whose worker dies is queued again by the recovery sweep and completes exactly once.

The sweep (resync_site/lib/work.py) runs here directly; tests/faults/test_worker_kill.py kills a
real worker process mid-import.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from audit.models import AuditAction, AuditEvent, AuditOutcome
from knowledge import services
from knowledge.index import get_index
from knowledge.models import ImportRun, ImportStatus, KnowledgeEntry
from knowledge.tasks import import_run_execute
from resync_site.lib import work
from resync_site.lib.work import ClaimLost, Heartbeat

pytestmark = pytest.mark.django_db

OLD = timezone.now() - dt.timedelta(hours=1)


def _rows(n: int) -> list[list[Any]]:
    return [[f"KB-{i}", f"AWSBHT{i:03d}E", f"JOB_{i}", f"O job {i} abendou com erro de permissão",
             "stdlist sem permissão", f"Corrigir permissões e fazer rerun do job {i}.", "Permissões", "Alta",
             "Time TWS", "2025-01-10"] for i in range(n)]


@pytest.fixture
def queued_run(admin_user: Any, make_workbook: Callable[..., bytes]) -> ImportRun:
    run = services.import_run_create(acting_user=admin_user, data=make_workbook(_rows(5)), file_name="kb.xlsx")
    return services.import_run_start(acting_user=admin_user, run=run)


@pytest.fixture
def sent(monkeypatch: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """The tasks the sweep sends, recorded instead of going to a broker nobody consumes in these tests."""
    messages: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(services, "send_task", lambda task, *args: messages.append((task.name, args)))
    return messages


def _imported_events() -> int:
    return AuditEvent.objects.filter(action=AuditAction.KB_IMPORT, details__step="imported").count()


def _steps(run: ImportRun) -> list[tuple[str, str]]:
    return list(AuditEvent.objects.filter(action=AuditAction.KB_IMPORT, target_id=str(run.pk))
                .order_by("sequence").values_list("details__step", "outcome"))


def test_a_run_whose_worker_died_while_indexing_is_queued_again_and_finishes_once(
    queued_run: ImportRun, eager_tasks: None, django_capture_on_commit_callbacks: Any
) -> None:
    run_id = str(queued_run.pk)
    claim = services.import_run_claim(run_id=run_id, worker="chat@dead-host")
    assert claim is not None
    # The dead worker got as far as committing the rows (and the import's audit event), not the index.
    plan = services.import_plan(data=queued_run.file.open("rb").read(), file_name="kb.xlsx")
    services.import_apply(acting_user=None, plan=plan, run=queued_run, claim=claim)
    ImportRun.objects.filter(pk=run_id).update(heartbeat_at=OLD)

    with django_capture_on_commit_callbacks(execute=True):
        recovered = services.import_runs_recover()
    assert recovered.requeued == [run_id] and recovered.failed == []

    run = ImportRun.objects.get(pk=run_id)
    assert run.status == ImportStatus.SUCCEEDED and run.attempts == 2 and run.processed == run.to_process == 5
    assert run.counts["new"] == 5  # what the first attempt wrote, not "5 unchanged" from the second
    assert KnowledgeEntry.objects.count() == 5
    assert KnowledgeEntry.history.count() == 5  # one version per entry
    assert AuditEvent.objects.filter(action=AuditAction.KB_ENTRY_CREATED).count() == 5
    assert _imported_events() == 1
    assert get_index().client.count(get_index().collection, exact=True).count == 5
    requeued = AuditEvent.objects.get(action=AuditAction.KB_IMPORT, details__step="requeued")
    assert requeued.actor_label == "system" and requeued.outcome == AuditOutcome.PENDING
    assert requeued.details["worker"] == "chat@dead-host" and requeued.details["attempts"] == 1
    # The dead worker's message, redelivered an hour later, finds nothing to do.
    assert import_run_execute.apply(args=[run_id]).get() == "skipped"
    assert KnowledgeEntry.objects.count() == 5 and _imported_events() == 1


def test_a_run_whose_worker_died_before_the_write_committed_writes_everything_once(
    queued_run: ImportRun, eager_tasks: None, django_capture_on_commit_callbacks: Any
) -> None:
    run_id = str(queued_run.pk)
    assert services.import_run_claim(run_id=run_id) is not None
    ImportRun.objects.filter(pk=run_id).update(heartbeat_at=OLD)
    with django_capture_on_commit_callbacks(execute=True):
        services.import_runs_recover()
    run = ImportRun.objects.get(pk=run_id)
    assert run.status == ImportStatus.SUCCEEDED and run.written_at is not None
    assert KnowledgeEntry.objects.count() == 5 and _imported_events() == 1
    assert _steps(run) == [("requeued", "pending"), ("imported", "success")]


def test_a_run_with_a_fresh_heartbeat_is_left_alone(queued_run: ImportRun, sent: list[Any]) -> None:
    assert services.import_run_claim(run_id=str(queued_run.pk), worker="chat@live") is not None
    assert services.import_runs_recover().as_dict() == {"requeued": [], "failed": []}
    # Another worker starting is no reason either: only the same node name restarting is.
    assert services.import_runs_recover(worker="chat@other").requeued == []
    queued_run.refresh_from_db()
    assert queued_run.status == ImportStatus.RUNNING and queued_run.attempts == 1
    assert not AuditEvent.objects.filter(action=AuditAction.KB_IMPORT).exists() and sent == []


def test_a_worker_restarting_recovers_its_own_runs_at_once(queued_run: ImportRun, monkeypatch: Any,
                                                           sent: list[Any]) -> None:
    assert services.import_run_claim(run_id=str(queued_run.pk), worker="chat@host") is not None
    # The worker process starting now: the run's heartbeat (a second ago) predates it.
    monkeypatch.setattr(work, "PROCESS_STARTED", timezone.now() + dt.timedelta(seconds=1))
    assert services.import_runs_recover(worker="chat@other").requeued == []
    assert services.import_runs_recover(worker="chat@host").requeued == [str(queued_run.pk)]
    queued_run.refresh_from_db()
    assert queued_run.status == ImportStatus.QUEUED
    assert sent == [("knowledge.tasks.import_run_execute", (str(queued_run.pk),))]


def test_a_run_that_keeps_dying_fails_after_the_attempt_limit(queued_run: ImportRun, settings: Any,
                                                              sent: list[Any]) -> None:
    settings.WORK_MAX_ATTEMPTS = 2
    run_id = str(queued_run.pk)
    for attempt in (1, 2):
        assert services.import_run_claim(run_id=run_id, worker="chat@host") is not None
        ImportRun.objects.filter(pk=run_id).update(heartbeat_at=OLD)
        services.import_runs_recover()
        queued_run.refresh_from_db()
        assert queued_run.attempts == attempt
    assert queued_run.status == ImportStatus.FAILED
    assert "stopped 2 times" in queued_run.message and "start the import again" in queued_run.message
    assert _steps(queued_run) == [("requeued", "pending"), ("failed", "failure")]
    assert len(sent) == 1  # sent again once; not after the last attempt
    # A late delivery of a message does not bring a failed run back; the admin can start it again.
    assert services.import_run_claim(run_id=run_id) is None
    services.import_run_start(acting_user=None, run=queued_run)
    queued_run.refresh_from_db()
    assert queued_run.status == ImportStatus.QUEUED and queued_run.attempts == 0


def test_a_worker_presumed_dead_cannot_write_over_its_replacement(queued_run: ImportRun, sent: list[Any]) -> None:
    run_id = str(queued_run.pk)
    stalled = services.import_run_claim(run_id=run_id, worker="chat@slow")
    assert stalled is not None
    ImportRun.objects.filter(pk=run_id).update(heartbeat_at=OLD)
    services.import_runs_recover()
    replacement = services.import_run_claim(run_id=run_id, worker="chat@fast")
    assert replacement is not None

    # The stalled worker wakes up: its writes are refused, its heartbeat tells it to stop.
    run = services.import_run_process(run_id=run_id, claim=stalled)
    assert run.status == ImportStatus.RUNNING and run.claimed_by == "chat@fast"
    assert KnowledgeEntry.objects.count() == 0 and _imported_events() == 0
    with pytest.raises(ClaimLost):
        Heartbeat(ImportRun.objects.filter(pk=run_id, status=ImportStatus.RUNNING, claim_id=stalled)).beat(force=True)

    assert services.import_run_process(run_id=run_id, claim=replacement).status == ImportStatus.SUCCEEDED
    assert KnowledgeEntry.objects.count() == 5 and _imported_events() == 1


def test_a_transient_error_hands_the_run_back_and_the_retry_finishes_it(
    queued_run: ImportRun, eager_tasks: None, monkeypatch: Any
) -> None:
    real = services.entries_index
    calls: list[int] = []

    def flaky(**kwargs: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("vector store did not answer")
        return real(**kwargs)

    monkeypatch.setattr(services, "entries_index", flaky)
    import_run_execute.apply(args=[str(queued_run.pk)], throw=False)  # eager: the retry runs at once
    queued_run.refresh_from_db()
    assert queued_run.status == ImportStatus.SUCCEEDED and queued_run.attempts == 2 and len(calls) == 2
    assert KnowledgeEntry.objects.count() == 5 and _imported_events() == 1


# --- concurrency: real transactions, several connections -----------------------------------------


def _in_threads(count: int, target: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = target()
        except Exception as exc:  # reported by the assertion on results
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    close_old_connections()
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_and_sweeps_take_a_run_once(admin_user: Any, make_workbook: Callable[..., bytes],
                                                      sent: list[Any]) -> None:
    run = services.import_run_create(acting_user=admin_user, data=make_workbook(_rows(1)), file_name="kb.xlsx")
    services.import_run_start(acting_user=admin_user, run=run)
    run_id = str(run.pk)

    claims = _in_threads(6, lambda: services.import_run_claim(run_id=run_id, worker="chat@host"))
    assert sum(1 for c in claims if c is not None) == 1, claims
    assert ImportRun.objects.get(pk=run_id).attempts == 1

    ImportRun.objects.filter(pk=run_id).update(heartbeat_at=OLD)
    sweeps = _in_threads(4, lambda: services.import_runs_recover().requeued)
    assert sorted(map(len, sweeps)) == [0, 0, 0, 1], sweeps
    assert AuditEvent.objects.filter(action=AuditAction.KB_IMPORT, details__step="requeued").count() == 1
    assert len(sent) == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_locked_by_its_writing_worker_is_not_taken(admin_user: Any, make_workbook: Callable[..., bytes],
                                                         sent: list[Any]) -> None:
    """Inside the all-or-nothing write the heartbeat cannot be seen: the row lock says the worker lives."""
    run = services.import_run_create(acting_user=admin_user, data=make_workbook(_rows(1)), file_name="kb.xlsx")
    services.import_run_start(acting_user=admin_user, run=run)
    assert services.import_run_claim(run_id=str(run.pk)) is not None
    ImportRun.objects.filter(pk=run.pk).update(heartbeat_at=OLD)
    locked, release = threading.Event(), threading.Event()

    def writer() -> None:
        try:
            with transaction.atomic():
                ImportRun.objects.select_for_update().get(pk=run.pk)
                locked.set()
                release.wait(timeout=20)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert locked.wait(timeout=10)
        assert services.import_runs_recover().requeued == []
    finally:
        release.set()
        thread.join(timeout=20)
    assert services.import_runs_recover().requeued == [str(run.pk)]


# --- lost task messages: a queued run no worker claims ---------------------------------------------


def _lose_the_message(run: ImportRun) -> None:
    """The run was queued long ago and its message never reached a worker (these tests never commit,
    so the on-commit send never ran: the same as a broker that dropped it)."""
    ImportRun.objects.filter(pk=run.pk).update(heartbeat_at=OLD)


def test_a_queued_run_whose_message_was_lost_is_sent_again_and_finishes_once(
    queued_run: ImportRun, eager_tasks: None, django_capture_on_commit_callbacks: Any
) -> None:
    run_id = str(queued_run.pk)
    _lose_the_message(queued_run)
    with django_capture_on_commit_callbacks(execute=True):
        recovered = services.import_runs_recover()
    assert recovered.as_dict() == {"requeued": [run_id], "failed": []}

    run = ImportRun.objects.get(pk=run_id)
    assert run.status == ImportStatus.SUCCEEDED and run.attempts == 1 and run.resends == 1
    assert KnowledgeEntry.objects.count() == 5 and _imported_events() == 1
    assert _steps(run) == [("requeued", "pending"), ("imported", "success")]
    requeued = AuditEvent.objects.get(action=AuditAction.KB_IMPORT, details__step="requeued")
    assert requeued.details["reason"] == "not_claimed" and requeued.actor_label == "system"
    assert requeued.details["worker"] == "" and requeued.details["resends"] == 0
    # The first message was only late, not lost: its delivery now finds the run done.
    assert import_run_execute.apply(args=[run_id]).get() == "skipped"
    assert KnowledgeEntry.objects.count() == 5 and KnowledgeEntry.history.count() == 5 and _imported_events() == 1


def test_a_queued_run_is_left_alone_until_it_is_late(queued_run: ImportRun, settings: Any, sent: list[Any]) -> None:
    assert services.import_runs_recover().as_dict() == {"requeued": [], "failed": []}
    # Just under the threshold: a worker may still be on its way to it.
    ImportRun.objects.filter(pk=queued_run.pk).update(
        heartbeat_at=timezone.now() - dt.timedelta(seconds=settings.WORK_QUEUED_STALE_SECONDS - 5))
    assert services.import_runs_recover().requeued == [] and sent == []
    # A preview (validated) or finished run is never sent, however old.
    ImportRun.objects.filter(pk=queued_run.pk).update(status=ImportStatus.VALIDATED, heartbeat_at=OLD)
    assert services.import_runs_recover().requeued == [] and sent == []


def test_a_run_no_worker_ever_claims_fails_after_the_resend_limit(
    queued_run: ImportRun, settings: Any, sent: list[Any]
) -> None:
    settings.WORK_MAX_RESENDS = 2
    run_id = str(queued_run.pk)
    for resends in (1, 2):
        _lose_the_message(queued_run)
        assert services.import_runs_recover().requeued == [run_id]
        queued_run.refresh_from_db()
        assert queued_run.status == ImportStatus.QUEUED and queued_run.resends == resends
        assert queued_run.heartbeat_at > OLD  # stamped when sent again: the next resend waits a full period
        assert f"sent again ({resends} of 2)" in queued_run.message
        assert services.import_runs_recover().requeued == []
    assert sent == [("knowledge.tasks.import_run_execute", (run_id,))] * 2

    _lose_the_message(queued_run)
    assert services.import_runs_recover().as_dict() == {"requeued": [], "failed": [run_id]}
    queued_run.refresh_from_db()
    assert queued_run.status == ImportStatus.FAILED and queued_run.attempts == 0
    assert "sent 3 times" in queued_run.message and '"knowledge" queue' in queued_run.message
    assert _steps(queued_run) == [("requeued", "pending"), ("requeued", "pending"), ("failed", "failure")]
    failed = AuditEvent.objects.get(action=AuditAction.KB_IMPORT, details__step="failed")
    assert failed.details["reason"] == "not_claimed" and "sent 3 times" in failed.details["error"]
    assert len(sent) == 2 and services.import_run_claim(run_id=run_id) is None
    # Started again by the admin, it gets its full allowance back.
    services.import_run_start(acting_user=None, run=queued_run)
    queued_run.refresh_from_db()
    assert queued_run.status == ImportStatus.QUEUED and queued_run.resends == 0 and queued_run.attempts == 0


def test_a_send_the_broker_refuses_is_logged_loudly_and_the_sweep_sends_it_later(
    admin_user: Any, make_workbook: Callable[..., bytes], monkeypatch: Any, caplog: Any,
    django_capture_on_commit_callbacks: Any, sent: list[Any]
) -> None:
    from kombu.exceptions import OperationalError

    def broker_down(*args: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(import_run_execute, "delay", broker_down)
    run = services.import_run_create(acting_user=admin_user, data=make_workbook(_rows(1)), file_name="kb.xlsx")
    with caplog.at_level("ERROR", logger="resync_site.lib.work"), django_capture_on_commit_callbacks(execute=True):
        services.import_run_start(acting_user=admin_user, run=run)  # the request that queued it succeeds
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "COULD NOT SEND" in record.getMessage() and str(run.pk) in record.getMessage()
    assert record.exc_info and isinstance(record.exc_info[1], OperationalError)
    run.refresh_from_db()
    assert run.status == ImportStatus.QUEUED

    _lose_the_message(run)
    assert services.import_runs_recover().requeued == [str(run.pk)]
    assert sent == [("knowledge.tasks.import_run_execute", (str(run.pk),))]


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_one_run_at_the_same_time_import_it_once(
    admin_user: Any, make_workbook: Callable[..., bytes], eager_tasks: None
) -> None:
    """The resent message and the original one (late, not lost) arrive together: the claim lets one run."""
    run = services.import_run_create(acting_user=admin_user, data=make_workbook(_rows(3)), file_name="kb.xlsx")
    ImportRun.objects.filter(pk=run.pk).update(status=ImportStatus.QUEUED, heartbeat_at=timezone.now())
    run_id = str(run.pk)
    results = _in_threads(3, lambda: import_run_execute.apply(args=[run_id]).get())
    assert sorted(results) == ["skipped", "skipped", "succeeded"], results
    run.refresh_from_db()
    assert run.status == ImportStatus.SUCCEEDED and run.attempts == 1
    assert KnowledgeEntry.objects.count() == 3 and KnowledgeEntry.history.count() == 3 and _imported_events() == 1
