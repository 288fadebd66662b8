"""Conversations with the agent, and everything an answer or an action leaves behind.

A `Turn` is one question and its answer; every event it streamed is kept as a `ChatEvent`, so a
client that reconnects replays what it missed from here. Tool calls, citations and feedback are
stored for the review queue and the audit; `ActionProposal` carries the confirmation and four-eyes
state machine of actions proposed in chat.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(_("title"), max_length=200, blank=True)
    language = models.CharField(_("language"), max_length=8, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The agent the operator picked in the chat for this conversation (null: the router picks each
    # turn). Kept so that a reload shows the same choice; each message frame says it again.
    agent = models.ForeignKey("Agent", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                              verbose_name=_("pinned agent"))

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["user", "-updated_at"], name="chat_conv_user_idx")]
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")

    def __str__(self) -> str:
        return self.title or str(self.id)

    @property
    def group_name(self) -> str:
        return conversation_group(self.id)


def conversation_group(conversation_id: uuid.UUID | str) -> str:
    """The channel-layer group a conversation's events go to (every open socket on it listens)."""
    return f"chat.c.{uuid.UUID(str(conversation_id)).hex}"


class Agent(models.Model):
    """A specialized agent: configuration managed by admins in the Django admin (changes through
    `agent_save`, which audits them and versions the prompt). The router picks one per turn."""

    slug = models.SlugField(_("identifier"), max_length=24, unique=True)
    name = models.CharField(_("name"), max_length=100)
    purpose = models.TextField(_("purpose"), blank=True)
    # What Portuguese-speaking operators read in the chat's agent picker (empty: the name and purpose above).
    name_pt = models.CharField(_("name (Portuguese)"), max_length=100, blank=True)
    purpose_pt = models.TextField(_("purpose (Portuguese)"), blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    # Intents (chat.agent.intents.Intent values) the router sends here; the default agent takes the rest.
    intents = models.JSONField(_("intents"), default=list, blank=True)
    is_default = models.BooleanField(_("default agent"), default=False)
    tools = models.JSONField(_("tools"), default=list, blank=True, help_text=_("Tool names this agent may call."))
    model = models.CharField(_("model"), max_length=200, blank=True, help_text=_("A litellm model string; empty uses LLM_MODEL."))
    fallback_model = models.CharField(_("fallback model"), max_length=200, blank=True)
    temperature = models.FloatField(_("temperature"), default=0.1)
    max_steps = models.PositiveSmallIntegerField(_("maximum tool steps"), default=6)
    token_budget = models.PositiveIntegerField(_("token budget"), default=12000)
    time_budget_seconds = models.PositiveIntegerField(_("time budget (seconds)"), default=60)
    prompt_pt = models.TextField(_("system prompt (Portuguese)"))
    prompt_en = models.TextField(_("system prompt (English)"))
    current_version = models.ForeignKey("AgentPromptVersion", on_delete=models.PROTECT, null=True, blank=True,
                                        related_name="+", editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = _("agent")
        verbose_name_plural = _("agents")

    def __str__(self) -> str:
        return self.name

    def display_name(self, language: str) -> str:
        return (self.name_pt if language.startswith("pt") else "") or self.name

    def display_purpose(self, language: str) -> str:
        return (self.purpose_pt if language.startswith("pt") else "") or self.purpose


class AgentPromptVersion(models.Model):
    """An immutable copy of an agent's prompts; every answer points to the one it used."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    prompt_pt = models.TextField()
    prompt_en = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["agent", "-number"]
        constraints = [models.UniqueConstraint(fields=["agent", "number"], name="chat_agent_prompt_version_unique")]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"{self.agent.slug}@{self.number}"


class TurnStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    STOPPED = "stopped", _("Stopped")
    FAILED = "failed", _("Failed")


ACTIVE_TURN_STATUSES = (TurnStatus.QUEUED, TurnStatus.RUNNING)


class Turn(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    question = models.TextField()
    status = models.CharField(max_length=16, choices=TurnStatus.choices, default=TurnStatus.QUEUED)
    stop_requested = models.BooleanField(default=False)
    model = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=8, blank=True)
    prompt_version = models.CharField(max_length=32, blank=True)
    fallback_reason = models.CharField(max_length=200, blank=True)
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="turns")
    agent_version = models.ForeignKey(AgentPromptVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="turns")
    # The operator chose the agent in the chat (router skipped unless that agent is disabled).
    agent_pinned = models.BooleanField(default=False)
    tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # One turn at a time per conversation, enforced where no race can get around it.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=models.Q(status__in=["queued", "running"]),
                name="chat_one_active_turn_per_conversation",
            )
        ]

    def __str__(self) -> str:
        return f"turn {self.id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_TURN_STATUSES


class MessageRole(models.TextChoices):
    USER = "user", _("User")
    ASSISTANT = "assistant", _("Assistant")


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    content = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class ToolCall(models.Model):
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="tool_calls")
    step = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(max_length=64)
    arguments = models.JSONField(default=dict)
    result = models.JSONField(default=dict, blank=True)
    summary = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name}({self.arguments})"


class CitationKind(models.TextChoices):
    KB = "kb", _("Knowledge entry")
    JOBLOG = "joblog", _("Job log")
    PLAN = "plan", _("Plan object")


class Citation(models.Model):
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="citations")
    kind = models.CharField(max_length=16, choices=CitationKind.choices)
    ref = models.CharField(max_length=200)
    title = models.CharField(max_length=300, blank=True)
    url = models.CharField(max_length=500, blank=True)
    line_start = models.PositiveIntegerField(null=True, blank=True)
    line_end = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}"


class ChatEvent(models.Model):
    """Every server → client event, kept so a reconnecting client can replay what it missed.

    `id` is the replay cursor: a client says "after N" and gets the conversation's later events.
    Token deltas are stored coalesced (one row per burst, carrying its character offset).
    """

    id = models.BigAutoField(primary_key=True)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="events")
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, null=True, blank=True, related_name="events")
    type = models.CharField(max_length=32)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["conversation", "id"], name="chat_event_replay_idx")]

    def __str__(self) -> str:
        return f"#{self.id} {self.type}"


class FeedbackRating(models.TextChoices):
    UP = "up", _("Helpful")
    DOWN = "down", _("Not helpful")


class Feedback(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rating = models.CharField(max_length=8, choices=FeedbackRating.choices)
    reason = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "user"], name="chat_feedback_once_per_user")]

    def __str__(self) -> str:
        return f"{self.rating} on {self.message_id}"


class ProposalAction(models.TextChoices):
    RERUN = "rerun", _("Rerun")
    HOLD = "hold", _("Hold")
    RELEASE = "release", _("Release")
    CANCEL = "cancel", _("Cancel")
    KILL = "kill", _("Kill")
    CONFIRM_SUCC = "confirm_succ", _("Confirm as successful")
    CONFIRM_ABEND = "confirm_abend", _("Confirm as abended")


class ProposalStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for confirmation")
    AWAITING_APPROVAL = "awaiting_approval", _("Waiting for a supervisor")
    EXECUTING = "executing", _("Executing")
    EXECUTED = "executed", _("Executed")
    FAILED = "failed", _("Failed")
    REJECTED = "rejected", _("Rejected")
    EXPIRED = "expired", _("Expired")


OPEN_PROPOSAL_STATUSES = (ProposalStatus.PENDING, ProposalStatus.AWAITING_APPROVAL)


class ActionProposal(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="proposals")
    turn = models.ForeignKey(Turn, on_delete=models.SET_NULL, null=True, blank=True, related_name="proposals")
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=16, choices=ProposalAction.choices)
    # [{"id": ..., "name": ..., "stream": ..., "workstation": ..., "status": ..., "critical": bool}]
    jobs = models.JSONField(default=list)
    impact = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    high_risk = models.BooleanField(default=False)
    status = models.CharField(max_length=24, choices=ProposalStatus.choices, default=ProposalStatus.PENDING)
    justification = models.TextField(blank=True)
    ticket = models.CharField(max_length=64, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    # When a worker took the confirmed proposal to carry it out: set once, before anything is sent
    # to HWA, so a second delivery of its task never runs the action again.
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"], name="chat_proposal_open_idx")]
        verbose_name = _("action proposal")
        verbose_name_plural = _("action proposals")

    def __str__(self) -> str:
        names = ", ".join(job.get("name", "?") for job in self.jobs[:3])
        return f"{self.action} {names} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_PROPOSAL_STATUSES

    @property
    def is_expired(self) -> bool:
        return self.is_open and self.expires_at <= timezone.now()
