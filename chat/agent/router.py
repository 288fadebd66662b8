"""Which agent answers a turn: from the question's intent (no LLM), or the one the operator pinned.

A disabled agent is never chosen, pinned or not: a pin on a disabled agent falls back to routing.
"""

from __future__ import annotations

import re
from typing import Any

from chat.agent import tracing
from chat.agent.intents import Recognized
from chat.models import Agent
from resync_site.lib.errors import ApplicationError
from resync_site.roles import has_role

_MENTION = re.compile(r"^\s*@([a-z0-9][a-z0-9_-]{0,23})\b[\s:,]*", re.I)


def agent_route(*, recognized: Recognized, pinned: Agent | None = None, turn_id: Any = None) -> Agent | None:
    with tracing.span("chat.route", **{"resync.turn_id": str(turn_id or ""), "resync.intent": str(recognized.intent)}) as current:
        agent = _choose(recognized, pinned)
        current.set_attribute("resync.agent", agent.slug if agent else "")
        return agent


def _choose(recognized: Recognized, pinned: Agent | None) -> Agent | None:
    enabled = list(Agent.objects.filter(enabled=True).select_related("current_version").order_by("-is_default", "name"))
    if pinned is not None:
        for agent in enabled:
            if agent.pk == pinned.pk:
                return agent
    intent = str(recognized.intent)
    specialists = [a for a in enabled if not a.is_default and intent in (a.intents or [])]
    if specialists:
        return specialists[0]
    defaults = [a for a in enabled if a.is_default] or [a for a in enabled if intent in (a.intents or [])]
    # With the default agent disabled, any enabled agent still beats no agent at all.
    return (defaults or enabled or [None])[0]


def agent_mention(question: str) -> tuple[str, str]:
    """A leading "@slug" naming an agent: (slug, the question without it); else ("", question).

    Only names of existing agents count: "@FP_*" stays an HWA wildcard in the question.
    """
    match = _MENTION.match(question)
    if match and Agent.objects.filter(slug=match.group(1).lower()).exists():
        return match.group(1).lower(), question[match.end():].strip()
    return "", question


def agent_usable(agent: Agent, user: Any) -> bool:
    """The user's role allows at least one of the agent's tools (or it uses none): the agents the chat's
    picker lists for them, and the only ones they may pin. Each tool call is still checked on its own."""
    from chat.agent.validation import TOOL_ROLES

    tools = agent.tools or []
    return not tools or any(has_role(user, TOOL_ROLES.get(tool, ())) for tool in tools)


def agent_pin(slug: str, *, user: Any = None) -> Agent:
    """The enabled agent `slug` (from the chat's picker or an @mention), else a clear refusal."""
    agent = Agent.objects.filter(slug=slug).first()
    if agent is None:
        raise ApplicationError(f"There is no agent named {slug[:24]}.", code="agent_not_found")
    if not agent.enabled:
        raise ApplicationError(f"The agent {agent.name} is disabled; ask without pinning it.", code="agent_disabled")
    if user is not None and not agent_usable(agent, user):
        raise ApplicationError(f"Your role cannot use the agent {agent.name}.", code="agent_forbidden")
    return agent
