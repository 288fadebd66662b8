"""Reads of the knowledge base."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from knowledge.models import (
    EntryStatus,
    Finding,
    FindingStatus,
    FindingType,
    ImportRun,
    KnowledgeEntry,
    ReviewItem,
    ReviewStatus,
    UnansweredQuestion,
    UnansweredStatus,
)
from resync_site.health import CheckResult
from resync_site.lib.errors import NotFoundError
from resync_site.roles import KNOWLEDGE_CURATORS, has_role


def check_vector_store() -> CheckResult:
    from knowledge.vectorstore import get_client

    mode = "server" if settings.QDRANT_URL else "local"
    try:
        collections = get_client().get_collections().collections
    except Exception as exc:  # any failure to reach the store is what this check reports
        return CheckResult("qdrant", ok=False, required=True, detail=f"{mode}: {type(exc).__name__}: {exc}")
    return CheckResult("qdrant", ok=True, required=True, detail=f"{mode}, {len(collections)} collections")


def entry_get_for_user(*, user: Any, external_id: str) -> KnowledgeEntry:
    """An entry this person may read: readers see approved entries, curators see every status."""
    entries = KnowledgeEntry.objects.all()
    if not has_role(user, KNOWLEDGE_CURATORS):
        entries = entries.filter(status=EntryStatus.APPROVED)
    entry = entries.filter(external_id=external_id).first()
    if entry is None:
        raise NotFoundError(_("No knowledge entry %(id)s.") % {"id": external_id})
    return entry


def import_run_get(*, run_id: Any) -> ImportRun:
    run = ImportRun.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFoundError(_("No such import."))
    return run


# --- the review queue, findings and their metrics (issue 7) ------------------------------------


def review_item_for(*, user: Any, item_id: Any) -> ReviewItem:
    """A review item for a curator (others get "not found", never a hint that it exists)."""
    item = None
    if has_role(user, KNOWLEDGE_CURATORS):
        item = (ReviewItem.objects.select_related("entry", "similar_entry", "assignee", "decided_by", "merged_into")
                .filter(pk=item_id).first() if str(item_id).isdigit() else None)
    if item is None:
        raise NotFoundError(_("No such review item."))
    return item


def open_findings_for(entry: KnowledgeEntry) -> list[Finding]:
    return list(Finding.objects.filter(Q(entry=entry) | Q(other_entry=entry), status=FindingStatus.OPEN)
                .select_related("entry", "other_entry").order_by("-created_at"))


@dataclass(frozen=True)
class ReviewMetrics:
    queue_size: int
    oldest_age_seconds: float
    reviewed_30d: int
    approved_30d: int
    median_review_seconds: float | None
    approval_rate: float | None
    findings_open: dict[str, int]
    unanswered_open: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def review_metrics(*, now: dt.datetime | None = None) -> ReviewMetrics:
    """Queue size, oldest item's age, time to review and approval rate (last 30 days), findings by type."""
    now = now or timezone.now()
    open_items = ReviewItem.objects.filter(status=ReviewStatus.OPEN)
    oldest = open_items.aggregate(oldest=Min("created_at"))["oldest"]
    decided = ReviewItem.objects.exclude(status=ReviewStatus.OPEN).filter(decided_at__gte=now - dt.timedelta(days=30))
    durations = sorted((d - c).total_seconds() for c, d in decided.values_list("created_at", "decided_at")[:10_000])
    approved = decided.filter(status__in=[ReviewStatus.APPROVED, ReviewStatus.MERGED]).count()
    findings = dict(Finding.objects.filter(status=FindingStatus.OPEN).values_list("type").annotate(n=Count("id"))
                    .values_list("type", "n"))
    return ReviewMetrics(
        queue_size=open_items.count(),
        oldest_age_seconds=(now - oldest).total_seconds() if oldest else 0.0,
        reviewed_30d=len(durations),
        approved_30d=approved,
        median_review_seconds=durations[len(durations) // 2] if durations else None,
        approval_rate=approved / len(durations) if durations else None,
        findings_open={t.value: findings.get(t.value, 0) for t in FindingType},
        unanswered_open=UnansweredQuestion.objects.filter(status=UnansweredStatus.OPEN).count(),
    )
