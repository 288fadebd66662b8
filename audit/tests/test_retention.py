from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from audit.chain import GENESIS_HASH, event_hash
from audit.exports import export_verify, export_write, manifest_path
from audit.models import AuditAction, AuditAnchor, AuditArchive, AuditChainHead, AuditEvent
from audit.retention import anchor_write, archive_run, months_before
from audit.selectors import EventFilters, anchor_file_path, anchors_verify, archive_path, chain_verify
from audit.services import audit_record
from audit.tests.conftest import tamper
from resync_site.lib.errors import ForbiddenError


def _events(n: int, label: str = "system:test") -> None:
    for i in range(n):
        audit_record(action=AuditAction.ADMIN_CHANGE, actor_label=label, details={"i": i, "texto": "ação"})


def _rewrite_whole_table(change_details_of: int) -> None:
    """What an attacker with database access does: a fresh, internally consistent chain with one edit."""
    rows = list(AuditEvent.objects.order_by("sequence").values())
    tamper("DELETE FROM audit_auditevent", [])
    prev = GENESIS_HASH
    rewritten = []
    for row in rows:
        if row["sequence"] == change_details_of:
            row["details"] = {"i": 999}
        row["prev_hash"] = prev
        row["hash"] = event_hash(row)
        prev = row["hash"]
        rewritten.append(AuditEvent(**row))
    AuditEvent.objects.bulk_create(rewritten)
    AuditChainHead.objects.filter(pk=1).update(sequence=rows[-1]["sequence"], hash=prev)
    AuditAnchor.objects.all().delete()  # the attacker cleans up the anchor table as well


@pytest.mark.django_db
def test_anchor_is_written_to_the_table_and_the_outside_file_and_audited() -> None:
    _events(3)
    anchor = anchor_write()
    assert (anchor.sequence, anchor.hash) == (3, AuditEvent.objects.get(sequence=3).hash)
    line = json.loads(anchor_file_path().read_text().splitlines()[-1])
    assert (line["sequence"], line["hash"]) == (3, anchor.hash)
    event = AuditEvent.objects.get(action=AuditAction.AUDIT_ANCHOR)
    assert event.details["sequence"] == 3 and event.actor_label == "system:anchor"
    assert anchors_verify().ok


@pytest.mark.django_db
def test_anchoring_detects_a_rewritten_table(capsys: Any) -> None:
    _events(4)
    anchor_write()
    _events(2)
    _rewrite_whole_table(change_details_of=2)
    assert chain_verify().ok  # the rewritten chain is consistent in itself...
    report = anchors_verify()
    assert not report.ok  # ...but cannot match what was anchored outside the database
    assert report.broken_sequence == 4 and "rewritten" in report.reason
    with pytest.raises(CommandError, match="ANCHOR MISMATCH at sequence 4"):
        call_command("audit_verify")


@pytest.mark.django_db
def test_anchor_beyond_a_cut_table_is_detected() -> None:
    _events(5)
    anchor_write()
    tamper("DELETE FROM audit_auditevent WHERE sequence >= 4", [])
    AuditChainHead.objects.filter(pk=1).update(sequence=3, hash=AuditEvent.objects.get(sequence=3).hash)
    report = anchors_verify()
    assert not report.ok and report.broken_sequence == 5 and "no longer in the chain" in report.reason


def _archive_first(n_old: int, n_new: int, **kwargs: Any) -> AuditArchive:
    _events(n_old, "system:old")
    cutoff = timezone.now()
    _events(n_new, "system:new")
    archive = archive_run(before=cutoff, **kwargs)
    assert archive is not None
    return archive


@pytest.mark.django_db
def test_archive_moves_old_events_and_verification_spans_archive_and_online(capsys: Any) -> None:
    archive = _archive_first(5, 3)
    assert (archive.first_sequence, archive.last_sequence, archive.row_count) == (1, 5, 5)
    assert list(AuditEvent.objects.values_list("sequence", flat=True)) == [6, 7, 8, 9]  # 9: the archive's own event
    event = AuditEvent.objects.get(action=AuditAction.AUDIT_ARCHIVE)
    assert event.details["rows"] == 5 and event.details["last_sequence"] == 5 and event.actor_label == "system:retention"

    path = archive_path(archive)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        archived = [json.loads(line) for line in handle]
    assert [row["sequence"] for row in archived] == [1, 2, 3, 4, 5]
    assert all(row["actor_label"] == "system:old" for row in archived)
    manifest = json.loads(path.with_name(path.name + ".manifest.json").read_text())
    assert manifest["sha256"] == archive.sha256 and manifest["row_count"] == 5

    report = chain_verify()
    assert report.ok and report.count == 9, report
    call_command("audit_verify")
    assert capsys.readouterr().out.startswith("OK 9 events")

    # A second stretch continues from the first without a gap.
    cutoff = timezone.now()
    _events(1)
    second = archive_run(before=cutoff)
    assert second is not None and (second.first_sequence, second.prev_hash) == (6, archive.last_hash)
    assert chain_verify().ok and chain_verify().count == 11


@pytest.mark.django_db
def test_archive_tampering_and_gaps_are_detected() -> None:
    archive = _archive_first(4, 2)
    path = archive_path(archive)
    original = path.read_bytes()

    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    report = chain_verify()
    assert not report.ok and "does not match its manifest" in report.reason

    path.unlink()
    report = chain_verify()
    assert not report.ok and "is missing" in report.reason

    path.write_bytes(original)
    assert chain_verify().ok
    AuditArchive.objects.all().delete()  # forgetting the archive leaves the online rows hanging
    report = chain_verify()
    assert not report.ok and report.broken_sequence == 1 and "missing" in report.reason


@pytest.mark.django_db
def test_anchors_still_verify_after_archiving() -> None:
    _events(3)
    anchor_write()  # anchors sequence 3, which will be archived
    cutoff = timezone.now()
    _events(2)
    anchor_write()
    archive_run(before=cutoff)
    assert anchors_verify().ok
    assert not AuditEvent.objects.filter(sequence=3).exists()


@pytest.mark.django_db
def test_archive_is_for_administrators_only(compliance: Any, admin_user: Any) -> None:
    _events(2)
    with pytest.raises(ForbiddenError):
        archive_run(acting_user=compliance, before=timezone.now())
    assert AuditEvent.objects.filter(sequence=1).exists()
    archive = archive_run(acting_user=admin_user, before=timezone.now())
    assert archive is not None
    assert AuditEvent.objects.get(action=AuditAction.AUDIT_ARCHIVE).actor_label == "ana"


@pytest.mark.django_db
def test_only_the_retention_procedure_may_delete() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL")
    from django.db import DatabaseError, transaction

    _events(2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence = 1")
    assert AuditEvent.objects.count() == 2


@pytest.mark.django_db
def test_nothing_old_enough_is_audited_and_changes_nothing() -> None:
    _events(2)
    assert archive_run(before=datetime(2000, 1, 1, tzinfo=timezone.get_current_timezone())) is None
    assert AuditEvent.objects.filter(action=AuditAction.AUDIT_ARCHIVE, details__rows=0).exists()
    assert AuditArchive.objects.count() == 0


def test_retention_period_counts_calendar_months() -> None:
    tz = timezone.get_current_timezone()
    assert months_before(datetime(2026, 11, 24, 10, tzinfo=tz), 13) == datetime(2025, 10, 24, 10, tzinfo=tz)
    assert months_before(datetime(2026, 3, 31, tzinfo=tz), 1) == datetime(2026, 2, 28, tzinfo=tz)
    assert months_before(datetime(2026, 1, 15, tzinfo=tz), 25) == datetime(2023, 12, 15, tzinfo=tz)


@pytest.mark.django_db
def test_archive_command_asks_for_confirmation_then_archives(capsys: Any) -> None:
    _events(2)
    with pytest.raises(CommandError, match="--yes"):
        call_command("audit_archive", "--before", "2999-01-01")
    call_command("audit_archive", "--before", "2999-01-01", "--yes")
    assert "archived 2 events" in capsys.readouterr().out
    assert AuditEvent.objects.get(action=AuditAction.AUDIT_ARCHIVE).actor_label == "system:cli"


@pytest.mark.django_db
def test_export_of_archived_rows_still_verifies_against_the_chain(tmp_path: Path) -> None:
    _events(3)
    path = tmp_path / "early.jsonl"
    export_write(filters=EventFilters(), fmt="jsonl", path=path)
    archive_run(before=timezone.now())
    assert export_verify(path, manifest_path(path)).ok
