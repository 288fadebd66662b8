"""The validation layer: each rule with an accepted and a refused case; refusals are clear to the
operator and audited; instructions planted in data are neutralized before the LLM reads them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from audit.models import AuditAction, AuditEvent
from chat.agent import validation
from chat.agent.tools import JobArgs, PlanQueryArgs, ProposeActionArgs, ToolContext, tool_run
from chat.models import Conversation, Turn
from chat.testing import Reply
from chat.tests.conftest import HOSTILE_LINE, hostile_demo


@pytest.mark.parametrize(
    ("kind", "value", "wildcards", "ok"),
    [
        ("job", "FP_CALC_FOLHA", False, True),
        ("job", "9JOB", False, False),  # a letter first
        ("job", "A" * 41, False, False),  # at most 40 characters
        ("job", "FP CALC", False, False),
        ("job", "FP_*", True, True),
        ("job", "FP_*", False, False),  # wildcards only where allowed
        ("job", "*", True, False),  # too broad
        ("job_stream", "FOLHA_PAGAMENTO", False, True),
        ("job_stream", "FOLHA;DROP", False, False),
        ("workstation", "PRD_LNX01", False, True),
        ("workstation", "WORKSTATION_TOO_LONG", False, False),  # at most 16
        ("folder", "/FINANCE/PAYROLL/", False, True),
        ("folder", "FINANCE/../", False, False),
        ("job", "FOO' OR name LIKE '@", True, False),  # an OQL fragment is not a name
        ("job", "FP\x00CALC", False, False),  # control characters never reach OQL
    ],
)
def test_hwa_naming_rules(kind: str, value: str, wildcards: bool, ok: bool) -> None:
    if ok:
        validation.check_name(kind, value, wildcards=wildcards)
    else:
        with pytest.raises(validation.ValidationRefused):
            validation.check_name(kind, value, wildcards=wildcards)


def test_job_references_accept_stream_job_workstation_and_ids() -> None:
    validation.check_job_ref("FOLHA_PAGAMENTO.FP_CALC_FOLHA")
    validation.check_job_ref("PRD_LNX01#FOLHA_PAGAMENTO.FP_CALC_FOLHA")
    validation.check_job_ref("4a3961f1-8870-5a30-bbe5-59cb76b7d98b")
    with pytest.raises(validation.ValidationRefused):
        validation.check_job_ref("FOLHA.FP_CALC'--")


def test_limits_on_result_sizes_and_time_windows() -> None:
    validation.check_limit(25)
    validation.check_window(24)
    with pytest.raises(validation.ValidationRefused):
        validation.check_limit(500)
    with pytest.raises(validation.ValidationRefused):
        validation.check_window(24 * 30)


def _ctx(user: Any, question: str = "status", **extra: Any) -> ToolContext:
    conversation = Conversation.objects.create(user=user)
    turn = Turn.objects.create(conversation=conversation, user=user, question=question)
    return ToolContext(user=user, conversation_id=conversation.id, turn_id=turn.id, question=question, language="pt", **extra)


def test_a_refused_tool_call_never_reaches_hwa_and_is_audited(hwa: Any, operator: Any) -> None:
    before = hwa.request_count
    result = tool_run("job_log", {"job": "FP_CALC_FOLHA' OR '1'='1"}, _ctx(operator))
    assert result.error == "refused" and "not a valid HWA job name" in result.data["error"]
    assert hwa.request_count == before
    event = AuditEvent.objects.get(action=AuditAction.VALIDATION_REFUSED)
    assert event.actor_id == operator.pk and event.outcome == "refused" and event.details["rule"] == "syntax.job"
    accepted = tool_run("job_log", {"job": "FP_CALC_FOLHA"}, _ctx(operator))
    assert not accepted.error and accepted.data["lines"]


def test_wildcards_only_in_tools_that_take_patterns(hwa: Any, operator: Any) -> None:
    assert not tool_run("plan_query", {"name": "FP_*"}, _ctx(operator)).error
    assert tool_run("job_details", {"job": "FP_*"}, _ctx(operator)).error == "refused"


def test_the_users_role_for_the_tool(hwa: Any, operator: Any, compliance: Any) -> None:
    args = JobArgs(job="FP_CALC_FOLHA")
    validation.tool_call_validate(name="job_details", args=args, user=operator)
    with pytest.raises(validation.ValidationRefused) as refused:
        validation.tool_call_validate(name="job_details", args=args, user=compliance)
    assert refused.value.rule == "security.role"
    assert tool_run("job_details", {"job": "FP_CALC_FOLHA"}, _ctx(compliance)).error == "refused"


def test_the_agents_tools(operator: Any, db: Any) -> None:
    args = PlanQueryArgs(name="FP_*")
    validation.tool_call_validate(name="plan_query", args=args, user=operator, allowed_tools=frozenset({"plan_query"}))
    with pytest.raises(validation.ValidationRefused) as refused:
        validation.tool_call_validate(name="plan_query", args=args, user=operator, allowed_tools=frozenset({"kb_search"}))
    assert refused.value.rule == "security.agent_tools"


def test_an_action_must_be_asked_for_by_the_person(operator: Any, db: Any) -> None:
    args = ProposeActionArgs(action="cancel", jobs=["FP_CALC_FOLHA"])
    named = frozenset({"FP_CALC_FOLHA"})
    validation.tool_call_validate(name="propose_action", args=args, user=operator, requested_action="cancel", named=named)
    validation.tool_call_validate(name="propose_action", args=ProposeActionArgs(action="cancel", jobs=["FOLHA.FP_CALC_FOLHA"]),
                                  user=operator, requested_action="cancel", named=named)
    with pytest.raises(validation.ValidationRefused) as refused:
        validation.tool_call_validate(name="propose_action", args=args, user=operator, requested_action=None, named=named)
    assert refused.value.code == "not_requested"
    # The action word is there, but the job is not one the person named (it came from quoted or planted text).
    with pytest.raises(validation.ValidationRefused) as refused:
        validation.tool_call_validate(name="propose_action", args=ProposeActionArgs(action="cancel", jobs=["FP_ENVIA_BANCO"]),
                                      user=operator, requested_action="cancel", named=named)
    assert refused.value.rule == "security.not_named"


def test_a_follow_up_acts_on_the_job_named_earlier(db: Any) -> None:
    assert validation.named_targets("reexecuta ele", earlier_questions=["por que o FP_CALC_FOLHA falhou?"]) == {"FP_CALC_FOLHA"}
    assert validation.named_targets("cancela o FP_ENVIA_BANCO", earlier_questions=["status do FP_CALC_FOLHA"]) == {"FP_ENVIA_BANCO"}


def test_instructions_in_data_are_flagged_and_neutralized() -> None:
    clean, found = validation.neutralize({"lines": [{"n": 3, "text": HOSTILE_LINE}, {"n": 4, "text": "ORA-19502: write error"}]})
    # Two: the fake "SYSTEM:" role label and the instruction after it.
    assert found == 2 and "ignore previous instructions" not in json.dumps(clean)
    assert validation.NEUTRALIZED in clean["lines"][0]["text"] and clean["lines"][1]["text"] == "ORA-19502: write error"
    same, none = validation.neutralize({"text": "AWSBHT001E the user is not known; please check the user"})
    assert none == 0 and same["text"].startswith("AWSBHT001E")


@pytest.fixture
def hwa_scenario() -> dict[str, Any]:
    return hostile_demo()


def test_the_llm_reads_the_planted_instruction_neutralized(hwa: Any, kb: Any, ask: Any, fake_llm: Any) -> None:
    fake_llm.script = [Reply(tool_calls=[("job_log", {"job": "FP_CALC_FOLHA"})]), Reply(text="O log mostra o erro [1].")]
    ask("por que o FP_CALC_FOLHA falhou?")
    tool_message = [m for m in fake_llm.requests[1]["body"]["messages"] if m["role"] == "tool"][-1]
    data = json.loads(tool_message["content"])
    assert data["data"]["flagged_instructions"] == 1
    assert "ignore previous instructions" not in tool_message["content"] and validation.NEUTRALIZED in tool_message["content"]


def test_dangerous_operations_go_to_four_eyes(hwa: Any, kb: Any, ask: Any, fake_llm: Any) -> None:
    from chat.models import ActionProposal

    def job(critical: bool) -> Any:
        return type("J", (), {"critical": critical})()

    assert validation.action_verdict(action="cancel", jobs=[job(False), job(False)]).four_eyes
    assert validation.action_verdict(action="kill", jobs=[job(True)]).four_eyes
    assert not validation.action_verdict(action="cancel", jobs=[job(False)]).four_eyes
    assert not validation.action_verdict(action="rerun", jobs=[job(False), job(False)]).four_eyes
    from jobs.models import JobInstance

    # Two waiting, non-critical jobs with unique names: both hold and cancel apply to them.
    waiting = list(JobInstance.objects.filter(in_plan=True, status__in=["READY", "HOLD", "WAIT"], critical=False)
                   .values_list("name", flat=True))
    a, b = [n for n in dict.fromkeys(waiting) if waiting.count(n) == 1][:2]
    for action, question in (("hold", f"segura o {a} e o {b}"), ("cancel", f"cancela o {a} e o {b}")):
        fake_llm.script = [Reply(tool_calls=[("propose_action", {"action": action, "jobs": [a, b]})]), Reply(text="Proposta.")]
        ask(question)
    hold, cancel = ActionProposal.objects.get(action="hold"), ActionProposal.objects.get(action="cancel")
    assert len(cancel.jobs) == 2 and cancel.high_risk and not hold.high_risk
