"""The append-only, hash-chained audit trail.

Each event's `hash` is SHA-256 over a canonical serialization of the event that includes the
previous event's hash, so changing, removing or reordering any row breaks every hash after it.
On PostgreSQL a trigger refuses UPDATE and DELETE (see migration 0002).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditAction(models.TextChoices):
    # accounts and roles
    SIGNIN = "auth.signin", _("Signed in")
    SIGNOUT = "auth.signout", _("Signed out")
    SIGNIN_FAILED = "auth.signin_failed", _("Sign-in failed")
    LOCKED_OUT = "auth.locked_out", _("Locked out")
    PASSWORD_CHANGED = "auth.password_changed", _("Password changed")
    OTP_ENROLLED = "auth.otp_enrolled", _("Second factor enrolled")
    OTP_BACKUP_CODES = "auth.otp_backup_codes", _("Backup codes generated")
    ROLE_CHANGED = "auth.role_changed", _("Roles changed")
    LANGUAGE_CHANGED = "auth.language_changed", _("Language changed")
    ADMIN_CHANGE = "admin.change", _("Admin change")
    # HWA and jobs
    JOB_ACTION = "job.action", _("Job action")
    JOB_ACTION_REFUSED = "job.action_refused", _("Job action refused")
    HWA_STATUS = "hwa.status", _("HWA connection state")
    # chat and agent
    AI_ANSWER = "chat.ai_answer", _("AI answer")
    ACTION_PROPOSED = "chat.action_proposed", _("Action proposed")
    ACTION_CONFIRMED = "chat.action_confirmed", _("Action confirmed")
    ACTION_APPROVED = "chat.action_approved", _("Action approved")
    ACTION_REJECTED = "chat.action_rejected", _("Action rejected")
    ACTION_EXPIRED = "chat.action_expired", _("Action expired")
    ACTION_FAILED = "chat.action_failed", _("Action failed")
    FEEDBACK = "chat.feedback", _("Answer feedback")
    CONVERSATION_RESOLVED = "chat.resolved", _("Conversation resolved")
    VALIDATION_REFUSED = "agent.validation_refused", _("Request refused by validation")
    AGENT_CHANGED = "agent.changed", _("Agent configuration changed")
    # knowledge
    KB_IMPORT = "kb.import", _("Knowledge import")
    KB_ENTRY_CREATED = "kb.entry_created", _("Knowledge entry created")
    KB_ENTRY_CHANGED = "kb.entry_changed", _("Knowledge entry changed")
    KB_ENTRY_APPROVED = "kb.entry_approved", _("Knowledge entry approved")
    KB_ENTRY_REJECTED = "kb.entry_rejected", _("Knowledge entry rejected")
    KB_ENTRY_MERGED = "kb.entry_merged", _("Knowledge entry merged")
    KB_ENTRY_RETIRED = "kb.entry_retired", _("Knowledge entry retired")
    KB_REINDEX = "kb.reindex", _("Knowledge index rebuilt")
    KB_FINDING = "kb.finding", _("Auditor finding")
    # compliance
    AUDIT_EXPORT = "audit.export", _("Audit export")
    AUDIT_REPORT = "audit.report", _("Audit report")
    AUDIT_ANCHOR = "audit.anchor", _("Chain anchored")
    AUDIT_ARCHIVE = "audit.archive", _("Events archived")
    AUDIT_VERIFY = "audit.verify", _("Chain verified")


class AuditOutcome(models.TextChoices):
    SUCCESS = "success", _("Success")
    FAILURE = "failure", _("Failure")
    REFUSED = "refused", _("Refused")
    PENDING = "pending", _("Pending")


class AuditEvent(models.Model):
    sequence = models.BigIntegerField(unique=True, editable=False)
    timestamp = models.DateTimeField(db_index=True, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    # Kept as text as well, so the event still names who acted after the user row is gone.
    actor_label = models.CharField(max_length=150)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=64, choices=AuditAction.choices)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=255, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=16, choices=AuditOutcome.choices, default=AuditOutcome.SUCCESS)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["sequence"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        # Every index is paid by each append while the chain head is locked: only the ones the
        # audit views filter by (no pattern-ops copies, none on low-cardinality columns).
        indexes = [
            models.Index(fields=["target_type", "target_id", "sequence"], name="audit_target_idx"),
            models.Index(fields=["action", "sequence"], name="audit_action_idx"),
            models.Index(fields=["request_id"], name="audit_request_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} by {self.actor_label}"


class AuditChainHead(models.Model):
    """A single row holding the newest sequence and hash: writers lock it to append in order."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    sequence = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_chain_head_single_row")]

    def __str__(self) -> str:
        return f"head #{self.sequence}"


class AuditExport(models.Model):
    """One export of a filtered selection of events: the file, its manifest and who may download it."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"
        JSONL = "jsonl", _("JSON lines")

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Running")
        DONE = "done", _("Ready")
        FAILED = "failed", _("Failed")

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    format = models.CharField(max_length=8, choices=Format.choices)
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    rows_total = models.BigIntegerField(null=True, blank=True)
    rows_done = models.BigIntegerField(default=0)
    file_name = models.CharField(max_length=255, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The running worker's claim (resync_site/lib/work.py): claims so far, fencing token, node name,
    # last sign of life (while waiting: when its task was last sent). The recovery sweep queues a
    # silent export again, up to WORK_MAX_ATTEMPTS, and sends a waiting one whose message was lost
    # again, up to WORK_MAX_RESENDS (`resends`).
    attempts = models.PositiveSmallIntegerField(default=0)
    resends = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    claim_id = models.UUIDField(null=True, blank=True, editable=False)
    claimed_by = models.CharField(max_length=255, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit export")
        verbose_name_plural = _("audit exports")

    def __str__(self) -> str:
        return f"export #{self.pk} ({self.format}, {self.status})"

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.rows_total:
            return 0
        return min(99, int(self.rows_done * 100 / self.rows_total))


class AuditReport(models.Model):
    """A PDF period report, kept so compliance officers can hand the same document to an auditor later."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Running")
        DONE = "done", _("Ready")
        FAILED = "failed", _("Failed")

    period_start = models.DateField()
    period_end = models.DateField(help_text=_("Inclusive."))
    language = models.CharField(max_length=8)  # one of settings.LANGUAGES (not choices: the list is settings)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    scheduled = models.BooleanField(default=False)
    figures = models.JSONField(default=dict, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit report")
        verbose_name_plural = _("audit reports")

    def __str__(self) -> str:
        return f"report {self.period_start}..{self.period_end} ({self.language})"


class AuditAnchor(models.Model):
    """The chain head at a moment, also appended to a file kept outside the database."""

    sequence = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    anchored_at = models.DateTimeField()
    file_name = models.CharField(max_length=255)

    class Meta:
        ordering = ["-anchored_at", "-id"]
        verbose_name = _("chain anchor")
        verbose_name_plural = _("chain anchors")

    def __str__(self) -> str:
        return f"anchor #{self.sequence} {self.hash[:12]}"


class AuditArchive(models.Model):
    """A stretch of the chain moved out of the online table into a compressed JSON-lines file."""

    first_sequence = models.BigIntegerField(unique=True)
    last_sequence = models.BigIntegerField(unique=True)
    prev_hash = models.CharField(max_length=64, help_text=_("The hash the first archived event links to."))
    last_hash = models.CharField(max_length=64)
    row_count = models.BigIntegerField()
    cutoff = models.DateTimeField()
    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    manifest = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["first_sequence"]
        verbose_name = _("audit archive")
        verbose_name_plural = _("audit archives")

    def __str__(self) -> str:
        return f"archive #{self.first_sequence}..#{self.last_sequence}"
