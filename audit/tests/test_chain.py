from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit.models import AuditAction, AuditEvent
from audit.selectors import chain_verify
from audit.services import audit_record


@pytest.mark.django_db
def test_events_chain_and_verify():
    for i in range(5):
        audit_record(action=AuditAction.ADMIN_CHANGE, actor_label="system:test", details={"i": i, "texto": "ação"})
    report = chain_verify()
    assert report.ok, report
    assert report.count == 5
    sequences = list(AuditEvent.objects.values_list("sequence", flat=True))
    assert sequences == [1, 2, 3, 4, 5]


def _tamper(sql: str, params: list[object]) -> None:
    """Changes a row behind the trigger's back, the way someone with database access could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


@pytest.mark.django_db
def test_verification_finds_a_changed_row(capsys):
    for i in range(4):
        audit_record(action=AuditAction.ADMIN_CHANGE, actor_label="system:test", details={"i": i})
    _tamper("UPDATE audit_auditevent SET details = %s WHERE sequence = 3", ['{"i": 99}'])
    report = chain_verify()
    assert not report.ok
    assert report.broken_sequence == 3
    assert "content" in report.reason
    with pytest.raises(SystemExit) as exit_info:
        call_command_exit("audit_verify")
    assert exit_info.value.code == 1
    assert "BROKEN at sequence 3" in capsys.readouterr().err


def call_command_exit(name: str) -> None:
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", name])


@pytest.mark.django_db
def test_verification_finds_a_deleted_row_and_a_cut_tail():
    for i in range(4):
        audit_record(action=AuditAction.ADMIN_CHANGE, actor_label="system:test", details={"i": i})
    _tamper("DELETE FROM audit_auditevent WHERE sequence = 4", [])
    report = chain_verify()
    assert not report.ok and report.broken_sequence == 4
    _tamper("DELETE FROM audit_auditevent WHERE sequence = 2", [])
    report = chain_verify()
    assert not report.ok and report.broken_sequence == 2 and "missing" in report.reason


@pytest.mark.django_db
def test_audit_verify_command_prints_ok(capsys):
    audit_record(action=AuditAction.ADMIN_CHANGE, actor_label="system:test")
    call_command("audit_verify")
    assert capsys.readouterr().out.startswith("OK 1 events")


@pytest.mark.django_db
def test_rolled_back_action_leaves_no_event():
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action=AuditAction.ADMIN_CHANGE, actor_label="system:test")
        raise RuntimeError("the action failed")
    assert AuditEvent.objects.count() == 0
    assert chain_verify().ok


@pytest.mark.django_db
def test_trigger_refuses_update_and_delete():
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL")
    audit_record(action=AuditAction.ADMIN_CHANGE, actor_label="system:test")
    with connection.cursor() as cursor:
        cursor.execute("SET resync.allow_truncate = 'off'")
    for sql in ("UPDATE audit_auditevent SET outcome = 'failure'", "DELETE FROM audit_auditevent", "TRUNCATE audit_auditevent"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    event = AuditEvent.objects.get()
    event.outcome = "failure"
    with pytest.raises(DatabaseError), transaction.atomic():
        event.save()
    assert AuditEvent.objects.get().outcome == "success"


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_the_chain_valid():
    writers, per_writer = 6, 25
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(per_writer):
                audit_record(action=AuditAction.ADMIN_CHANGE, actor_label=f"system:writer{n}", details={"i": i})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    report = chain_verify()
    assert report.ok, report
    assert report.count == writers * per_writer
