"""Reads of the chat, always scoped to the person asking."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from chat.models import ActionProposal, Agent, ChatEvent, Conversation, Message, ProposalStatus
from resync_site.roles import APPROVERS, has_role

REPLAY_LIMIT = 2000


def conversations_for(user: Any, *, limit: int = 30) -> QuerySet[Conversation]:
    return Conversation.objects.filter(user=user).order_by("-updated_at")[:limit]


def conversation_for(user: Any, conversation_id: uuid.UUID | str | None) -> Conversation | None:
    if not conversation_id:
        return None
    try:
        pk = uuid.UUID(str(conversation_id))
    except ValueError:
        return None
    return Conversation.objects.filter(pk=pk, user=user).first()


def events_after(user: Any, conversation_id: uuid.UUID | str, after: int = 0) -> list[dict[str, Any]] | None:
    """The conversation's stored events after cursor `after`, oldest first; None when not the user's."""
    if conversation_for(user, conversation_id) is None:
        return None
    rows = ChatEvent.objects.filter(conversation_id=conversation_id, id__gt=after).order_by("id")[:REPLAY_LIMIT]
    return [{**row.payload, "seq": row.id, "replay": True} for row in rows]


def messages_for(conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.order_by("created_at", "id")


def pending_approvals(user: Any) -> list[ActionProposal]:
    """High-risk proposals waiting for a supervisor, except the user's own."""
    if not has_role(user, APPROVERS):
        return []
    return list(
        ActionProposal.objects.filter(status=ProposalStatus.AWAITING_APPROVAL)
        .exclude(proposed_by=user)
        .select_related("proposed_by")
        .order_by("expires_at")[:50]
    )


# --- agents (issue 10) ----------------------------------------------------------------------------


def agents_all() -> QuerySet[Agent]:
    return Agent.objects.only("slug", "name", "name_pt").order_by("name")


def agents_for(user: Any) -> list[Agent]:
    """The agents `user` may pick in the chat: enabled, with a tool their role allows (the default first)."""
    from chat.agent.router import agent_usable

    return [a for a in Agent.objects.filter(enabled=True).order_by("-is_default", "name") if agent_usable(a, user)]


def _per_agent(qs: QuerySet[Any], expression: Any, output_field: Any) -> Any:
    from django.db.models import OuterRef, Subquery

    # One correlated subquery per figure: joining turns and feedback in one query would multiply rows.
    return Subquery(qs.filter(agent=OuterRef("pk")).order_by().values("agent").annotate(v=expression).values("v")[:1],
                    output_field=output_field)


def agents_with_metrics(qs: QuerySet[Agent] | None = None) -> QuerySet[Agent]:
    """Agents annotated with m_turns, m_errors, m_latency, m_tokens, m_up, m_down (all time)."""
    from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, IntegerField, Q, Sum, Value
    from django.db.models.functions import Coalesce

    from chat.models import Feedback, Turn, TurnStatus

    qs = Agent.objects.all() if qs is None else qs
    turns = Turn.objects.all()
    latency = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    thumbs = Feedback.objects.annotate(agent=F("message__turn__agent"))
    return qs.annotate(
        m_turns=Coalesce(_per_agent(turns, Count("id"), IntegerField()), Value(0)),
        m_errors=Coalesce(_per_agent(turns.filter(status=TurnStatus.FAILED), Count("id"), IntegerField()), Value(0)),
        m_latency=_per_agent(turns.filter(finished_at__isnull=False, started_at__isnull=False), Avg(latency), DurationField()),
        m_tokens=Coalesce(_per_agent(turns, Sum("tokens"), IntegerField()), Value(0)),
        m_up=Coalesce(_per_agent(thumbs.filter(Q(rating="up")), Count("id"), IntegerField()), Value(0)),
        m_down=Coalesce(_per_agent(thumbs.filter(Q(rating="down")), Count("id"), IntegerField()), Value(0)),
    )
