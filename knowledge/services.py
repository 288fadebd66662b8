"""Writes to the knowledge base. Each service is its own transaction and writes its audit event.

Entries reach the vector index after their transaction commits (`transaction.on_commit`), so a
rolled-back change never shows up in searches. Imports index inside their own run, with progress.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditAction, AuditOutcome
from audit.services import audit_record
from knowledge.importer import IMPORTED_FIELDS, ParsedWorkbook, entry_content_hash, read_workbook
from knowledge.models import (
    EntryKey,
    EntrySource,
    EntryStatus,
    ImportRun,
    ImportStatus,
    KnowledgeEntry,
)
from knowledge.text import clean_cell, detect_language, normalize_code, parse_jobs
from resync_site.lib.errors import ApplicationError, ConflictError, NotFoundError
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

logger = logging.getLogger(__name__)

SYSTEM_LABEL = "system"


def _actor_label(acting_user: Any) -> str:
    return "" if acting_user is not None and getattr(acting_user, "is_authenticated", False) else SYSTEM_LABEL


def _user_or_none(acting_user: Any) -> Any:
    return acting_user if acting_user is not None and getattr(acting_user, "is_authenticated", False) else None


# --- index maintenance ----------------------------------------------------------------------


def entries_index(*, entry_ids: Iterable[int], progress: Callable[[int], None] | None = None) -> int:
    """(Re)writes the index points of these entries, whatever their status (searches filter it)."""
    from knowledge.index import get_index

    entries = list(KnowledgeEntry.objects.filter(pk__in=list(entry_ids)).order_by("pk"))
    return get_index().upsert(entries, progress=progress)


def _index_on_commit(entry_ids: list[int]) -> None:
    def run() -> None:
        try:
            entries_index(entry_ids=entry_ids)
        except Exception:  # the database change stands; `kb_reindex` repairs a missed index write
            logger.exception("could not index knowledge entries %s", entry_ids)

    transaction.on_commit(run)


def _audit_on_commit(entry_ids: list[int]) -> None:
    """Queues the AI auditor for new or changed entries once their transaction commits."""

    def run() -> None:
        from knowledge.tasks import auditor_entry

        for entry_id in entry_ids:
            auditor_entry.delay(entry_id)

    # robust: the entry is saved either way; the nightly sweep audits anything missed here.
    transaction.on_commit(run, robust=True)


def _sync_keys(entry: KnowledgeEntry) -> None:
    entry.keys.all().delete()
    keys = [EntryKey(entry=entry, kind=EntryKey.Kind.CODE, value=code[:128]) for code in entry.error_codes]
    keys += [
        EntryKey(entry=entry, kind=EntryKey.Kind.JOB, value=job[:128], is_pattern="*" in job or "?" in job)
        for job in entry.job_patterns
    ]
    keys += [EntryKey(entry=entry, kind=EntryKey.Kind.WORKSTATION, value=ws[:128]) for ws in entry.workstations]
    EntryKey.objects.bulk_create(keys, ignore_conflicts=True)


def _normalized_fields(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    if "error_codes" in out:
        codes: list[str] = []
        for code in out["error_codes"] or []:
            code = normalize_code(str(code))
            if code and code not in codes:
                codes.append(code)
        out["error_codes"] = codes
    if "job_patterns" in out:
        jobs, workstations = parse_jobs(" ".join(str(j) for j in out["job_patterns"] or []))
        out["job_patterns"] = jobs
        out.setdefault("workstations", workstations)
    for name in ("title", "symptom", "cause", "solution", "category", "owner_team"):
        if name in out:
            out[name] = clean_cell(out[name])
    return out


# --- entries --------------------------------------------------------------------------------


@transaction.atomic
def entry_create(
    *,
    acting_user: Any,
    external_id: str,
    symptom: str,
    solution: str,
    title: str = "",
    cause: str = "",
    error_codes: Iterable[str] = (),
    job_patterns: Iterable[str] = (),
    category: str = "",
    severity: str = "",
    owner_team: str = "",
    language: str = "",
    source: str = EntrySource.MANUAL,
    status: str = EntryStatus.DRAFT,
    revalidate_on: dt.date | None = None,
    reason: str = "",
) -> KnowledgeEntry:
    """Creates an entry (drafts and learned entries wait for a reviewer's `entry_approve`)."""
    external_id = external_id.strip()
    if not external_id or not clean_cell(symptom) or not clean_cell(solution):
        raise ApplicationError(_("An entry needs an ID, a symptom and a solution."), code="kb_entry_invalid")
    if KnowledgeEntry.objects.filter(external_id=external_id).exists():
        raise ConflictError(_("An entry with ID %(id)s already exists.") % {"id": external_id})
    fields = _normalized_fields(
        {"title": title or symptom.split("\n", 1)[0][:300], "symptom": symptom, "solution": solution,
         "cause": cause, "error_codes": list(error_codes), "job_patterns": list(job_patterns),
         "category": category, "owner_team": owner_team}
    )
    entry = KnowledgeEntry(
        external_id=external_id,
        severity=severity,
        language=language or detect_language(f"{symptom}\n{cause}\n{solution}"),
        source=source,
        status=status,
        revalidate_on=revalidate_on,
        created_by=_user_or_none(acting_user),
        **fields,
    )
    entry.title = entry.title[:300]
    entry.content_hash = entry_content_hash({name: getattr(entry, name) for name in IMPORTED_FIELDS})
    entry._history_user = _user_or_none(acting_user)  # type: ignore[attr-defined]
    entry._change_reason = reason or "created"  # type: ignore[attr-defined]
    entry.full_clean(exclude=["created_by"])
    entry.save()
    _sync_keys(entry)
    audit_record(
        action=AuditAction.KB_ENTRY_CREATED,
        actor=acting_user,
        actor_label=_actor_label(acting_user),
        target_type="knowledge_entry",
        target_id=entry.external_id,
        target_label=entry.title,
        details={"source": entry.source, "status": entry.status, "reason": reason},
    )
    _index_on_commit([entry.pk])
    _audit_on_commit([entry.pk])
    return entry


@transaction.atomic
def entry_update(*, acting_user: Any, entry: KnowledgeEntry, reason: str = "", **changes: Any) -> KnowledgeEntry:
    """Changes an entry's fields; the history row and the audit event say who and why."""
    allowed = set(IMPORTED_FIELDS) | {"status"}
    unknown = set(changes) - allowed
    if unknown:
        raise ApplicationError(_("These fields cannot be changed: %(f)s") % {"f": ", ".join(sorted(unknown))})
    entry = KnowledgeEntry.objects.select_for_update().get(pk=entry.pk)
    changes = _normalized_fields(changes)
    changed = {name: value for name, value in changes.items() if getattr(entry, name) != value}
    if not changed:
        return entry
    for name, value in changed.items():
        setattr(entry, name, value)
    entry.content_hash = entry_content_hash({name: getattr(entry, name) for name in IMPORTED_FIELDS})
    entry._history_user = _user_or_none(acting_user)  # type: ignore[attr-defined]
    entry._change_reason = reason or "edited"  # type: ignore[attr-defined]
    entry.full_clean(exclude=["created_by"])
    entry.save()
    if {"error_codes", "job_patterns", "workstations"} & set(changed):
        _sync_keys(entry)
    audit_record(
        action=AuditAction.KB_ENTRY_CHANGED,
        actor=acting_user,
        actor_label=_actor_label(acting_user),
        target_type="knowledge_entry",
        target_id=entry.external_id,
        target_label=entry.title,
        details={"fields": sorted(changed), "reason": reason},
    )
    _index_on_commit([entry.pk])
    _audit_on_commit([entry.pk])
    return entry


_STATUS_ACTIONS = {
    EntryStatus.APPROVED: AuditAction.KB_ENTRY_APPROVED,
    EntryStatus.REJECTED: AuditAction.KB_ENTRY_REJECTED,
    EntryStatus.RETIRED: AuditAction.KB_ENTRY_RETIRED,
    EntryStatus.PENDING_REVIEW: AuditAction.KB_ENTRY_CHANGED,
    EntryStatus.DRAFT: AuditAction.KB_ENTRY_CHANGED,
}


@transaction.atomic
def entry_set_status(*, acting_user: Any, entry: KnowledgeEntry, status: str, reason: str = "") -> KnowledgeEntry:
    status = EntryStatus(status)
    entry = KnowledgeEntry.objects.select_for_update().get(pk=entry.pk)
    if entry.status == status:
        return entry
    previous = entry.status
    entry.status = status
    entry._history_user = _user_or_none(acting_user)  # type: ignore[attr-defined]
    entry._change_reason = reason or f"{previous} -> {status}"  # type: ignore[attr-defined]
    entry.save(update_fields=["status", "updated_at"])
    audit_record(
        action=_STATUS_ACTIONS[status],
        actor=acting_user,
        actor_label=_actor_label(acting_user),
        target_type="knowledge_entry",
        target_id=entry.external_id,
        target_label=entry.title,
        details={"from": previous, "to": status, "reason": reason},
    )
    _index_on_commit([entry.pk])
    if status == EntryStatus.PENDING_REVIEW:
        _audit_on_commit([entry.pk])
    return entry


def entry_approve(*, acting_user: Any, entry: KnowledgeEntry, reason: str = "") -> KnowledgeEntry:
    return entry_set_status(acting_user=acting_user, entry=entry, status=EntryStatus.APPROVED, reason=reason)


def entry_reject(*, acting_user: Any, entry: KnowledgeEntry, reason: str = "") -> KnowledgeEntry:
    return entry_set_status(acting_user=acting_user, entry=entry, status=EntryStatus.REJECTED, reason=reason)


def entry_retire(*, acting_user: Any, entry: KnowledgeEntry, reason: str = "") -> KnowledgeEntry:
    return entry_set_status(acting_user=acting_user, entry=entry, status=EntryStatus.RETIRED, reason=reason)


def entry_submit_for_review(*, acting_user: Any, entry: KnowledgeEntry, reason: str = "") -> KnowledgeEntry:
    return entry_set_status(acting_user=acting_user, entry=entry, status=EntryStatus.PENDING_REVIEW, reason=reason)


def entries_record_hits(*, external_ids: Iterable[str]) -> None:
    """Counts entries shown as answers (a plain counter: not audited, no history row)."""
    KnowledgeEntry.objects.filter(external_id__in=list(external_ids)).update(
        hit_count=F("hit_count") + 1, last_hit_at=timezone.now()
    )


def entry_record_feedback(*, acting_user: Any, external_id: str, helpful: bool) -> None:
    counter = "helpful_count" if helpful else "unhelpful_count"
    if not KnowledgeEntry.objects.filter(external_id=external_id).update(**{counter: F(counter) + 1}):
        raise NotFoundError(_("No knowledge entry %(id)s.") % {"id": external_id})


def index_rebuild(*, acting_user: Any, progress: Callable[[int], None] | None = None) -> int:
    """Drops and rebuilds the collection with the configured embedding model (`kb_reindex`)."""
    from knowledge.index import get_index

    index = get_index()
    previous = index.built_with()
    index.drop()
    index.create()
    ids = list(KnowledgeEntry.objects.order_by("pk").values_list("pk", flat=True))
    count = entries_index(entry_ids=ids, progress=progress)
    audit_record(
        action=AuditAction.KB_REINDEX,
        actor=acting_user,
        actor_label=_actor_label(acting_user),
        target_type="knowledge_index",
        target_id=index.collection,
        details={"entries": count, "model": index.model_label, "previous_model": previous},
    )
    return count


# --- import ---------------------------------------------------------------------------------


@dataclass
class ImportPlan:
    parsed: ParsedWorkbook
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "rows": self.parsed.total_rows,
            "new": len(self.new),
            "changed": len(self.changed),
            "unchanged": len(self.unchanged),
            "invalid": len(self.parsed.invalid_rows),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "file": self.parsed.file_name,
            "sheet": self.parsed.sheet,
            "header_row": self.parsed.header_row,
            "other_sheets": self.parsed.other_sheets,
            "columns": self.parsed.columns,
            "ignored_columns": self.parsed.ignored_columns,
            "counts": self.counts,
            "errors": [e.as_dict() for e in self.parsed.errors],
        }


def import_plan(*, data: bytes, file_name: str) -> ImportPlan:
    """Reads and validates a workbook and sorts its rows into new / changed / unchanged (no writes)."""
    parsed = read_workbook(data, file_name)
    plan = ImportPlan(parsed=parsed)
    existing = dict(
        KnowledgeEntry.objects.filter(external_id__in=[r.external_id for r in parsed.rows]).values_list(
            "external_id", "content_hash"
        )
    )
    for row in parsed.rows:
        if row.external_id not in existing:
            plan.new.append(row.external_id)
        elif existing[row.external_id] != row.content_hash:
            plan.changed.append(row.external_id)
        else:
            plan.unchanged.append(row.external_id)
    return plan


@dataclass
class ImportResult:
    counts: dict[str, int]
    written_ids: list[int]


def import_apply(
    *,
    acting_user: Any,
    plan: ImportPlan,
    only_valid: bool = False,
    run: ImportRun | None = None,
    claim: uuid.UUID | None = None,
) -> ImportResult:
    """Writes a validated plan in one transaction: all rows, or (if the admin chose) only the valid ones.

    For a background `run`, the same transaction checks the worker still holds its `claim` (and
    holds the run's row lock until the commit: the recovery sweep skips a locked run) and marks the
    run written, so the rows and the import's audit event are committed exactly once per run.
    """
    parsed = plan.parsed
    if parsed.errors and not only_valid:
        raise ApplicationError(
            _("%(n)d row(s) are invalid; nothing was imported. Fix them or import only the valid rows.")
            % {"n": len(parsed.invalid_rows)},
            code="import_rows_invalid",
            extra={"errors": [e.as_dict() for e in parsed.errors[:200]]},
        )
    written: list[int] = []
    user = _user_or_none(acting_user)
    reason = _("import of %(file)s") % {"file": parsed.file_name}
    with transaction.atomic():
        if run is not None and not (
            ImportRun.objects.select_for_update()
            .filter(pk=run.pk, status=ImportStatus.RUNNING, claim_id=claim, written_at__isnull=True)
            .exists()
        ):
            raise ClaimLost()
        existing = {
            e.external_id: e
            for e in KnowledgeEntry.objects.select_for_update().filter(external_id__in=[r.external_id for r in parsed.rows])
        }
        counts = {"new": 0, "changed": 0, "unchanged": 0, "invalid": len(parsed.invalid_rows)}
        for row in parsed.rows:
            entry = existing.get(row.external_id)
            content_hash = row.content_hash
            if entry is not None and entry.content_hash == content_hash:
                counts["unchanged"] += 1
                continue
            if entry is None:
                entry = KnowledgeEntry(
                    external_id=row.external_id, source=EntrySource.IMPORT, status=EntryStatus.APPROVED, created_by=user
                )
                action, change = AuditAction.KB_ENTRY_CREATED, "new"
                changed_fields = sorted(IMPORTED_FIELDS)
            else:
                action, change = AuditAction.KB_ENTRY_CHANGED, "changed"
                changed_fields = [n for n in IMPORTED_FIELDS if getattr(entry, n) != row.values[n]]
            for name, value in row.values.items():
                setattr(entry, name, value)
            entry.content_hash = content_hash
            entry._history_user = user  # type: ignore[attr-defined]
            entry._change_reason = reason  # type: ignore[attr-defined]
            entry.save()
            _sync_keys(entry)
            audit_record(
                action=action,
                actor=acting_user,
                actor_label=_actor_label(acting_user),
                target_type="knowledge_entry",
                target_id=entry.external_id,
                target_label=entry.title,
                details={"source": "import", "file": parsed.file_name, "row": row.row, "fields": changed_fields},
            )
            counts[change] += 1
            written.append(entry.pk)
        audit_record(
            action=AuditAction.KB_IMPORT,
            actor=acting_user,
            actor_label=_actor_label(acting_user),
            target_type="knowledge_import",
            target_id=str(run.pk) if run else "",
            target_label=parsed.file_name,
            details={"step": "imported", "sheet": parsed.sheet, "only_valid": only_valid, **counts,
                     "errors": [str(e) for e in parsed.errors[:50]]},
            outcome=AuditOutcome.SUCCESS,
        )
        if run is not None:
            now = timezone.now()
            ImportRun.objects.filter(pk=run.pk).update(written_at=now, heartbeat_at=now, counts=run.counts | counts)
    return ImportResult(counts=counts, written_ids=written)


def import_run_create(*, acting_user: Any, data: bytes, file_name: str) -> ImportRun:
    """Validates an upload and keeps it as a run in preview state (nothing imported yet)."""
    plan = import_plan(data=data, file_name=file_name)
    run = ImportRun(
        file_name=file_name[:255],
        file_sha256=hashlib.sha256(data).hexdigest(),
        sheet=plan.parsed.sheet,
        total_rows=plan.parsed.total_rows,
        counts=plan.describe()["counts"] | {"header_row": plan.parsed.header_row},
        errors=[e.as_dict() for e in plan.parsed.errors[:1000]],
        message=_("Sheet '%(sheet)s' (header on row %(row)d); other sheets ignored: %(others)s")
        % {"sheet": plan.parsed.sheet, "row": plan.parsed.header_row,
           "others": ", ".join(plan.parsed.other_sheets) or "-"},
        created_by=_user_or_none(acting_user),
    )
    run.file.save(f"{run.pk}{_suffix(file_name)}", ContentFile(data), save=False)
    run.save()
    return run


def _suffix(file_name: str) -> str:
    from pathlib import Path

    return Path(file_name).suffix.lower()


@transaction.atomic
def import_run_start(*, acting_user: Any, run: ImportRun, only_valid: bool = False) -> ImportRun:
    """Queues a validated run; the background task writes and indexes it."""
    run = ImportRun.objects.select_for_update().get(pk=run.pk)
    if run.status not in (ImportStatus.VALIDATED, ImportStatus.FAILED):
        raise ConflictError(_("This import is already %(status)s.") % {"status": run.get_status_display()})
    if run.errors and not only_valid:
        raise ApplicationError(
            _("%(n)d row(s) are invalid; fix the file or choose to import only the valid rows.")
            % {"n": run.counts.get("invalid", len(run.errors))},
            code="import_rows_invalid",
            # The API client sees which rows and columns, and why, without a second request.
            extra={"errors": run.errors[:50], "url": f"/api/kb/import/{run.pk}/"},
        )
    run.status = ImportStatus.QUEUED
    run.only_valid = only_valid
    # The recovery sweep's limits count the claims and the re-sent messages since this start; while
    # queued, heartbeat_at is when the task was sent (a run no worker claims is sent again).
    run.attempts = 0
    run.resends = 0
    run.heartbeat_at = timezone.now()
    run.save(update_fields=["status", "only_valid", "attempts", "resends", "heartbeat_at"])
    from knowledge.tasks import import_run_execute

    send_on_commit(import_run_execute, str(run.pk), what=f"knowledge import {run.pk} ({run.file_name})")
    return run


def import_run_claim(*, run_id: str, worker: str = "") -> uuid.UUID | None:
    """Takes a queued run for this worker; its claim id, or None when someone else has it or it is done.

    The row lock first: a run the recovery sweep is queueing again (its transaction holds the lock,
    and the task may arrive before the commit) is then seen queued, not skipped as still running.
    """
    claim = new_claim()
    now = timezone.now()
    with transaction.atomic():
        if not ImportRun.objects.select_for_update().filter(pk=run_id).exists():
            return None
        claimed = ImportRun.objects.filter(pk=run_id, status=ImportStatus.QUEUED).update(
            status=ImportStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1,
            claim_id=claim, claimed_by=worker[:255], message="",
        )
    return claim if claimed else None


def _claimed(run_id: str, claim: uuid.UUID) -> Any:
    return ImportRun.objects.filter(pk=run_id, status=ImportStatus.RUNNING, claim_id=claim)


def import_run_process(*, run_id: str, claim: uuid.UUID) -> ImportRun:
    """Writes a claimed run's rows and indexes them, recording progress (and a heartbeat) as it goes.

    All or nothing, exactly once: the rows are one transaction that also marks the run written; an
    attempt after a worker died while indexing finds it written and re-indexes every entry of the
    file (points are keyed by entry, so nothing is doubled). A user-caused error fails the run;
    anything else is raised for the task to retry or fail it.
    """
    run = ImportRun.objects.select_related("created_by").get(pk=run_id)
    heartbeat = Heartbeat(_claimed(run_id, claim))
    try:
        with run.file.open("rb") as handle:
            data = handle.read()
        plan = import_plan(data=data, file_name=run.file_name)
        if run.written_at is None:
            result = import_apply(acting_user=run.created_by, plan=plan, only_valid=run.only_valid, run=run, claim=claim)
            ids = result.written_ids
        else:
            ids = list(
                KnowledgeEntry.objects.filter(external_id__in=[r.external_id for r in plan.parsed.rows]).values_list(
                    "pk", flat=True
                )
            )
        heartbeat.beat(force=True, to_process=len(ids), processed=0)
        entries_index(entry_ids=ids, progress=lambda done: heartbeat.beat(processed=done))
        now = timezone.now()
        if not _claimed(run_id, claim).update(
            status=ImportStatus.SUCCEEDED, processed=len(ids), finished_at=now, heartbeat_at=now
        ):
            raise ClaimLost()
    except ClaimLost:
        logger.warning("import run %s: this worker's claim was taken over; stopping", run_id)
    except ApplicationError as exc:
        import_run_fail(run_id=run_id, claim=claim, message=exc.message)
    run.refresh_from_db()
    return run


def import_run_fail(*, run_id: str, claim: uuid.UUID, message: str) -> bool:
    """Marks a claimed run failed (it can be started again from the admin)."""
    return bool(
        _claimed(run_id, claim).update(status=ImportStatus.FAILED, finished_at=timezone.now(), message=message[:2000])
    )


def import_run_release(*, run_id: str, claim: uuid.UUID, message: str) -> bool:
    """Hands a claimed run back to the queue (the task retries it after a transient error)."""
    return bool(_claimed(run_id, claim).update(status=ImportStatus.QUEUED, message=message[:2000]))


def import_runs_recover(*, worker: str | None = None) -> Recovery:
    """Queues again (or, after WORK_MAX_ATTEMPTS, fails) runs whose worker stopped, and sends again
    (or, after WORK_MAX_RESENDS, fails) queued runs no worker claimed (resync_site/lib/work.py)."""
    from knowledge.tasks import import_run_execute

    def requeue(run: ImportRun) -> None:
        ImportRun.objects.filter(pk=run.pk).update(
            status=ImportStatus.QUEUED, heartbeat_at=timezone.now(),
            message=_("The worker running this import stopped (attempt %(n)d); it was queued again.")
            % {"n": run.attempts},
        )
        _audit_recovery(run, step="requeued", outcome=AuditOutcome.PENDING, reason=REASON_WORKER_STOPPED)
        send_task(import_run_execute, str(run.pk))

    def resend(run: ImportRun) -> None:
        ImportRun.objects.filter(pk=run.pk).update(
            heartbeat_at=timezone.now(), resends=F("resends") + 1,
            message=_("No worker took this import (its task was probably lost, e.g. by a Redis restart); "
                      "it was sent again (%(n)d of %(max)d).") % {"n": run.resends + 1, "max": settings.WORK_MAX_RESENDS},
        )
        _audit_recovery(run, step="requeued", outcome=AuditOutcome.PENDING, reason=REASON_NOT_CLAIMED)
        send_task(import_run_execute, str(run.pk))

    def never_claimed(run: ImportRun) -> None:
        message = _(
            "No worker took this import, though its task was sent %(n)d times. Check that a worker consumes "
            "the \"knowledge\" queue (its log, the broker), then start the import again."
        ) % {"n": run.resends + 1}
        ImportRun.objects.filter(pk=run.pk).update(status=ImportStatus.FAILED, finished_at=timezone.now(),
                                                   message=message)
        _audit_recovery(run, step="failed", outcome=AuditOutcome.FAILURE, error=message, reason=REASON_NOT_CLAIMED)

    def give_up(run: ImportRun) -> None:
        message = _(
            "The worker running this import stopped %(n)d times; it was not tried again. Check the worker's "
            "log (memory, time limits), then start the import again."
        ) % {"n": run.attempts}
        ImportRun.objects.filter(pk=run.pk).update(status=ImportStatus.FAILED, finished_at=timezone.now(),
                                                   message=message)
        _audit_recovery(run, step="failed", outcome=AuditOutcome.FAILURE, error=message, reason=REASON_WORKER_STOPPED)

    running = runs_recover(ImportRun.objects.filter(status=ImportStatus.RUNNING), worker=worker, requeue=requeue,
                           give_up=give_up)
    queued = runs_resend(ImportRun.objects.filter(status=ImportStatus.QUEUED), resend=resend, give_up=never_claimed)
    return running.merge(queued)


def _audit_recovery(run: ImportRun, *, step: str, outcome: str, reason: str, error: str = "") -> None:
    audit_record(
        action=AuditAction.KB_IMPORT,
        actor_label=SYSTEM_LABEL,
        target_type="knowledge_import",
        target_id=str(run.pk),
        target_label=run.file_name,
        details={"step": step, "reason": reason, **describe_run(run), **({"error": error} if error else {})},
        outcome=outcome,
    )
