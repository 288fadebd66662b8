"""The chat's agent picker: the page lists the agents a person may pick (in their language), the
message frame carries the pick (validated: unknown or disabled agents get a clear error, never a
crash), the conversation keeps it across reloads, and the `done` event names the agent that answered."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async

from audit.models import AuditAction, AuditEvent
from chat import services
from chat.models import Agent, Conversation, Turn
from chat.tests.test_consumer import _session, _socket, _until
from resync_site.lib.errors import ApplicationError
from resync_site.roles import Role

# --- the page --------------------------------------------------------------------------------------


def _select(html: str) -> str:
    return html.split('id="chat-agent"', 1)[1].split("</select>", 1)[0]


def _options(html: str) -> list[str]:
    return re.findall(r'<option value="([^"]*)"', _select(html))


def _selected(html: str) -> str:
    found = re.findall(r'<option value="([^"]*)"[^>]*selected>', _select(html))
    assert len(found) == 1
    return found[0]


def test_the_page_lists_the_enabled_agents_in_the_users_language(operator: Any, client_for: Any, admin_user: Any) -> None:
    from chat.agent.manager import agent_save

    client = client_for(operator)
    pt = client.get("/chat/", headers={"Accept-Language": "pt-br"}).content.decode()
    assert _options(pt) == ["", "operations", "failure-analysis", "knowledge"]  # Automatic, then the default agent
    assert "Automático" in pt and "Análise de falhas" in pt and "só com a base de conhecimento" in pt
    en = client.get("/chat/", headers={"Accept-Language": "en"}).content.decode()
    assert "Automatic" in en and "Failure analysis" in en and "from the team&#x27;s knowledge base only" in en
    assert _selected(en) == "" and 'data-purpose="Resync picks the agent that fits each question."' in en
    knowledge = Agent.objects.get(slug="knowledge")
    knowledge.enabled = False
    agent_save(acting_user=admin_user, agent=knowledge)
    assert _options(client.get("/chat/").content.decode()) == ["", "operations", "failure-analysis"]


def test_the_page_shows_the_conversations_pick_again(operator: Any, client_for: Any, admin_user: Any) -> None:
    from chat.agent.manager import agent_save

    turn = services.turn_start(acting_user=operator, conversation=uuid.uuid4(), turn_id=uuid.uuid4(),
                               question="como resolver AWSBHT001E?", agent="knowledge")
    html = client_for(operator).get(f"/chat/?c={turn.conversation_id}").content.decode()
    assert _selected(html) == "knowledge" and 'selected>Conhecimento</option>' in html
    # Disabled since: the page falls back to Automatic instead of offering an agent that would be refused.
    knowledge = Agent.objects.get(slug="knowledge")
    knowledge.enabled = False
    agent_save(acting_user=admin_user, agent=knowledge)
    html = client_for(operator).get(f"/chat/?c={turn.conversation_id}").content.decode()
    assert "knowledge" not in _options(html) and _selected(html) == ""


def test_agents_a_role_cannot_use_are_neither_listed_nor_pinnable(operator: Any, client_for: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from chat.agent import validation

    monkeypatch.setitem(validation.TOOL_ROLES, "kb_search", (Role.REVIEWER,))  # the knowledge agent's only tool
    assert "knowledge" not in _options(client_for(operator).get("/chat/").content.decode())
    with pytest.raises(ApplicationError) as refused:
        services.turn_start(acting_user=operator, conversation=uuid.uuid4(), turn_id=uuid.uuid4(), question="oi",
                            agent="knowledge")
    assert refused.value.code == "agent_forbidden"


# --- the service -----------------------------------------------------------------------------------


def test_the_pick_is_kept_on_the_conversation_and_a_mention_wins_for_one_message(operator: Any, db: Any) -> None:
    conversation = Conversation.objects.create(user=operator)

    def start(question: str, agent: str = "") -> Turn:
        turn = services.turn_start(acting_user=operator, conversation=conversation.id, turn_id=uuid.uuid4(),
                                   question=question, agent=agent)
        Turn.objects.filter(pk=turn.pk).update(status="done")  # one turn at a time: let the next one start
        conversation.refresh_from_db()
        return turn

    picked = start("por que o FP_CALC_FOLHA falhou?", agent="knowledge")
    assert picked.agent.slug == "knowledge" and picked.agent_pinned and conversation.agent.slug == "knowledge"
    mentioned = start("@failure-analysis por que o FP_CALC_FOLHA falhou?", agent="knowledge")
    assert mentioned.agent.slug == "failure-analysis" and conversation.agent.slug == "knowledge"
    automatic = start("por que o FP_CALC_FOLHA falhou?")
    assert automatic.agent is None and not automatic.agent_pinned and conversation.agent is None


def test_a_pinned_answer_is_attributed_in_done_and_audit(hwa: Any, kb: Any, operator: Any) -> None:
    turn_id = uuid.uuid4()
    services.turn_start(acting_user=operator, conversation=uuid.uuid4(), turn_id=turn_id, question="what failed tonight?",
                        agent="failure-analysis")
    services.turn_execute(turn_id=turn_id)
    done = Turn.objects.get(pk=turn_id).events.get(type="done").payload
    assert done["agent"] == "failure-analysis" and done["agent_pinned"] is True and done["prompt_version"] == "failure-analysis@1"
    audit = AuditEvent.objects.get(action=AuditAction.AI_ANSWER, target_id=str(turn_id))
    assert audit.details["agent"] == "failure-analysis" and audit.details["agent_pinned"] is True


# --- the websocket ---------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_turns", "shipped_agents")
async def test_the_message_frame_carries_the_pick(hwa: Any, kb: Any, operator: Any) -> None:
    ws = _socket(await database_sync_to_async(_session)(operator))
    assert (await ws.connect())[0]
    await ws.send_json_to({"type": "message", "text": "what failed tonight?", "agent": "failure-analysis", "ref": "msg"})
    events = await _until(ws, "done")
    done = events[-1]
    assert done["agent"] == "failure-analysis" and done["agent_pinned"] is True
    conversation_id = events[0]["conversation_id"]
    saved = await database_sync_to_async(lambda: Conversation.objects.get(pk=conversation_id).agent.slug)()
    assert saved == "failure-analysis"
    # Automatic again: the router picks, and the conversation forgets the pick.
    await ws.send_json_to({"type": "message", "text": "what failed tonight?", "agent": "", "conversation_id": conversation_id})
    done = (await _until(ws, "done"))[-1]
    assert done["agent"] == "operations" and done["agent_pinned"] is False
    assert await database_sync_to_async(lambda: Conversation.objects.get(pk=conversation_id).agent_id)() is None
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_turns", "shipped_agents")
async def test_unknown_and_disabled_agents_get_a_clear_error(operator: Any, admin_user: Any) -> None:
    from chat.agent.manager import agent_save

    ws = _socket(await database_sync_to_async(_session)(operator))
    assert (await ws.connect())[0]
    await ws.send_json_to({"type": "message", "text": "oi", "agent": "nope", "ref": "msg"})
    ack, error = await ws.receive_json_from(), await ws.receive_json_from()
    assert ack["type"] == "ack" and error["type"] == "error" and error["code"] == "agent_not_found"
    assert error["turn_id"] == ack["turn_id"] and error["ref"] == "msg" and "no agent named nope" in error["message"]

    def disable() -> None:
        knowledge = Agent.objects.get(slug="knowledge")
        knowledge.enabled = False
        agent_save(acting_user=admin_user, agent=knowledge)

    await database_sync_to_async(disable)()
    await ws.send_json_to({"type": "message", "text": "oi", "agent": "knowledge", "ref": "msg"})
    error = (await _until(ws, "error"))[-1]
    assert error["code"] == "agent_disabled" and "Knowledge is disabled" in error["message"]
    for bad in ("x" * 25, 42, ["knowledge"]):
        await ws.send_json_to({"type": "message", "text": "oi", "agent": bad})
        error = await ws.receive_json_from()
        assert error["code"] == "bad_frame" and error["message"].startswith("message.agent")
    # Nothing was started, and the socket is still usable.
    assert await database_sync_to_async(Turn.objects.count)() == 0
    await ws.send_json_to({"type": "ping", "ref": "p"})
    assert (await ws.receive_json_from())["type"] == "pong"
    await ws.disconnect()
