"""Exports of a filtered selection of the trail (CSV, XLSX, JSON lines), each with a checkable manifest.

Every row carries all chain fields, its `prev_hash` and `hash`, so each row can be re-hashed on its
own: the manifest's SHA-256 catches any change to the file, the per-row hash catches a changed row
even in a file whose manifest was rewritten to match, and the lookup against the database catches
a row that is not (or no longer) the chain's.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.chain import (
    CHAIN_FIELDS,
    canonical_json,
    cells_as_row,
    event_hash,
    file_sha256,
    iter_chunks,
    record_as_row,
    row_as_cells,
    row_as_record,
    timestamp_text,
)
from audit.models import AuditAction, AuditChainHead, AuditExport, AuditOutcome
from audit.selectors import EventFilters, chain_hashes_at, chain_verify, events_filtered, export_file_path
from audit.services import audit_record
from resync_site.lib.errors import ApplicationError, ForbiddenError
from resync_site.lib.spreadsheet import formula_safe, formula_unescape
from resync_site.lib.work import (
    REASON_NOT_CLAIMED,
    REASON_WORKER_STOPPED,
    ClaimLost,
    Heartbeat,
    Recovery,
    describe_run,
    new_claim,
    runs_recover,
    runs_resend,
    send_on_commit,
    send_task,
)
from resync_site.roles import AUDIT_READERS, has_role

logger = logging.getLogger(__name__)

MANIFEST_KIND = "resync-audit-export"
# How often the writer reports progress; the export's heartbeat throttles the database writes.
PROGRESS_EVERY = 1_000


# --- Writing -------------------------------------------------------------------------------------


@dataclass
class _Stats:
    """What the manifest says about the rows, gathered while they stream past (constant memory)."""

    count: int = 0
    first: tuple[int, str] | None = None
    last: tuple[int, str] | None = None
    time_from: str | None = None
    time_to: str | None = None

    def track(self, rows: Iterable[tuple[Any, ...]], progress: Callable[[int], None] | None) -> Iterator[tuple[Any, ...]]:
        for row in rows:
            sequence, stamp, hash_value = row[0], timestamp_text(row[1]), row[-1]
            if self.first is None:
                self.first = (sequence, hash_value)
                self.time_from = stamp
            self.last = (sequence, hash_value)
            self.time_to = stamp  # rows come by ascending sequence, so by ascending time
            self.count += 1
            if progress is not None and self.count % PROGRESS_EVERY == 0:
                progress(self.count)
            yield row


def _write_csv(path: Path, rows: Iterable[tuple[Any, ...]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CHAIN_FIELDS)
        for row in rows:
            # A label like "=HYPERLINK(...)" (an entry title, a reason) must not run in the auditor's
            # Excel: such cells get a leading ', which reading the file back removes (_read_rows).
            writer.writerow([formula_safe(cell) for cell in row_as_cells(row)])


def _write_jsonl(path: Path, rows: Iterable[tuple[Any, ...]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(canonical_json(row_as_record(row)))
            handle.write("\n")


def _write_xlsx(path: Path, rows: Iterable[tuple[Any, ...]]) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    # Write-only mode streams rows to a temporary file instead of building the sheet in memory.
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("audit")
    sheet.append(list(CHAIN_FIELDS))
    for row in rows:
        cells: list[Any] = []
        for value in row_as_cells(row):
            if isinstance(value, str) and value.startswith("="):
                # Text, never a formula: a label like "=HYPERLINK(...)" must not run in the auditor's Excel.
                cell = WriteOnlyCell(sheet, value=value)
                cell.data_type = "s"
                cells.append(cell)
            else:
                cells.append(value)
        sheet.append(cells)
    workbook.save(path)


WRITERS: dict[str, Callable[[Path, Iterable[tuple[Any, ...]]], None]] = {
    AuditExport.Format.CSV: _write_csv,
    AuditExport.Format.JSONL: _write_jsonl,
    AuditExport.Format.XLSX: _write_xlsx,
}


@dataclass
class _Written:
    """An export and its manifest in temporary files beside their final names, not yet published."""

    path: Path
    manifest: dict[str, Any]
    data_file: Path
    manifest_file: Path

    def publish(self) -> None:
        """Renames both into place (atomic on one file system), so a reader never sees a torn export."""
        _fsync(self.data_file)
        _fsync(self.manifest_file)
        self.data_file.replace(self.path)
        self.manifest_file.replace(manifest_path(self.path))
        _fsync(self.path.parent)

    def discard(self) -> None:
        self.data_file.unlink(missing_ok=True)
        self.manifest_file.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    # The file's bytes reach the disk before the rename that publishes it, and the rename itself
    # (the directory) after: a machine crash cannot leave a published export empty or torn.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _partial_name(path: Path, tag: str) -> Path:
    return path.with_name(f"{path.name}.{tag}.partial")


def _remove_partials(path: Path) -> None:
    """Temporary files an earlier, killed attempt left beside `path` (and beside its manifest)."""
    for leftover in path.parent.glob(glob.escape(path.name) + ".*.partial"):
        leftover.unlink(missing_ok=True)


def _write_unpublished(
    *,
    filters: EventFilters,
    fmt: str,
    path: Path,
    progress: Callable[[int], None] | None,
    chunk_size: int,
    extra: dict[str, Any] | None,
) -> _Written:
    head = AuditChainHead.objects.filter(pk=1).values("sequence", "hash").first() or {}
    stats = _Stats()
    rows = stats.track(iter_chunks(events_filtered(filters), chunk_size=chunk_size), progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(4)
    data_file = _partial_name(path, tag)
    manifest_file = _partial_name(manifest_path(path), tag)
    try:
        WRITERS[fmt](data_file, rows)
        manifest = {
            "kind": MANIFEST_KIND,
            "version": 1,
            "format": str(fmt),
            "file": path.name,
            "sha256": file_sha256(data_file),
            "size_bytes": data_file.stat().st_size,
            "filters": filters.as_dict(),
            "row_count": stats.count,
            "time_range": {"from": stats.time_from, "to": stats.time_to},
            "first": {"sequence": stats.first[0], "hash": stats.first[1]} if stats.first else None,
            "last": {"sequence": stats.last[0], "hash": stats.last[1]} if stats.last else None,
            "chain_head_at_start": head,
            "columns": list(CHAIN_FIELDS),
            "generated_at": timezone.now().isoformat(timespec="seconds"),
            **(extra or {}),
        }
        manifest_file.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except BaseException:
        data_file.unlink(missing_ok=True)
        manifest_file.unlink(missing_ok=True)
        raise
    return _Written(path=path, manifest=manifest, data_file=data_file, manifest_file=manifest_file)


def export_write(
    *,
    filters: EventFilters,
    fmt: str,
    path: Path,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 5_000,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes the selection to `path` and its manifest beside it; returns the manifest.

    Both are written under temporary names and renamed into place when complete: `path` is either
    absent, the previous file, or the whole new export with its manifest.
    """
    written = _write_unpublished(filters=filters, fmt=fmt, path=path, progress=progress, chunk_size=chunk_size,
                                 extra=extra)
    written.publish()
    return written.manifest


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


# --- Services ------------------------------------------------------------------------------------


def export_request(
    *, acting_user: Any, filters: EventFilters, fmt: str, request: HttpRequest | None = None
) -> AuditExport:
    """Records the request (audited), then writes small exports at once and hands large ones to a worker."""
    if not has_role(acting_user, AUDIT_READERS):
        raise ForbiddenError("Only compliance officers and administrators may export the audit trail.")
    if fmt not in AuditExport.Format.values:
        raise ApplicationError(f"Unknown export format {fmt!r}.", code="bad_format")
    if filters.sequence_max is None:
        head = AuditChainHead.objects.filter(pk=1).values_list("sequence", flat=True).first() or 0
        filters = replace(filters, sequence_max=head)
    rows = events_filtered(filters).count()
    with transaction.atomic():
        # heartbeat_at, while waiting: when the task was sent (the recovery sweep sends it again if no
        # worker claims it, resync_site/lib/work.py).
        export = AuditExport.objects.create(
            requested_by=acting_user, format=fmt, filters=filters.as_dict(), rows_total=rows, heartbeat_at=timezone.now()
        )
        audit_record(
            action=AuditAction.AUDIT_EXPORT,
            actor=acting_user,
            request=request,
            target_type="audit_export",
            target_id=export.pk,
            target_label=f"{fmt} export",
            details={"step": "requested", "format": fmt, "filters": filters.as_dict(), "rows": rows},
            outcome=AuditOutcome.PENDING,
        )
        if rows > settings.AUDIT_EXPORT_INLINE_ROWS:
            from audit.tasks import export_run_task

            # After commit: the worker must find the row it is handed.
            send_on_commit(export_run_task, export.pk, what=f"audit export {export.pk}")
            return export
    export_run(export_id=export.pk)
    export.refresh_from_db()
    return export


def export_claim(*, export_id: int, worker: str = "") -> uuid.UUID | None:
    """Takes a waiting export for this worker; its claim id, or None when someone else has it or it is done.

    The row lock first: an export the recovery sweep is queueing again (its transaction holds the
    lock, and the task may arrive before the commit) is then seen waiting, not skipped as running.
    The first claim names the file; a later attempt writes the same name, so there is one file.
    """
    claim = new_claim()
    now = timezone.now()
    with transaction.atomic():
        export = AuditExport.objects.select_for_update().filter(pk=export_id).first()
        if export is None:
            return None
        claimed = AuditExport.objects.filter(pk=export_id, status=AuditExport.Status.PENDING).update(
            status=AuditExport.Status.RUNNING, attempts=F("attempts") + 1, started_at=now, heartbeat_at=now,
            claim_id=claim, claimed_by=worker[:255], rows_done=0,
            file_name=export.file_name or f"audit-export-{export.pk}-{secrets.token_hex(8)}.{export.format}",
        )
    return claim if claimed else None


def export_run(*, export_id: int, worker: str = "") -> None:
    """Writes one export, exactly once: safe to run twice, and to kill at any point.

    Only a claimed export is written (see `export_claim`); the file and its manifest go to temporary
    names and are renamed into place, the export marked done and the "finished" event recorded in
    one transaction that first checks the claim is still this worker's. A killed attempt leaves at
    most temporary files, which the next attempt removes.
    """
    claim = export_claim(export_id=export_id, worker=worker)
    if claim is None:
        return
    export = AuditExport.objects.select_related("requested_by").get(pk=export_id)
    fence = AuditExport.objects.filter(pk=export_id, status=AuditExport.Status.RUNNING, claim_id=claim)
    heartbeat = Heartbeat(fence)
    path = export_file_path(export)
    _remove_partials(path)
    written: _Written | None = None
    try:
        written = _write_unpublished(
            filters=EventFilters.from_dict(export.filters),
            fmt=export.format,
            path=path,
            progress=lambda done: heartbeat.beat(rows_done=done),
            chunk_size=5_000,
            extra={"export_id": export.pk, "generated_by": export.requested_by.get_username()},
        )
        manifest = written.manifest
        with transaction.atomic():
            if not fence.select_for_update().exists():
                raise ClaimLost()
            written.publish()
            fence.update(
                status=AuditExport.Status.DONE,
                manifest=manifest,
                rows_total=manifest["row_count"],
                rows_done=manifest["row_count"],
                finished_at=timezone.now(),
                heartbeat_at=timezone.now(),
            )
            audit_record(
                action=AuditAction.AUDIT_EXPORT,
                actor=export.requested_by,
                target_type="audit_export",
                target_id=export.pk,
                target_label=f"{export.format} export",
                details={"step": "finished", "format": export.format, "rows": manifest["row_count"],
                         "sha256": manifest["sha256"], "first": manifest["first"], "last": manifest["last"]},
            )
    except ClaimLost:
        logger.warning("audit export %s: this worker's claim was taken over; stopping", export_id)
        if written is not None:
            written.discard()
    except Exception as exc:  # recorded on the export and in the trail; the worker must not retry a broken export
        logger.exception("audit export %s failed", export_id)
        if written is not None:
            written.discard()
        with transaction.atomic():
            if fence.update(status=AuditExport.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()):
                audit_record(action=AuditAction.AUDIT_EXPORT, actor=export.requested_by, target_type="audit_export",
                             target_id=export.pk, details={"step": "failed", "error": str(exc)[:500]},
                             outcome=AuditOutcome.FAILURE)


def exports_recover(*, worker: str | None = None) -> Recovery:
    """Queues again (or, after WORK_MAX_ATTEMPTS, fails) exports whose worker stopped (resync_site/lib/work.py)."""
    from audit.tasks import export_run_task

    def requeue(export: AuditExport) -> None:
        AuditExport.objects.filter(pk=export.pk).update(status=AuditExport.Status.PENDING,
                                                        heartbeat_at=timezone.now())
        _audit_recovery(export, step="requeued", outcome=AuditOutcome.PENDING, reason=REASON_WORKER_STOPPED)
        send_task(export_run_task, export.pk)

    def resend(export: AuditExport) -> None:
        AuditExport.objects.filter(pk=export.pk).update(heartbeat_at=timezone.now(), resends=F("resends") + 1)
        _audit_recovery(export, step="requeued", outcome=AuditOutcome.PENDING, reason=REASON_NOT_CLAIMED)
        send_task(export_run_task, export.pk)

    def never_claimed(export: AuditExport) -> None:
        error = _(
            "No background worker took this export, though its task was sent %(n)d times. Check that a worker "
            "consumes the \"audit\" queue (its log, the broker), then request the export again."
        ) % {"n": export.resends + 1}
        AuditExport.objects.filter(pk=export.pk).update(status=AuditExport.Status.FAILED, error=error,
                                                        finished_at=timezone.now())
        _audit_recovery(export, step="failed", outcome=AuditOutcome.FAILURE, error=error, reason=REASON_NOT_CLAIMED)

    def give_up(export: AuditExport) -> None:
        error = _(
            "The worker writing this export stopped %(n)d times; it was not tried again. Check the background "
            "worker's log (memory, time limits), then request the export again."
        ) % {"n": export.attempts}
        AuditExport.objects.filter(pk=export.pk).update(status=AuditExport.Status.FAILED, error=error,
                                                        finished_at=timezone.now())
        if export.file_name:
            _remove_partials(export_file_path(export))
        _audit_recovery(export, step="failed", outcome=AuditOutcome.FAILURE, error=error, reason=REASON_WORKER_STOPPED)

    running = runs_recover(AuditExport.objects.filter(status=AuditExport.Status.RUNNING), worker=worker,
                           requeue=requeue, give_up=give_up)
    # A small export is claimed by its own request right after the commit; one whose request died
    # before that is left waiting too, and goes to a worker like one whose message was lost.
    waiting = runs_resend(AuditExport.objects.filter(status=AuditExport.Status.PENDING), resend=resend,
                          give_up=never_claimed)
    return running.merge(waiting)


def _audit_recovery(export: AuditExport, *, step: str, outcome: str, reason: str, error: str = "") -> None:
    audit_record(
        action=AuditAction.AUDIT_EXPORT,
        actor_label="system",
        target_type="audit_export",
        target_id=export.pk,
        target_label=f"{export.format} export",
        details={"step": step, "reason": reason, **describe_run(export), **({"error": error[:500]} if error else {})},
        outcome=outcome,
    )


def export_downloaded(*, acting_user: Any, export: AuditExport, what: str, request: HttpRequest | None = None) -> None:
    """Who took the file away, and when: part of the evidence trail too."""
    audit_record(action=AuditAction.AUDIT_EXPORT, actor=acting_user, request=request, target_type="audit_export",
                 target_id=export.pk, target_label=f"{export.format} export",
                 details={"step": "downloaded", "file": what, "sha256": export.manifest.get("sha256", "")})


# --- Checking a file against its manifest and the chain ----------------------------------------------


@dataclass
class ExportCheck:
    ok: bool
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.ok:
            return f"OK {self.rows} rows match the manifest and the chain"
        return "FAILED: " + "; ".join(self.problems)


def _read_rows(path: Path, fmt: str) -> Iterator[tuple[Any, ...]]:
    if fmt == AuditExport.Format.JSONL:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield record_as_row(json.loads(line))
    elif fmt == AuditExport.Format.CSV:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or tuple(header) != CHAIN_FIELDS:
                raise ValueError("the CSV header is not the audit columns")
            for cells in reader:
                yield cells_as_row([formula_unescape(cell) for cell in cells])
    elif fmt == AuditExport.Format.XLSX:
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True)
        try:
            sheet = workbook["audit"]
            values = sheet.iter_rows(values_only=True)
            header = next(values, None)
            if header is None or tuple(header[: len(CHAIN_FIELDS)]) != CHAIN_FIELDS:
                raise ValueError("the sheet's header is not the audit columns")
            for cells in values:
                padded = list(cells[: len(CHAIN_FIELDS)]) + [None] * (len(CHAIN_FIELDS) - len(cells))
                yield cells_as_row(padded)
        finally:
            workbook.close()
    else:
        raise ValueError(f"unknown format {fmt!r}")


def export_verify(file_path: Path, manifest_file: Path, *, check_chain: bool = True) -> ExportCheck:
    """Checks an export file against its manifest, each row against its own hash, and rows against the chain."""
    try:
        manifest = json.loads(Path(manifest_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return ExportCheck(False, problems=[f"the manifest cannot be read: {exc}"])
    if manifest.get("kind") != MANIFEST_KIND:
        return ExportCheck(False, problems=["this is not an audit export manifest"])
    problems: list[str] = []
    actual_sha = file_sha256(file_path)
    if actual_sha != manifest.get("sha256"):
        problems.append(f"the file's SHA-256 {actual_sha} differs from the manifest's {manifest.get('sha256')}")

    count, first, last, previous = 0, None, None, 0
    pending: dict[int, str] = {}
    chain_mismatch: list[int] = []

    def check_against_chain() -> None:
        actual = chain_hashes_at(set(pending))
        chain_mismatch.extend(seq for seq, value in pending.items() if actual.get(seq) != value)
        pending.clear()

    try:
        for row in _read_rows(Path(file_path), manifest.get("format", "")):
            fields = dict(zip(CHAIN_FIELDS, row, strict=True))
            sequence = fields["sequence"]
            if event_hash(fields) != fields["hash"]:
                problems.append(f"the row for sequence {sequence} does not match its hash (it was changed)")
                break
            if sequence <= previous:
                problems.append(f"rows are out of order at sequence {sequence}")
                break
            previous = sequence
            first = first or {"sequence": sequence, "hash": fields["hash"]}
            last = {"sequence": sequence, "hash": fields["hash"]}
            count += 1
            if check_chain:
                pending[sequence] = fields["hash"]
                if len(pending) >= 5_000:
                    check_against_chain()
        if check_chain and pending:
            check_against_chain()
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(f"the file cannot be read as a {manifest.get('format')} export: {exc}")

    if not problems:
        if count != manifest.get("row_count"):
            problems.append(f"the file has {count} rows, the manifest says {manifest.get('row_count')}")
        if first != manifest.get("first") or last != manifest.get("last"):
            problems.append("the first or last sequence and hash differ from the manifest")
        if chain_mismatch:
            problems.append(f"{len(chain_mismatch)} rows are not in the chain as exported, first at sequence {chain_mismatch[0]}")
    if check_chain and not problems:
        report = chain_verify()
        if not report.ok:
            problems.append(f"the chain itself is broken: {report}")
    return ExportCheck(not problems, count, problems)

