"""Reading the audit trail: chain verification (online and archived), filtered selections, report figures."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from audit.chain import GENESIS_HASH, ChainReport, file_sha256, iter_chunks, read_archive_rows, verify_rows
from audit.models import (
    AuditAction,
    AuditAnchor,
    AuditArchive,
    AuditChainHead,
    AuditEvent,
    AuditExport,
    AuditOutcome,
    AuditReport,
)
from resync_site.lib.errors import ForbiddenError, NotFoundError
from resync_site.roles import AUDIT_READERS, has_role


def archive_path(archive: AuditArchive) -> Path:
    return Path(settings.AUDIT_ARCHIVE_DIR) / archive.file_name


def _shifted(report: ChainReport, count_before: int) -> ChainReport:
    """A stretch's report restated for the whole chain (counts include the stretches before it)."""
    return ChainReport(report.ok, report.count + count_before, report.first_sequence, report.last_sequence,
                       report.last_hash, report.broken_sequence, report.reason)


def chain_verify(*, chunk_size: int = 10_000, read_archives: bool = True) -> ChainReport:
    """Verifies the whole chain: every archive in order, then the online events, then the head.

    Each archive must start exactly where the previous stretch ended (sequence and hash), and the
    online rows must continue from the last archive, so archiving leaves no unverified gap. With
    `read_archives=False` the archives' manifests stand in for their files (quick, for pages).
    The head check is what catches rows cut off the end of the table, which leave the rest of
    the chain internally consistent.
    """
    expected_first, prev_hash, archived = 1, GENESIS_HASH, 0
    for archive in AuditArchive.objects.order_by("first_sequence"):
        if archive.first_sequence != expected_first or archive.prev_hash != prev_hash:
            return ChainReport(False, archived, None, expected_first - 1, prev_hash, expected_first,
                               f"archive {archive.file_name} does not continue the chain at sequence {expected_first}")
        if read_archives:
            path = archive_path(archive)
            if not path.exists():
                return ChainReport(False, archived, None, expected_first - 1, prev_hash, archive.first_sequence,
                                   f"archive file {archive.file_name} is missing")
            if file_sha256(path) != archive.sha256:
                return ChainReport(False, archived, None, expected_first - 1, prev_hash, archive.first_sequence,
                                   f"archive file {archive.file_name} does not match its manifest's SHA-256")
            stretch = verify_rows(read_archive_rows(path), expected_prev_hash=prev_hash, expected_first=expected_first)
            if not stretch.ok:
                return _shifted(stretch, archived)
            if stretch.last_sequence != archive.last_sequence or stretch.last_hash != archive.last_hash:
                return ChainReport(False, archived + stretch.count, None, stretch.last_sequence, stretch.last_hash,
                                   (stretch.last_sequence or 0) + 1,
                                   f"archive file {archive.file_name} ends before its manifest says")
        archived += archive.row_count
        expected_first, prev_hash = archive.last_sequence + 1, archive.last_hash

    online = verify_rows(iter_chunks(AuditEvent.objects.all(), chunk_size=chunk_size),
                         expected_prev_hash=prev_hash, expected_first=expected_first)
    report = _shifted(online, archived)
    if not report.ok:
        return report
    last_sequence = report.last_sequence if report.last_sequence is not None else expected_first - 1
    head = AuditChainHead.objects.filter(pk=1).first()
    head_sequence, head_hash = (head.sequence, head.hash) if head else (0, GENESIS_HASH)
    if head_sequence != last_sequence or head_hash != report.last_hash:
        return ChainReport(
            False,
            report.count,
            report.first_sequence,
            last_sequence,
            report.last_hash,
            last_sequence + 1,
            f"the chain head records sequence {head_sequence} but the table ends at {last_sequence}",
        )
    first_sequence = 1 if archived else report.first_sequence
    return ChainReport(True, report.count, first_sequence, last_sequence or None, report.last_hash)


# --- Anchors -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorReport:
    ok: bool
    checked: int
    broken_sequence: int | None = None
    reason: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"anchors OK ({self.checked} checked)"
        return f"ANCHOR MISMATCH at sequence {self.broken_sequence}: {self.reason}"


def anchor_file_path() -> Path:
    return Path(settings.AUDIT_ANCHOR_DIR) / "anchors.jsonl"


def anchors_read() -> list[dict[str, Any]]:
    """Anchors from the file kept outside the database; unreadable lines are reported, not skipped."""
    path = anchor_file_path()
    if not path.exists():
        return []
    anchors = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    anchors.append(json.loads(line))
                except ValueError:
                    anchors.append({"sequence": None, "hash": "", "line": number})
    return anchors


def chain_hashes_at(sequences: set[int]) -> dict[int, str]:
    """The chain's hash at each sequence, online or archived."""
    found: dict[int, str] = {}
    ordered = sorted(sequences)
    for start in range(0, len(ordered), 1000):
        batch = ordered[start:start + 1000]
        found.update(AuditEvent.objects.filter(sequence__in=batch).values_list("sequence", "hash"))
    missing = sequences - found.keys()
    for archive in AuditArchive.objects.order_by("first_sequence"):
        wanted = {s for s in missing if archive.first_sequence <= s <= archive.last_sequence}
        if not wanted:
            continue
        if wanted == {archive.last_sequence}:
            found[archive.last_sequence] = archive.last_hash
            continue
        path = archive_path(archive)
        if path.exists():
            for row in read_archive_rows(path):
                if row[0] in wanted:
                    found[row[0]] = row[-1]
    return found


def anchors_verify() -> AnchorReport:
    """Checks every anchor (file and table) against the chain: a rewritten table fails here.

    A consistent rewrite of the whole table passes `chain_verify`, but cannot reproduce the
    hashes written to the anchor file on earlier days.
    """
    file_anchors = anchors_read()
    for anchor in file_anchors:
        if anchor.get("sequence") is None:
            return AnchorReport(False, 0, None, f"line {anchor.get('line')} of the anchor file is unreadable")
    table_anchors = [{"sequence": s, "hash": h} for s, h in AuditAnchor.objects.values_list("sequence", "hash")]
    expected: dict[int, str] = {}
    for anchor in file_anchors + table_anchors:
        sequence, value = int(anchor["sequence"]), str(anchor["hash"])
        if sequence in expected and expected[sequence] != value:
            return AnchorReport(False, 0, sequence, "the anchor file and the anchor table disagree")
        expected[sequence] = value
    expected.pop(0, None)  # an anchor of the empty chain says nothing about any event
    actual = chain_hashes_at(set(expected))
    for checked, sequence in enumerate(sorted(expected)):
        if sequence not in actual:
            return AnchorReport(False, checked, sequence, "the anchored event is no longer in the chain")
        if actual[sequence] != expected[sequence]:
            return AnchorReport(False, checked, sequence, "the event's hash differs from the anchored hash: the table was rewritten")
    return AnchorReport(True, len(expected))


# --- Browsing and exports ------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilters:
    """What a compliance officer narrowed the trail to; also stored in each export's manifest."""

    date_from: date | None = None
    date_to: date | None = None
    actor: str = ""
    action: str = ""
    target_type: str = ""
    target_id: str = ""
    outcome: str = ""
    q: str = ""
    # Set when an export is requested: the export is the trail as it stood then, however late it runs.
    sequence_max: int | None = None

    def as_dict(self) -> dict[str, str]:
        return {key: value.isoformat() if isinstance(value, date) else value
                for key, value in asdict(self).items() if value not in (None, "")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventFilters:
        values: dict[str, Any] = {}
        for field in fields(cls):
            value = data.get(field.name)
            if value in (None, ""):
                continue
            if field.name in ("date_from", "date_to") and not isinstance(value, date):
                value = date.fromisoformat(str(value))
            elif field.name == "sequence_max":
                value = int(value)
            values[field.name] = value if isinstance(value, date | int) else str(value).strip()
        return cls(**values)


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def events_filtered(filters: EventFilters) -> QuerySet[AuditEvent]:
    queryset = AuditEvent.objects.all()
    if filters.date_from:
        queryset = queryset.filter(timestamp__gte=_day_start(filters.date_from))
    if filters.date_to:
        queryset = queryset.filter(timestamp__lt=_day_start(filters.date_to + timedelta(days=1)))
    if filters.actor:
        queryset = queryset.filter(actor_label__iexact=filters.actor)
    if filters.action:
        queryset = queryset.filter(action=filters.action)
    if filters.target_type:
        queryset = queryset.filter(target_type=filters.target_type)
    if filters.target_id:
        queryset = queryset.filter(target_id=filters.target_id)
    if filters.outcome:
        queryset = queryset.filter(outcome=filters.outcome)
    if filters.sequence_max is not None:
        queryset = queryset.filter(sequence__lte=filters.sequence_max)
    if filters.q:
        # The JSON as text: matches keys and values anywhere in the details, accents included.
        queryset = queryset.alias(details_text=Cast("details", TextField())).filter(
            Q(details_text__icontains=filters.q) | Q(target_label__icontains=filters.q)
        )
    return queryset


def _require_reader(user: Any) -> None:
    if not has_role(user, AUDIT_READERS):
        raise ForbiddenError("Only compliance officers and administrators may read the audit trail.")


def event_list(*, user: Any, filters: EventFilters, before: int | None = None, limit: int = 50) -> list[AuditEvent]:
    """The newest matching events, a page at a time by sequence (no COUNT over a large table)."""
    _require_reader(user)
    queryset = events_filtered(filters).order_by("-sequence")
    if before is not None:
        queryset = queryset.filter(sequence__lt=before)
    return list(queryset[:limit])


def event_get(*, user: Any, sequence: int) -> AuditEvent:
    _require_reader(user)
    event = AuditEvent.objects.filter(sequence=sequence).first()
    if event is None:
        raise NotFoundError("No such audit event (it may have been archived).")
    return event


def export_list(*, user: Any) -> QuerySet[AuditExport]:
    """A person's own exports: nobody else's files are listed or downloadable."""
    _require_reader(user)
    return AuditExport.objects.filter(requested_by=user)


def export_get(*, user: Any, export_id: int) -> AuditExport:
    _require_reader(user)
    export = AuditExport.objects.filter(pk=export_id, requested_by=user).first()
    if export is None:
        raise NotFoundError("No such export among yours.")
    return export


def report_list(*, user: Any) -> QuerySet[AuditReport]:
    _require_reader(user)
    return AuditReport.objects.select_related("requested_by")


def report_get(*, user: Any, report_id: int) -> AuditReport:
    _require_reader(user)
    report = AuditReport.objects.filter(pk=report_id).first()
    if report is None:
        raise NotFoundError("No such report.")
    return report


def export_file_path(export: AuditExport) -> Path:
    return Path(settings.AUDIT_EXPORT_DIR) / export.file_name


def report_file_path(report: AuditReport) -> Path:
    return Path(settings.AUDIT_EXPORT_DIR) / "reports" / report.file_name


# --- Period report figures -----------------------------------------------------------------------


def _by_sequence(queryset: QuerySet[AuditEvent]) -> Iterator[AuditEvent]:
    return queryset.order_by("sequence").iterator(chunk_size=2000)


def report_figures(*, period_start: date, period_end: date) -> dict[str, Any]:
    """Every number the period report shows, JSON-ready (stored with the report)."""
    events = events_filtered(EventFilters(date_from=period_start, date_to=period_end))
    labels = dict(AuditAction.choices)
    by_action = [
        {"action": row["action"], "label": str(labels.get(row["action"], row["action"])), "count": row["n"]}
        for row in events.values("action").annotate(n=Count("id")).order_by("-n", "action")
    ]
    by_user = [
        {"actor": row["actor_label"], "count": row["n"]}
        for row in events.values("actor_label").annotate(n=Count("id")).order_by("-n", "actor_label")
    ]

    # High-risk actions: the operator's confirmation and the supervisor's approval, joined by proposal.
    proposals: dict[str, dict[str, Any]] = defaultdict(lambda: {"confirmed_by": "", "approved_by": "", "target": ""})
    for event in _by_sequence(events.filter(action__in=[AuditAction.ACTION_CONFIRMED, AuditAction.ACTION_APPROVED],
                                            details__high_risk=True)):
        proposal_id = str(event.details.get("proposal_id") or event.target_id or event.sequence)
        entry = proposals[proposal_id]
        entry["proposal_id"] = proposal_id
        entry["target"] = entry["target"] or event.target_label or event.target_id
        entry["when"] = timezone.localtime(event.timestamp).strftime("%Y-%m-%d %H:%M")
        key = "confirmed_by" if event.action == AuditAction.ACTION_CONFIRMED else "approved_by"
        entry[key] = event.actor_label
    high_risk = sorted(proposals.values(), key=lambda item: item["when"])

    failed = events.filter(action=AuditAction.SIGNIN_FAILED)
    failed_by_user = failed.values("target_label").annotate(n=Count("id")).order_by("-n", "target_label")[:20]

    answers = events.filter(action=AuditAction.AI_ANSWER)
    answers_total = answers.count()
    answers_cited = answers.filter(details__has_key="sources").exclude(details__sources=[]).exclude(
        details__sources=None).count()

    kb_approved = events.filter(action=AuditAction.KB_ENTRY_APPROVED).count()
    kb_rejected = events.filter(action=AuditAction.KB_ENTRY_REJECTED).count()

    chain = chain_verify()
    anchors = anchors_verify()
    return {
        "period_start": period_start.isoformat(),
        "period_end": period_end.isoformat(),
        "events_total": events.count(),
        "by_action": by_action,
        "by_user": by_user,
        "high_risk": high_risk,
        "high_risk_missing_approver": sum(1 for item in high_risk if not (item["confirmed_by"] and item["approved_by"])),
        "failed_signins": failed.count(),
        "failed_signins_by_user": [{"username": row["target_label"] or "?", "count": row["n"]} for row in failed_by_user],
        "lockouts": events.filter(action=AuditAction.LOCKED_OUT).count(),
        "refused": events.filter(outcome=AuditOutcome.REFUSED).count(),
        "ai_answers": answers_total,
        "ai_answers_cited": answers_cited,
        "ai_answers_cited_share": round(answers_cited * 100 / answers_total, 1) if answers_total else None,
        "kb_approved": kb_approved,
        "kb_rejected": kb_rejected,
        "chain_ok": chain.ok,
        "chain_result": str(chain),
        "anchors_ok": anchors.ok,
        "anchors_result": str(anchors),
        "generated_at": timezone.now().isoformat(timespec="seconds"),
    }
