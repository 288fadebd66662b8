"""The chat page. Citations of job-log lines open the jobs app's viewer (`jobs:log`), not a page of ours."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import get_language

from chat import selectors, services
from chat.models import ProposalAction, ProposalStatus
from resync_site.roles import APPROVERS, OPERATIONS, has_role, role_required


@role_required(*OPERATIONS)
def chat_page(request: HttpRequest) -> HttpResponse:
    conversation = selectors.conversation_for(request.user, request.GET.get("c"))
    messages = list(selectors.messages_for(conversation)) if conversation else []
    approvals = selectors.pending_approvals(request.user)
    language = get_language() or settings.LANGUAGE_CODE
    agents = selectors.agents_for(request.user)
    # The conversation's pick, unless that agent was disabled since (then: Automatic).
    pinned = conversation.agent_id if conversation else None
    return render(request, "chat/page.html", {
        "conversation": conversation,
        "chat_messages": messages,
        "conversations": selectors.conversations_for(request.user),
        "approvals": [services.proposal_card(p) for p in approvals],
        "is_approver": has_role(request.user, APPROVERS),
        "ticket_required": settings.ACTION_TICKET_REQUIRED,
        "ws_path": "/ws/chat/",
        # Labels in the page's language (the worker that builds the cards has none of its own).
        "labels": {"actions": {c: str(label) for c, label in ProposalAction.choices},
                   "statuses": {c: str(label) for c, label in ProposalStatus.choices},
                   # Every agent, disabled ones too: older answers name the agent that wrote them.
                   "agents": {a.slug: a.display_name(language) for a in selectors.agents_all()}},
        "page_url": reverse("chat:page"),
        # The agent picker: name and purpose in the page's language; "" is Automatic.
        "agents": [{"slug": a.slug, "name": a.display_name(language), "purpose": a.display_purpose(language)} for a in agents],
        "pinned_agent": next((a.slug for a in agents if a.pk == pinned), ""),
    })
