"""The agent manager: lifecycle of the specialized agents (admin edits, audited and versioned) and
what a turn needs from the agent that answers it (prompt, tools, model, budgets, version label)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from chat.models import Agent, AgentPromptVersion
from resync_site.lib.errors import ForbiddenError
from resync_site.roles import Role, has_role

AUDITED_FIELDS = ("name", "purpose", "name_pt", "purpose_pt", "enabled", "intents", "is_default", "tools", "model", "fallback_model", "temperature",
                  "max_steps", "token_budget", "time_budget_seconds", "prompt_pt", "prompt_en")
# Fallback when no agent is enabled at all: the built-in prompt, every tool.
NO_AGENT_VERSION = "builtin"


@dataclass(frozen=True)
class AgentRun:
    """One turn's view of its agent: plain values, read once when the turn starts."""

    agent_id: int | None
    slug: str
    version_id: int | None
    version_label: str
    prompt_pt: str
    prompt_en: str
    tools: frozenset[str] | None
    model: str
    fallback_model: str
    temperature: float | None
    max_steps: int
    token_budget: int
    time_budget_seconds: float

    def prompt(self, language: str) -> str:
        return self.prompt_en if language == "en" else self.prompt_pt


def agent_run_config(agent: Agent | None) -> AgentRun:
    if agent is None:
        from chat.agent.llm import PROMPT_VERSION, SYSTEM_PROMPT

        return AgentRun(agent_id=None, slug="", version_id=None, version_label=PROMPT_VERSION, prompt_pt=SYSTEM_PROMPT,
                        prompt_en=SYSTEM_PROMPT, tools=None, model=settings.LLM_MODEL, fallback_model="", temperature=None,
                        max_steps=getattr(settings, "LLM_MAX_STEPS", 6), token_budget=getattr(settings, "LLM_TOKEN_BUDGET", 12000),
                        time_budget_seconds=getattr(settings, "LLM_TURN_BUDGET_SECONDS", 60.0))
    version = agent.current_version
    return AgentRun(
        agent_id=agent.pk, slug=agent.slug, version_id=version.pk if version else None,
        version_label=f"{agent.slug}@{version.number}" if version else agent.slug,
        prompt_pt=version.prompt_pt if version else agent.prompt_pt, prompt_en=version.prompt_en if version else agent.prompt_en,
        tools=frozenset(agent.tools or ()), model=agent.model or settings.LLM_MODEL, fallback_model=agent.fallback_model,
        temperature=agent.temperature, max_steps=agent.max_steps, token_budget=agent.token_budget,
        time_budget_seconds=float(agent.time_budget_seconds),
    )


def _snapshot(agent: Agent) -> dict[str, Any]:
    return {k: v for k, v in model_to_dict(agent, fields=AUDITED_FIELDS).items()}


def agent_save(*, acting_user: Any, agent: Agent) -> Agent:
    """Saves an agent's configuration (new or edited): a changed prompt makes a new version (old answers
    keep theirs); every change is audited with what changed, enabling and disabling included."""
    if not has_role(acting_user, (Role.ADMIN,)):
        raise ForbiddenError("Only administrators can manage agents.")
    from chat.agent.tools import REGISTRY

    unknown = sorted(set(agent.tools or ()) - set(REGISTRY))
    if unknown:
        from resync_site.lib.errors import ApplicationError

        raise ApplicationError(f"Unknown tools: {', '.join(unknown)}.", code="unknown_tool")
    with transaction.atomic():
        before = _snapshot(Agent.objects.get(pk=agent.pk)) if agent.pk else {}
        agent.updated_at = timezone.now()
        agent.save()
        current = agent.current_version
        if current is None or (current.prompt_pt, current.prompt_en) != (agent.prompt_pt, agent.prompt_en):
            number = (current.number if current else 0) + 1
            agent.current_version = AgentPromptVersion.objects.create(
                agent=agent, number=number, prompt_pt=agent.prompt_pt, prompt_en=agent.prompt_en, created_by=acting_user)
            agent.save(update_fields=["current_version"])
        after = _snapshot(agent)
        changes = {k: {"from": before.get(k), "to": after[k]} for k in after if before.get(k) != after[k]}
        for key in ("prompt_pt", "prompt_en"):
            if key in changes:  # prompts are long: the versions keep them, the audit says which changed
                changes[key] = {"changed": True}
        verb = "created" if not before else ("enabled" if changes.get("enabled", {}).get("to") is True else
                                             "disabled" if changes.get("enabled", {}).get("to") is False else "edited")
        audit_record(action=AuditAction.AGENT_CHANGED, actor=acting_user, target_type="chat.agent", target_id=agent.slug,
                     target_label=agent.name[:255],
                     details={"change": verb, "changes": changes, "prompt_version": agent.current_version.label})
    return agent
