"""Specialized agents: routing (PT/EN), pinning, disabled agents, prompt versions on answers, the
admin (admins only, audited) and per-agent figures on /metrics."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from audit.models import AuditAction, AuditEvent
from chat.agent.intents import recognize
from chat.agent.router import agent_route
from chat.models import Agent, ChatEvent, Feedback, Turn
from chat.testing import Reply
from chat.tests.conftest import answer_of


@pytest.mark.parametrize(
    ("question", "agent"),
    [
        ("por que o FP_CALC_FOLHA falhou?", "failure-analysis"),
        ("why did FP_CALC_FOLHA fail?", "failure-analysis"),
        ("mostra o log do CARGA_DW", "failure-analysis"),
        ("what depends on FP_CALC_FOLHA?", "failure-analysis"),
        ("como resolver AWSBHT001E?", "knowledge"),
        ("how do I fix ORA-19502?", "knowledge"),
        ("o que abendou hoje à noite?", "operations"),
        ("what is running right now?", "operations"),
        ("status do FOLHA_PAGAMENTO", "operations"),
        ("reexecutar FP_CALC_FOLHA", "operations"),
        ("oi", "operations"),
    ],
)
def test_routing_table(db: Any, question: str, agent: str) -> None:
    chosen = agent_route(recognized=recognize(question))
    assert chosen is not None and chosen.slug == agent


def test_a_disabled_agent_is_never_used_even_when_pinned(db: Any, admin_user: Any) -> None:
    from chat.agent.manager import agent_save

    failure = Agent.objects.get(slug="failure-analysis")
    failure.enabled = False
    agent_save(acting_user=admin_user, agent=failure)
    question = recognize("por que o FP_CALC_FOLHA falhou?")
    assert agent_route(recognized=question).slug == "operations"
    assert agent_route(recognized=question, pinned=failure).slug == "operations"
    event = AuditEvent.objects.filter(action=AuditAction.AGENT_CHANGED, target_id="failure-analysis").latest("id")
    assert event.details["change"] == "disabled" and event.details["changes"]["enabled"] == {"from": True, "to": False}


def test_the_operator_can_pin_an_agent(hwa: Any, kb: Any, operator: Any) -> None:
    import uuid

    from chat import services

    turn_id = uuid.uuid4()
    services.turn_start(acting_user=operator, conversation=uuid.uuid4(), turn_id=turn_id,
                        question="status do FOLHA_PAGAMENTO", agent="knowledge")
    services.turn_execute(turn_id=turn_id)
    turn = Turn.objects.get(pk=turn_id)
    assert turn.agent.slug == "knowledge" and turn.prompt_version == "knowledge@1"
    # The knowledge agent may not read the plan: the plan tool was refused, not run.
    assert {c.name: c.error for c in turn.tool_calls.all()}.get("job_details") in (None, "refused")
    assert all(c.error == "refused" for c in turn.tool_calls.exclude(name="kb_search"))
    assert "Pedido recusado pela validação" in answer_of(turn) and "may not use" in answer_of(turn)


def test_pinning_from_the_chat_box_with_a_mention(db: Any, operator: Any, admin_user: Any) -> None:
    import uuid

    from chat import services
    from chat.agent.manager import agent_save
    from resync_site.lib.errors import ApplicationError

    turn = services.turn_start(acting_user=operator, conversation=uuid.uuid4(), turn_id=uuid.uuid4(),
                               question="@knowledge como resolver AWSBHT001E?")
    assert turn.agent.slug == "knowledge" and turn.agent_pinned and turn.question == "como resolver AWSBHT001E?"
    wildcard = services.turn_start(acting_user=operator, conversation=uuid.uuid4(), turn_id=uuid.uuid4(),
                                   question="@FP_* falharam?")
    assert wildcard.agent is None and wildcard.question == "@FP_* falharam?"  # an HWA pattern, not a pin
    knowledge = Agent.objects.get(slug="knowledge")
    knowledge.enabled = False
    agent_save(acting_user=admin_user, agent=knowledge)
    with pytest.raises(ApplicationError) as refused:
        services.turn_start(acting_user=operator, conversation=uuid.uuid4(), turn_id=uuid.uuid4(),
                            question="@knowledge como resolver AWSBHT001E?")
    assert refused.value.code == "agent_disabled"


def test_done_event_and_audit_name_the_agent_and_prompt_version(hwa: Any, kb: Any, ask: Any) -> None:
    turn = ask("por que o FP_CALC_FOLHA falhou?")
    done = ChatEvent.objects.get(turn=turn, type="done").payload
    assert done["agent"] == "failure-analysis" and done["prompt_version"] == "failure-analysis@1"
    audit = AuditEvent.objects.get(action=AuditAction.AI_ANSWER, target_id=str(turn.id))
    assert audit.details["agent"] == "failure-analysis" and audit.details["prompt_version"] == "failure-analysis@1"
    assert "job_log" in {c.name for c in turn.tool_calls.all()} and answer_of(turn)


def test_a_prompt_change_versions_answers(hwa: Any, kb: Any, ask: Any, fake_llm: Any, admin_user: Any) -> None:
    from chat.agent.manager import agent_save

    fake_llm.default = Reply(text="ok")
    first = ask("o que abendou hoje à noite?")
    agent = Agent.objects.get(slug="operations")
    agent.prompt_pt = agent.prompt_pt + "\nSempre termine com 'Bom turno!'."
    agent_save(acting_user=admin_user, agent=agent)
    second = ask("o que abendou hoje à noite?")
    first.refresh_from_db()
    assert (first.prompt_version, first.agent_version.number) == ("operations@1", 1)
    assert (second.prompt_version, second.agent_version.number) == ("operations@2", 2)
    assert "Bom turno!" in fake_llm.requests[-1]["body"]["messages"][0]["content"]
    assert "Bom turno!" not in fake_llm.requests[0]["body"]["messages"][0]["content"]
    assert "Bom turno!" not in first.agent_version.prompt_pt
    event = AuditEvent.objects.filter(action=AuditAction.AGENT_CHANGED, target_id="operations").latest("id")
    assert event.details["changes"] == {"prompt_pt": {"changed": True}} and event.details["prompt_version"] == "operations@2"


def test_agent_model_temperature_and_fallback_model(hwa: Any, kb: Any, ask: Any, fake_llm: Any, admin_user: Any) -> None:
    from chat.agent.manager import agent_save

    agent = Agent.objects.get(slug="operations")
    agent.model = "openai/broken-model"
    agent.fallback_model = "openai/fake-model"
    agent.temperature = 0.5
    agent_save(acting_user=admin_user, agent=agent)
    fake_llm.script = [Reply(status=500), Reply(text="resposta do modelo reserva")]
    turn = ask("o que abendou hoje à noite?")
    bodies = [r["body"] for r in fake_llm.requests]
    assert [b["model"] for b in bodies] == ["broken-model", "fake-model"] and bodies[-1]["temperature"] == 0.5
    assert answer_of(turn) == "resposta do modelo reserva" and not turn.fallback_reason


def test_only_admins_manage_agents_in_the_admin(db: Any, client_for: Any, admin_user: Any, reviewer: Any) -> None:
    assert client_for(reviewer).get("/admin/chat/agent/").status_code == 403
    client = client_for(admin_user)
    page = client.get("/admin/chat/agent/")
    assert page.status_code == 200 and b"Failure analysis" in page.content
    agent = Agent.objects.get(slug="knowledge")
    form = client.get(f"/admin/chat/agent/{agent.pk}/change/")
    assert form.status_code == 200
    data = {
        "name": "Knowledge", "slug": "knowledge", "purpose": agent.purpose, "intents": '["how_fix"]', "tools": '["kb_search"]',
        "model": "", "fallback_model": "", "temperature": "0.2", "max_steps": "4", "token_budget": "8000",
        "time_budget_seconds": "30", "prompt_pt": agent.prompt_pt, "prompt_en": agent.prompt_en + "\nBe short.",
        "versions-TOTAL_FORMS": "1", "versions-INITIAL_FORMS": "1", "versions-MIN_NUM_FORMS": "0", "versions-MAX_NUM_FORMS": "1000",
        "versions-0-id": str(agent.current_version_id), "versions-0-agent": str(agent.pk),
    }
    response = client.post(f"/admin/chat/agent/{agent.pk}/change/", data)
    assert response.status_code == 302, response.content[:2000]
    agent.refresh_from_db()
    assert not agent.enabled and agent.current_version.number == 2 and agent.temperature == 0.2
    event = AuditEvent.objects.filter(action=AuditAction.AGENT_CHANGED, target_id="knowledge").latest("id")
    assert event.actor_id == admin_user.pk and event.details["change"] == "disabled"


def test_per_agent_metrics(hwa: Any, kb: Any, ask: Any, operator: Any) -> None:
    turn = ask("por que o FP_CALC_FOLHA falhou?")
    Feedback.objects.create(message=turn.messages.get(role="assistant"), user=operator, rating="up")
    body = Client(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode()
    assert 'resync_agent_turns_total{agent="failure-analysis"} 1.0' in body
    assert 'resync_agent_feedback_total{agent="failure-analysis",rating="up"} 1.0' in body
    assert 'resync_agent_enabled{agent="knowledge",prompt_version="knowledge@1"} 1.0' in body
