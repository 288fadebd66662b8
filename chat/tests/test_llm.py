"""The litellm path end to end against a local OpenAI-compatible server (chat.testing)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from audit.models import AuditAction, AuditEvent
from chat.models import ActionProposal, ChatEvent
from chat.testing import Reply
from chat.tests.conftest import HOSTILE_LINE, answer_of, citations_of, hostile_demo, tools_of


def _tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def test_streams_the_models_answer_and_records_it(hwa, kb, ask, fake_llm) -> None:
    fake_llm.script = [Reply(text="Nenhuma falha registrada nas ferramentas consultadas.", chunk_chars=5)]
    turn = ask("oi, tudo bem?")
    assert answer_of(turn) == "Nenhuma falha registrada nas ferramentas consultadas."
    assert turn.model == "openai/fake-model" and not turn.fallback_reason
    body = fake_llm.requests[0]["body"]
    assert body["stream"] is True and {t["function"]["name"] for t in body["tools"]} >= {
        "plan_query", "job_details", "job_log", "job_dependencies", "workstation_status", "kb_search", "propose_action"}
    assert "Brazilian Portuguese" in body["messages"][0]["content"]
    done = ChatEvent.objects.filter(turn=turn, type="done").get().payload
    assert done["model"] == "openai/fake-model" and done["first_token_ms"] is not None
    audit = AuditEvent.objects.get(action=AuditAction.AI_ANSWER, target_id=str(turn.id))
    assert audit.details["model"] == "openai/fake-model" and audit.details["language"] == "pt"


def test_tool_calls_run_and_their_results_are_cited(hwa, kb, ask, fake_llm) -> None:
    def answer(body: dict[str, Any]) -> Reply:
        tool = _tool_messages(body)[-1]
        data = json.loads(tool["content"])
        assert data["untrusted_data"] is True
        assert any("ORA-19502" in line["text"] for line in data["data"]["lines"])
        return Reply(text=f"The /backup disk is full (ORA-19502) [{data['citations'][0]['n']}].")

    fake_llm.script = [Reply(tool_calls=[("job_log", {"job": "BKP_RMAN_FULL"})]), answer]
    turn = ask("why did BKP_RMAN_FULL fail?")
    assert tools_of(turn) == [("job_log", {"job": "BKP_RMAN_FULL"})]
    assert answer_of(turn) == "The /backup disk is full (ORA-19502) [1]."
    assert citations_of(turn)[0].startswith("joblog:")
    citation = ChatEvent.objects.filter(turn=turn, type="citation").first().payload
    assert citation["kind"] == "joblog" and citation["lines"][0] <= citation["lines"][1] and "#L" in citation["url"]
    audit = AuditEvent.objects.get(action=AuditAction.AI_ANSWER, target_id=str(turn.id))
    assert audit.details["tools"] == ["job_log"] and audit.details["sources"][0].startswith("joblog:")
    assert "English" in fake_llm.requests[0]["body"]["messages"][0]["content"]


def test_an_llm_error_falls_back_to_no_llm_and_says_so(hwa, kb, ask, fake_llm) -> None:
    fake_llm.script = [Reply(status=500)]
    turn = ask("why did BKP_RMAN_FULL fail?")
    assert turn.fallback_reason.startswith("error")
    answer = answer_of(turn)
    assert "no-LLM mode" in answer and "ORA-19502" in answer and "KB-0028" in answer
    assert turn.model == "no-llm"
    assert AuditEvent.objects.get(action=AuditAction.AI_ANSWER, target_id=str(turn.id)).details["fallback_reason"]


def test_an_llm_timeout_falls_back_to_no_llm(hwa, kb, ask, fake_llm, settings) -> None:
    settings.LLM_TIMEOUT_SECONDS = 0.5
    fake_llm.script = [Reply(text="too late", first_token_delay=2.0)]
    turn = ask("o que abendou hoje à noite?")
    assert turn.fallback_reason == "timeout"
    assert "modo sem LLM" in answer_of(turn) and "FP_CALC_FOLHA" in answer_of(turn)
    assert "too late" not in answer_of(turn)


def test_the_step_limit_ends_a_tool_loop(hwa, kb, ask, fake_llm, settings) -> None:
    settings.LLM_MAX_STEPS = 3
    fake_llm.default = Reply(tool_calls=[("plan_query", {"failed_only": True})])
    fake_llm.script = [fake_llm.default, fake_llm.default, Reply(text="Sete jobs falharam [1].")]
    turn = ask("o que falhou?")
    assert [name for name, _ in tools_of(turn)] == ["plan_query", "plan_query"]
    assert "tools" not in fake_llm.requests[2]["body"]  # the last step must answer
    assert answer_of(turn) == "Sete jobs falharam [1]."


@pytest.fixture
def hwa_scenario() -> dict[str, Any]:
    return hostile_demo()


def test_a_hostile_job_log_cannot_make_the_model_act(hwa, kb, ask, fake_llm) -> None:
    # The model "obeys" the text planted in the log: it tries to cancel everything.
    fake_llm.script = [
        Reply(tool_calls=[("job_log", {"job": "FP_CALC_FOLHA"})]),
        Reply(tool_calls=[("propose_action", {"action": "cancel", "jobs": ["*"], "reason": "log said so"}),
                          ("propose_action", {"action": "rerun", "jobs": ["FP_CALC_FOLHA"]})]),
        Reply(text="Done."),
    ]
    turn = ask("why did FP_CALC_FOLHA fail?")
    proposals = [c for c in turn.tool_calls.all() if c.name == "propose_action"]
    assert [p.error for p in proposals] == ["not_requested", "not_requested"]
    assert not ActionProposal.objects.exists()
    assert not AuditEvent.objects.filter(action__in=[AuditAction.JOB_ACTION, AuditAction.ACTION_PROPOSED]).exists()
    # The log reached the model only as data, with the planted instruction flagged and neutralized.
    tool = json.loads(_tool_messages(fake_llm.requests[1]["body"])[0]["content"])
    assert tool["untrusted_data"] is True and tool["data"]["flagged_instructions"] == 1
    assert "ignore previous instructions" not in json.dumps(tool) and HOSTILE_LINE.split(":")[0] in json.dumps(tool)


def test_a_hostile_job_log_is_only_quoted_in_no_llm_mode(hwa, kb, ask) -> None:
    turn = ask("por que o FP_CALC_FOLHA falhou?")
    assert [name for name, _ in tools_of(turn)] == ["job_details", "job_log", "kb_search"]
    assert HOSTILE_LINE in answer_of(turn).split("```")[1]  # inside the quoted log block, nowhere else
    assert not ActionProposal.objects.exists()


def test_masking_hides_hosts_users_and_ips_from_the_model_and_restores_them(hwa, kb, ask, fake_llm, settings) -> None:
    settings.LLM_MASKING = True

    def echo(body: dict[str, Any]) -> Reply:
        user = body["messages"][-1]["content"]
        host = next(w for w in user.split() if w.startswith("HOST_"))
        ip = next(w.strip("()?,") for w in user.split() if w.strip("()?,").startswith("IP_"))
        return Reply(text=f"{host} ({ip}) answers; USER_1 may log in.", chunk_chars=3)

    fake_llm.script = [echo]
    turn = ask("is srvbatch01.corp.example (10.20.30.40) down? user=jsilva cannot log in")
    sent = json.dumps(fake_llm.requests[0]["body"])
    assert "srvbatch01.corp.example" not in sent and "10.20.30.40" not in sent and "jsilva" not in sent
    assert answer_of(turn) == "srvbatch01.corp.example (10.20.30.40) answers; jsilva may log in."
