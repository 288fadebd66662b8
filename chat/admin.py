"""Read-only admin views of conversations and action proposals (changes go through services)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from chat.agent.manager import agent_save
from chat.models import ActionProposal, Agent, AgentPromptVersion, Conversation, Feedback
from resync_site.roles import Role, has_role


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ("title", "user", "turn_count", "updated_at", "resolved_at")
    list_select_related = ("user",)
    search_fields = ("title", "user__username")
    date_hierarchy = "updated_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).annotate(turn_count=Count("turns"))

    @admin.display(description="turns", ordering="turn_count")
    def turn_count(self, obj: Any) -> int:
        return obj.turn_count


@admin.register(ActionProposal)
class ActionProposalAdmin(ReadOnlyAdmin):
    list_display = ("action", "job_names", "status", "high_risk", "proposed_by", "decided_by", "created_at", "expires_at")
    list_filter = ("status", "action", "high_risk")
    list_select_related = ("proposed_by", "decided_by")
    date_hierarchy = "created_at"

    @admin.display(description="jobs")
    def job_names(self, obj: ActionProposal) -> str:
        return ", ".join(job.get("name", "?") for job in obj.jobs[:5]) + (" …" if len(obj.jobs) > 5 else "")


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ("rating", "reason", "user", "message", "created_at")
    list_filter = ("rating",)
    list_select_related = ("user", "message")


# --- agents (issue 10) ----------------------------------------------------------------------------


def _is_admin(request: HttpRequest) -> bool:
    return has_role(request.user, (Role.ADMIN,))


class AgentPromptVersionInline(admin.TabularInline):
    model = AgentPromptVersion
    fields = ("number", "created_by", "created_at", "prompt_pt", "prompt_en")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    """Admins manage agents here; every save goes through `agent_save` (audited, prompt versioned)."""

    list_display = ("name", "slug", "enabled", "is_default", "version", "turns", "errors", "avg_latency_ms", "tokens",
                    "thumbs_up", "thumbs_down")
    list_filter = ("enabled",)
    list_select_related = ("current_version",)
    readonly_fields = ("version",)
    inlines = [AgentPromptVersionInline]
    fieldsets = (
        (None, {"fields": ("name", "slug", "purpose", "name_pt", "purpose_pt", "enabled", "is_default", "intents", "tools",
                           "version")}),
        (_("Model and budgets"), {"fields": ("model", "fallback_model", "temperature", "max_steps", "token_budget",
                                             "time_budget_seconds")}),
        (_("System prompt"), {"fields": ("prompt_pt", "prompt_en")}),
    )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_admin(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_admin(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_admin(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # answers point to agents and their versions: disable instead

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        from chat.selectors import agents_with_metrics

        return agents_with_metrics(super().get_queryset(request))

    def save_model(self, request: HttpRequest, obj: Agent, form: Any, change: bool) -> None:
        agent_save(acting_user=request.user, agent=obj)

    @admin.display(description=_("prompt version"))
    def version(self, obj: Agent) -> str:
        return obj.current_version.label if obj.current_version_id else "-"

    @admin.display(description=_("turns"), ordering="m_turns")
    def turns(self, obj: Any) -> int:
        return obj.m_turns

    @admin.display(description=_("errors"), ordering="m_errors")
    def errors(self, obj: Any) -> int:
        return obj.m_errors

    @admin.display(description=_("avg latency (ms)"))
    def avg_latency_ms(self, obj: Any) -> int | None:
        return int(obj.m_latency.total_seconds() * 1000) if obj.m_latency else None

    @admin.display(description=_("tokens"), ordering="m_tokens")
    def tokens(self, obj: Any) -> int:
        return obj.m_tokens or 0

    @admin.display(description="👍")
    def thumbs_up(self, obj: Any) -> int:
        return obj.m_up

    @admin.display(description="👎")
    def thumbs_down(self, obj: Any) -> int:
        return obj.m_down
