"""Knowledge entries, their exact-match keys, and import runs."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords


class EntryStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PENDING_REVIEW = "pending_review", _("Pending review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    RETIRED = "retired", _("Retired")


class EntrySource(models.TextChoices):
    IMPORT = "import", _("Import")
    LEARNED = "learned", _("Learned")
    MANUAL = "manual", _("Manual")


class Severity(models.TextChoices):
    HIGH = "high", _("High")
    MEDIUM = "medium", _("Medium")
    LOW = "low", _("Low")


class Language(models.TextChoices):
    PORTUGUESE = "pt", _("Portuguese")
    ENGLISH = "en", _("English")


class KnowledgeEntry(models.Model):
    external_id = models.CharField(_("ID"), max_length=64, unique=True)
    title = models.CharField(_("title"), max_length=300)
    symptom = models.TextField(_("symptom"))
    error_codes = models.JSONField(_("error codes"), default=list, blank=True)
    job_patterns = models.JSONField(_("jobs / job streams"), default=list, blank=True)
    workstations = models.JSONField(_("workstations"), default=list, blank=True)
    cause = models.TextField(_("cause"), blank=True)
    solution = models.TextField(_("solution"))
    category = models.CharField(_("category"), max_length=120, blank=True)
    severity = models.CharField(_("severity"), max_length=16, choices=Severity.choices, blank=True)
    owner_team = models.CharField(_("owner team"), max_length=150, blank=True)
    language = models.CharField(_("language"), max_length=2, choices=Language.choices, default=Language.PORTUGUESE)
    source = models.CharField(_("source"), max_length=16, choices=EntrySource.choices, default=EntrySource.MANUAL)
    status = models.CharField(
        _("status"), max_length=16, choices=EntryStatus.choices, default=EntryStatus.DRAFT, db_index=True
    )
    source_updated_on = models.DateField(_("updated in source on"), null=True, blank=True)
    revalidate_on = models.DateField(_("revalidate on"), null=True, blank=True)
    hit_count = models.PositiveIntegerField(_("hits"), default=0)
    helpful_count = models.PositiveIntegerField(_("helpful votes"), default=0)
    unhelpful_count = models.PositiveIntegerField(_("unhelpful votes"), default=0)
    last_hit_at = models.DateTimeField(_("last shown as an answer"), null=True, blank=True)
    # Hash of the imported fields: re-importing an unchanged row writes nothing.
    content_hash = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    history = HistoricalRecords(
        excluded_fields=["hit_count", "helpful_count", "unhelpful_count", "last_hit_at", "updated_at"]
    )

    class Meta:
        ordering = ["external_id"]
        verbose_name = _("knowledge entry")
        verbose_name_plural = _("knowledge entries")

    def __str__(self) -> str:
        return f"{self.external_id}: {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("kb-entry", kwargs={"external_id": self.external_id})


class EntryKey(models.Model):
    """One normalized error code or job name of an entry: the exact-lookup index, on any database."""

    class Kind(models.TextChoices):
        CODE = "code", _("Error code")
        JOB = "job", _("Job / job stream")
        WORKSTATION = "workstation", _("Workstation")

    entry = models.ForeignKey(KnowledgeEntry, on_delete=models.CASCADE, related_name="keys")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = models.CharField(max_length=128, db_index=True)
    is_pattern = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entry", "kind", "value"], name="kb_entry_key_unique")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class ImportStatus(models.TextChoices):
    VALIDATED = "validated", _("Validated (preview)")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class ImportRun(models.Model):
    """One workbook import: the preview, then the background write and indexing, with progress."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    file = models.FileField(upload_to="kb-imports/", max_length=255)
    file_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64)
    sheet = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.VALIDATED)
    only_valid = models.BooleanField(default=False)
    total_rows = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    processed = models.PositiveIntegerField(default=0)
    to_process = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    # Claims since the last start; the recovery sweep gives up after WORK_MAX_ATTEMPTS (resync_site/lib/work.py).
    attempts = models.PositiveSmallIntegerField(default=0)
    # Task messages sent again since the last start because no worker claimed the queued run (lost).
    resends = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The running worker's claim: its fencing token, node name and last sign of life (while queued:
    # when the task message was last sent).
    claim_id = models.UUIDField(null=True, blank=True, editable=False)
    claimed_by = models.CharField(max_length=255, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the rows (and the import's audit event) were committed: a later attempt only re-indexes.
    written_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("knowledge import")
        verbose_name_plural = _("knowledge imports")

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_status_display()})"

    @property
    def progress_percent(self) -> int:
        if self.status == ImportStatus.SUCCEEDED:
            return 100
        return int(100 * self.processed / self.to_process) if self.to_process else 0


# --- continuous learning, the AI auditor and the review queue (issue 7) ----------------------


class FindingType(models.TextChoices):
    DUPLICATE = "duplicate", _("Duplicate")
    NEAR_DUPLICATE = "near_duplicate", _("Near duplicate")
    CONTRADICTION = "contradiction", _("Contradiction")
    SECRET = "secret", _("Secret")
    DANGEROUS = "dangerous", _("Dangerous instruction without a warning")
    MISSING_ESSENTIALS = "missing_essentials", _("Missing essentials")
    STALE_REFERENCE = "stale_reference", _("Stale reference")
    THUMBS_DOWN = "thumbs_down", _("Repeated thumbs-down")
    NEVER_RETRIEVED = "never_retrieved", _("Never retrieved")


class FindingStatus(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Resolved")


SEVERITY_RANK = {Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1}


class Finding(models.Model):
    """One thing the AI auditor noticed about an entry. The auditor never changes the entry itself.

    A finding stays open while the auditor keeps seeing it (its `fingerprint` is unique among open
    findings, so the nightly sweep does not pile up copies) and is resolved when it no longer does
    or when a reviewer decides the entry's review.
    """

    type = models.CharField(_("type"), max_length=32, choices=FindingType.choices, db_index=True)
    severity = models.CharField(_("severity"), max_length=16, choices=Severity.choices)
    confidence = models.FloatField(_("confidence"))
    reason = models.TextField(_("reason"))
    entry = models.ForeignKey(KnowledgeEntry, on_delete=models.PROTECT, related_name="findings",
                              verbose_name=_("entry"))
    other_entry = models.ForeignKey(KnowledgeEntry, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+", verbose_name=_("other entry"))
    details = models.JSONField(default=dict, blank=True)
    fingerprint = models.CharField(max_length=64, editable=False)
    status = models.CharField(_("status"), max_length=16, choices=FindingStatus.choices, default=FindingStatus.OPEN,
                              db_index=True)
    created_at = models.DateTimeField(_("found at"), auto_now_add=True)
    last_seen_at = models.DateTimeField(_("last seen at"), auto_now_add=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolution = models.CharField(_("resolution"), max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("auditor finding")
        verbose_name_plural = _("auditor findings")
        constraints = [
            models.UniqueConstraint(fields=["fingerprint"], condition=models.Q(status="open"),
                                    name="kb_finding_open_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()}: {self.entry.external_id}"


class ReviewKind(models.TextChoices):
    LEARNED = "learned", _("Learned from a chat")
    FINDING = "finding", _("Flagged by the auditor")
    SUBMITTED = "submitted", _("Submitted for review")


class ReviewStatus(models.TextChoices):
    OPEN = "open", _("Open")
    APPROVED = "approved", _("Approved")
    MERGED = "merged", _("Merged")
    REJECTED = "rejected", _("Rejected")


class ReviewItem(models.Model):
    """An entry waiting for a reviewer's decision: a learned draft, or an entry the auditor flagged."""

    entry = models.ForeignKey(KnowledgeEntry, on_delete=models.PROTECT, related_name="reviews",
                              verbose_name=_("entry"))
    kind = models.CharField(_("kind"), max_length=16, choices=ReviewKind.choices)
    status = models.CharField(_("status"), max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.OPEN,
                              db_index=True)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="+", verbose_name=_("assignee"))
    similar_entry = models.ForeignKey(KnowledgeEntry, on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="+", verbose_name=_("most similar entry"))
    similarity = models.FloatField(_("similarity"), null=True, blank=True)
    # Where a learned draft came from: conversation, turns, job, log lines, operator, what fixed it.
    provenance = models.JSONField(_("provenance"), default=dict, blank=True)
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(_("queued at"), auto_now_add=True, db_index=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+", verbose_name=_("decided by"))
    decision_reason = models.TextField(_("reason"), blank=True)
    merged_into = models.ForeignKey(KnowledgeEntry, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+", verbose_name=_("merged into"))

    class Meta:
        ordering = ["created_at"]
        verbose_name = _("review item")
        verbose_name_plural = _("review queue")
        constraints = [
            models.UniqueConstraint(fields=["entry"], condition=models.Q(status="open"), name="kb_review_one_open"),
        ]

    def __str__(self) -> str:
        return f"{self.entry.external_id} ({self.get_kind_display()})"


class UnansweredReason(models.TextChoices):
    NO_CONFIDENT_RESULT = "no_answer", _("No confident result")
    THUMBS_DOWN = "thumbs_down", _("Thumbs-down")


class UnansweredStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CONVERTED = "converted", _("Turned into an entry")
    DISMISSED = "dismissed", _("Dismissed")


class UnansweredQuestion(models.Model):
    """A question the knowledge base could not answer; the same question asked again counts up."""

    question = models.TextField(_("question"))
    fingerprint = models.CharField(max_length=64, editable=False)
    reason = models.CharField(_("reason"), max_length=16, choices=UnansweredReason.choices)
    times_asked = models.PositiveIntegerField(_("times asked"), default=1)
    language = models.CharField(_("language"), max_length=8, blank=True)
    conversation_id = models.UUIDField(null=True, blank=True)
    turn_id = models.UUIDField(null=True, blank=True)
    asked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="+", verbose_name=_("asked by"))
    status = models.CharField(_("status"), max_length=16, choices=UnansweredStatus.choices,
                              default=UnansweredStatus.OPEN, db_index=True)
    entry = models.ForeignKey(KnowledgeEntry, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                              verbose_name=_("entry"))
    created_at = models.DateTimeField(_("first asked at"), auto_now_add=True)
    last_asked_at = models.DateTimeField(_("last asked at"), auto_now_add=True)

    class Meta:
        ordering = ["-last_asked_at"]
        verbose_name = _("unanswered question")
        verbose_name_plural = _("unanswered questions")
        constraints = [
            models.UniqueConstraint(fields=["fingerprint"], condition=models.Q(status="open"),
                                    name="kb_unanswered_open_unique"),
        ]

    def __str__(self) -> str:
        return self.question[:80]


class VerifiedAnswer(models.Model):
    """An approved question-and-answer pair: a matching question is answered by its entry directly."""

    question = models.TextField(_("question"))
    entry = models.ForeignKey(KnowledgeEntry, on_delete=models.PROTECT, related_name="verified_answers",
                              verbose_name=_("entry"))
    # The question's embedding, so matching needs no vector-store round trip (there are few of these).
    vector = models.JSONField(default=list, editable=False)
    model = models.CharField(max_length=120, editable=False)
    active = models.BooleanField(_("active"), default=True)
    hit_count = models.PositiveIntegerField(_("hits"), default=0)
    last_hit_at = models.DateTimeField(_("last hit at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")

    class Meta:
        ordering = ["-hit_count", "pk"]
        verbose_name = _("verified answer")
        verbose_name_plural = _("verified answers")

    def __str__(self) -> str:
        return f"{self.question[:60]} → {self.entry.external_id}"
