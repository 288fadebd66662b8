"""Anchoring the chain head outside the database, and archiving events past the retention period.

Anchoring: the head (sequence, hash) goes to the `AuditAnchor` table and is appended to
`anchors.jsonl` in AUDIT_ANCHOR_DIR, a folder meant to be copied to storage the database's
administrators cannot rewrite. Someone who rewrites the whole table with a fresh, internally
consistent chain still cannot match the hashes anchored on earlier days.

Retention: the oldest events are written to a gzip-compressed JSON-lines file with a manifest,
checked by reading the file back, and only then deleted, in the one transaction that sets
`resync.audit_retention` (the append-only trigger's sole exception) and records the archive.
"""

from __future__ import annotations

import calendar
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.chain import (
    GENESIS_HASH,
    canonical_json,
    file_sha256,
    iter_chunks,
    read_archive_rows,
    row_as_record,
    verify_rows,
)
from audit.models import AuditAction, AuditAnchor, AuditArchive, AuditChainHead, AuditEvent
from audit.selectors import anchor_file_path
from audit.services import audit_record
from resync_site.lib.errors import ConflictError, ForbiddenError
from resync_site.roles import Role, has_role


def anchor_write(*, acting_user: Any = None, request: HttpRequest | None = None) -> AuditAnchor:
    """Writes today's anchor: the newest sequence and hash, to the table and the outside file."""
    path = anchor_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with transaction.atomic():
        # Holding the head row while anchoring: the pair written is the newest at this instant.
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        sequence, value = (head.sequence, head.hash) if head else (0, GENESIS_HASH)
        now = timezone.now()
        line = canonical_json({"sequence": sequence, "hash": value, "anchored_at": now.isoformat()})
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        anchor = AuditAnchor.objects.create(sequence=sequence, hash=value, anchored_at=now, file_name=path.name)
        audit_record(
            action=AuditAction.AUDIT_ANCHOR,
            actor=acting_user,
            actor_label="" if acting_user is not None else "system:anchor",
            request=request,
            target_type="audit_anchor",
            target_id=anchor.pk,
            target_label=f"#{sequence}",
            details={"sequence": sequence, "hash": value, "file": path.name},
        )
    return anchor


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (the 31st falls back to the month's end)."""
    year_shift, month_index = divmod(moment.month - 1 - months, 12)
    year, month = moment.year + year_shift, month_index + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def retention_cutoff(now: datetime | None = None) -> datetime:
    return months_before(now or timezone.now(), settings.AUDIT_RETENTION_MONTHS)


def _writing(rows: Iterable[tuple[Any, ...]], handle: Any) -> Iterator[tuple[Any, ...]]:
    for row in rows:
        handle.write(canonical_json(row_as_record(row)))
        handle.write("\n")
        yield row


def archive_run(
    *, acting_user: Any = None, before: datetime | None = None, request: HttpRequest | None = None,
    actor_label: str = "",
) -> AuditArchive | None:
    """Moves every event older than `before` (default: the retention period) to an archive file.

    Privileged: administrators only (or the system itself, with no acting user). Returns None
    when nothing is old enough; that run is audited too.
    """
    if acting_user is not None and not has_role(acting_user, [Role.ADMIN]):
        raise ForbiddenError("Only administrators may archive audit events.")
    cutoff = before or retention_cutoff()
    label = actor_label or ("" if acting_user is not None else "system:retention")
    previous = AuditArchive.objects.order_by("-last_sequence").first()
    expected_first, prev_hash = (previous.last_sequence + 1, previous.last_hash) if previous else (1, GENESIS_HASH)
    last = (AuditEvent.objects.filter(timestamp__lt=cutoff).order_by("-sequence")
            .values_list("sequence", flat=True).first())
    if last is None or last < expected_first:
        audit_record(action=AuditAction.AUDIT_ARCHIVE, actor=acting_user, actor_label=label, request=request,
                     target_type="audit_archive", details={"cutoff": cutoff.isoformat(), "rows": 0})
        return None

    directory = Path(settings.AUDIT_ARCHIVE_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"audit-archive-{expected_first:012d}-{last:012d}.jsonl.gz"
    path = directory / name
    stretch = AuditEvent.objects.filter(sequence__lte=last)
    try:
        # Verified while written, then verified again from the file: nothing is deleted on trust.
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            written = verify_rows(_writing(iter_chunks(stretch), handle),
                                  expected_prev_hash=prev_hash, expected_first=expected_first)
        if not written.ok:
            raise ConflictError(f"The chain is broken, nothing was archived: {written}", code="chain_broken")
        reread = verify_rows(read_archive_rows(path), expected_prev_hash=prev_hash, expected_first=expected_first)
        if not reread.ok or reread.count != written.count or reread.last_hash != written.last_hash:
            raise ConflictError(f"The archive file did not read back intact: {reread}", code="archive_unreadable")
        manifest = {
            "kind": "resync-audit-archive",
            "version": 1,
            "file": name,
            "sha256": file_sha256(path),
            "size_bytes": path.stat().st_size,
            "row_count": written.count,
            "first_sequence": expected_first,
            "last_sequence": last,
            "prev_hash": prev_hash,
            "last_hash": written.last_hash,
            "cutoff": cutoff.isoformat(),
            "created_at": timezone.now().isoformat(timespec="seconds"),
            "created_by": label or acting_user.get_username(),
        }
        path.with_name(name + ".manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        with transaction.atomic():
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    # The append-only trigger's one exception, local to this transaction.
                    cursor.execute("SET LOCAL resync.audit_retention = 'on'")
                cursor.execute("DELETE FROM audit_auditevent WHERE sequence >= %s AND sequence <= %s",
                               [expected_first, last])
                if cursor.rowcount != written.count:
                    raise ConflictError("The online table changed while archiving; nothing was deleted.",
                                        code="archive_conflict")
            archive = AuditArchive.objects.create(
                first_sequence=expected_first, last_sequence=last, prev_hash=prev_hash, last_hash=written.last_hash,
                row_count=written.count, cutoff=cutoff, file_name=name, sha256=manifest["sha256"], manifest=manifest,
            )
            audit_record(
                action=AuditAction.AUDIT_ARCHIVE, actor=acting_user, actor_label=label, request=request,
                target_type="audit_archive", target_id=archive.pk, target_label=name,
                details={"cutoff": cutoff.isoformat(), "rows": written.count, "first_sequence": expected_first,
                         "last_sequence": last, "last_hash": written.last_hash, "sha256": manifest["sha256"]},
            )
    except BaseException:
        # A failed run leaves no half-made archive that a later check might take for a real one.
        if not AuditArchive.objects.filter(file_name=name).exists():
            path.unlink(missing_ok=True)
            path.with_name(name + ".manifest.json").unlink(missing_ok=True)
        raise
    return archive
