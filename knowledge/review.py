"""The reviewers' decisions on the review queue: approve, edit and approve, merge, reject, assign.

Only reviewers and admins (`KNOWLEDGE_CURATORS`) decide. Each decision is one transaction that
changes the entry through knowledge.services (history row, audit event with the reviewer and the
reason, re-index after commit: an approved entry is searchable as soon as the decision commits),
closes the review item, and resolves the entry's open findings (the reviewer has seen them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditAction
from audit.services import audit_record
from knowledge import services
from knowledge.importer import IMPORTED_FIELDS
from knowledge.models import (
    EntrySource,
    EntryStatus,
    Finding,
    FindingStatus,
    KnowledgeEntry,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    UnansweredQuestion,
    UnansweredStatus,
)
from resync_site.lib.errors import ApplicationError, ConflictError, ForbiddenError
from resync_site.roles import KNOWLEDGE_CURATORS, has_role

MERGEABLE_FIELDS = ("title", "symptom", "cause", "solution", "category", "severity", "owner_team")


def _require_curator(acting_user: Any) -> None:
    if not has_role(acting_user, KNOWLEDGE_CURATORS):
        raise ForbiddenError(_("Only reviewers and administrators decide on the review queue."))


def _lock_open(item: ReviewItem) -> ReviewItem:
    locked = ReviewItem.objects.select_for_update().select_related("entry").filter(pk=item.pk).first()
    if locked is None or locked.status != ReviewStatus.OPEN:
        raise ConflictError(_("This review item has already been decided."), code="review_decided")
    return locked


def _close(item: ReviewItem, *, acting_user: Any, status: str, reason: str, merged_into: KnowledgeEntry | None = None,
           resolution: str) -> None:
    now = timezone.now()
    item.status = status
    item.decided_by = acting_user
    item.decided_at = now
    item.decision_reason = reason
    item.merged_into = merged_into
    item.save(update_fields=["status", "decided_by", "decided_at", "decision_reason", "merged_into"])
    Finding.objects.filter(entry=item.entry, status=FindingStatus.OPEN).update(
        status=FindingStatus.RESOLVED, resolved_at=now, resolution=f"{resolution} by {acting_user.get_username()}"[:300]
    )


def _learned_question(item: ReviewItem) -> str:
    return str((item.provenance or {}).get("question") or "")


@transaction.atomic
def review_approve(*, acting_user: Any, item: ReviewItem, reason: str = "",
                   changes: dict[str, Any] | None = None) -> ReviewItem:
    """Approves the entry (after the reviewer's edits, if any); it is searchable once this commits."""
    _require_curator(acting_user)
    item = _lock_open(item)
    entry = item.entry
    reason = reason.strip()
    if changes:
        unknown = set(changes) - set(IMPORTED_FIELDS)
        if unknown:
            raise ApplicationError(_("These fields cannot be changed: %(f)s") % {"f": ", ".join(sorted(unknown))})
        entry = services.entry_update(acting_user=acting_user, entry=entry, reason=reason or _("edited in review"),
                                      **changes)
    if entry.status != EntryStatus.APPROVED:
        entry = services.entry_approve(acting_user=acting_user, entry=entry, reason=reason or _("approved in review"))
    else:
        # Already approved (flagged by the auditor): the decision is "keep it", still audited.
        audit_record(action=AuditAction.KB_ENTRY_APPROVED, actor=acting_user, target_type="knowledge_entry",
                     target_id=entry.external_id, target_label=entry.title,
                     details={"review": item.pk, "kind": item.kind, "kept": True, "reason": reason})
    item.entry = entry
    _close(item, acting_user=acting_user, status=ReviewStatus.APPROVED, reason=reason, resolution="approved")
    question = _learned_question(item)
    if question:
        transaction.on_commit(lambda: _verified_quietly(acting_user, entry.pk, question), robust=True)
    return item


def _verified_quietly(acting_user: Any, entry_id: int, question: str) -> None:
    from knowledge.learning import verified_answer_create

    entry = KnowledgeEntry.objects.get(pk=entry_id)
    verified_answer_create(acting_user=acting_user, entry=entry, question=question)


@transaction.atomic
def review_reject(*, acting_user: Any, item: ReviewItem, reason: str) -> ReviewItem:
    _require_curator(acting_user)
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError(_("Say why the entry is rejected."), code="reason_required")
    item = _lock_open(item)
    services.entry_reject(acting_user=acting_user, entry=item.entry, reason=reason)
    item.entry.refresh_from_db()
    _close(item, acting_user=acting_user, status=ReviewStatus.REJECTED, reason=reason, resolution="rejected")
    return item


@transaction.atomic
def review_merge(*, acting_user: Any, item: ReviewItem, target: KnowledgeEntry, reason: str = "",
                 take_fields: Iterable[str] = ()) -> ReviewItem:
    """Merges the proposed entry into an existing approved one: its codes and jobs are added, the fields
    the reviewer picked replace the target's, and the proposal itself is closed (status rejected)."""
    _require_curator(acting_user)
    item = _lock_open(item)
    source = item.entry
    target = KnowledgeEntry.objects.select_for_update().get(pk=target.pk)
    if target.pk == source.pk:
        raise ApplicationError(_("An entry cannot be merged into itself."), code="merge_self")
    if target.status != EntryStatus.APPROVED:
        raise ApplicationError(_("Entries are merged into an approved entry."), code="merge_target_not_approved")
    take = [f for f in take_fields if f in MERGEABLE_FIELDS]
    changes: dict[str, Any] = {name: getattr(source, name) for name in take}
    codes = list(dict.fromkeys([*target.error_codes, *source.error_codes]))
    jobs = list(dict.fromkeys([*target.job_patterns, *source.job_patterns]))
    if codes != target.error_codes:
        changes["error_codes"] = codes
    if jobs != target.job_patterns:
        changes["job_patterns"] = jobs
    note = reason.strip()
    if changes:
        services.entry_update(acting_user=acting_user, entry=target,
                              reason=f"merged from {source.external_id}" + (f": {note}" if note else ""), **changes)
    services.entry_set_status(acting_user=acting_user, entry=source, status=EntryStatus.REJECTED,
                              reason=f"merged into {target.external_id}" + (f": {note}" if note else ""))
    audit_record(action=AuditAction.KB_ENTRY_MERGED, actor=acting_user, target_type="knowledge_entry",
                 target_id=source.external_id, target_label=source.title,
                 details={"into": target.external_id, "fields": sorted(changes), "reason": note, "review": item.pk})
    item.entry.refresh_from_db()
    _close(item, acting_user=acting_user, status=ReviewStatus.MERGED, reason=note, merged_into=target,
           resolution=f"merged into {target.external_id}")
    question = _learned_question(item)
    if question:
        transaction.on_commit(lambda: _verified_quietly(acting_user, target.pk, question), robust=True)
    return item


@transaction.atomic
def review_assign(*, acting_user: Any, items: Iterable[ReviewItem], assignee: Any) -> int:
    """Assigns open items to a reviewer (or unassigns them with assignee=None)."""
    _require_curator(acting_user)
    if assignee is not None and not has_role(assignee, KNOWLEDGE_CURATORS):
        raise ApplicationError(_("Items can only be assigned to reviewers or administrators."), code="not_a_reviewer")
    ids = [i.pk for i in items]
    count = ReviewItem.objects.filter(pk__in=ids, status=ReviewStatus.OPEN).update(assignee=assignee)
    audit_record(action=AuditAction.ADMIN_CHANGE, actor=acting_user, target_type="knowledge_review",
                 target_id=",".join(map(str, ids))[:255],
                 details={"assigned_to": assignee.get_username() if assignee else None, "items": ids[:200]})
    return count


def review_open_for(*, acting_user: Any, entry: KnowledgeEntry, kind: str = ReviewKind.SUBMITTED) -> ReviewItem:
    """Puts an entry in the queue by hand (or returns its open item)."""
    _require_curator(acting_user)
    item = ReviewItem.objects.filter(entry=entry, status=ReviewStatus.OPEN).first()
    return item or ReviewItem.objects.create(entry=entry, kind=kind)


# --- the unanswered queue -------------------------------------------------------------------------


@transaction.atomic
def unanswered_convert(*, acting_user: Any, question: UnansweredQuestion, symptom: str, solution: str,
                       title: str = "", cause: str = "", error_codes: Iterable[str] = (),
                       job_patterns: Iterable[str] = (), reason: str = "") -> ReviewItem:
    """Turns an unanswered question into an entry waiting in the review queue."""
    _require_curator(acting_user)
    question = UnansweredQuestion.objects.select_for_update().get(pk=question.pk)
    if question.status != UnansweredStatus.OPEN:
        raise ConflictError(_("This question has already been handled."), code="unanswered_handled")
    from knowledge.learning import _next_learned_id

    entry = services.entry_create(
        acting_user=acting_user, external_id=_next_learned_id(), symptom=symptom, solution=solution, title=title,
        cause=cause, error_codes=error_codes, job_patterns=job_patterns, source=EntrySource.LEARNED,
        status=EntryStatus.PENDING_REVIEW, reason=reason or f"from unanswered question {question.pk}",
    )
    item = ReviewItem.objects.create(entry=entry, kind=ReviewKind.LEARNED, conversation_id=question.conversation_id,
                                     provenance={"question": question.question, "unanswered": question.pk,
                                                 "times_asked": question.times_asked,
                                                 "conversation_id": str(question.conversation_id or "")})
    question.status = UnansweredStatus.CONVERTED
    question.entry = entry
    question.save(update_fields=["status", "entry"])
    return item


@transaction.atomic
def unanswered_dismiss(*, acting_user: Any, questions: Iterable[UnansweredQuestion], reason: str = "") -> int:
    _require_curator(acting_user)
    ids = [q.pk for q in questions]
    count = UnansweredQuestion.objects.filter(pk__in=ids, status=UnansweredStatus.OPEN).update(
        status=UnansweredStatus.DISMISSED)
    audit_record(action=AuditAction.ADMIN_CHANGE, actor=acting_user, target_type="knowledge_unanswered",
                 target_id=",".join(map(str, ids))[:255], details={"dismissed": ids[:200], "reason": reason})
    return count
