"""Time windows on list questions: read from Portuguese and English questions without an LLM, taken
as a tool parameter by the LLM's plan_query, bounded by the validation service (each rule with an
accepted and a refused case, refusals audited) and applied to the plan snapshot query."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from chat.agent import validation
from chat.agent.intents import Intent, recognize, time_window
from chat.agent.tools import PlanQueryArgs, ToolContext, tool_run, tool_schemas
from chat.models import Conversation, Turn
from chat.testing import Reply
from chat.tests.conftest import answer_of, tools_of

SP = ZoneInfo("America/Sao_Paulo")
NIGHT = datetime(2026, 11, 25, 2, 30, tzinfo=SP)  # the demo night's clock


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SP)


# --- the intent parser ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "since", "until"),
    [
        ("what abended in the last 6 hours?", _at(24, 20, 30), NIGHT),
        ("which jobs failed in the past 2h?", _at(25, 0, 30), NIGHT),
        ("anything crash in the last hour?", _at(25, 1, 30), NIGHT),
        ("what failed over the last 2 days?", _at(23, 2, 30), NIGHT),
        ("o que abendou nas últimas 6 horas?", _at(24, 20, 30), NIGHT),
        ("quais jobs caíram na última hora?", _at(25, 1, 30), NIGHT),
        ("o que falhou nos últimos 30 minutos?", _at(25, 2, 0), NIGHT),
        ("o que falhou nas seis últimas horas?", _at(24, 20, 30), NIGHT),
        ("what failed tonight?", _at(24, 18), NIGHT),
        ("o que abendou esta noite?", _at(24, 18), NIGHT),
        ("o que abendou hoje à noite?", _at(24, 18), NIGHT),
        ("what failed last night?", _at(24, 18), NIGHT),
        ("o que caiu ontem à noite?", _at(24, 18), NIGHT),
        ("o que falhou desde as 22h?", _at(24, 22), NIGHT),
        ("o que falhou desde às 22:00?", _at(24, 22), NIGHT),
        ("o que falhou desde as 22?", _at(24, 22), NIGHT),
        ("jobs com erro a partir das 23h30", _at(24, 23, 30), NIGHT),
        ("what abended since 22:00?", _at(24, 22), NIGHT),
        ("what failed since 10pm?", _at(24, 22), NIGHT),
        ("what failed since midnight?", _at(25, 0), NIGHT),
        ("o que falhou hoje?", _at(25, 0), NIGHT),
        ("what failed yesterday?", _at(24, 0), _at(25, 0)),
        ("o que falhou desde ontem?", _at(24, 0), NIGHT),
    ],
)
def test_windows_in_portuguese_and_english_questions(question: str, since: datetime, until: datetime) -> None:
    asked = recognize(question).window
    assert asked is not None, question
    window = asked.resolve(NIGHT)
    assert (window.since, window.until) == (since, until)
    assert recognize(question).intent is Intent.FAILURES or question.startswith("jobs com erro")


def test_tonight_is_the_batch_night_whenever_it_is_asked() -> None:
    tonight = time_window("what failed tonight?")
    assert tonight is not None
    morning = tonight.resolve(_at(25, 10))  # asked the next morning: the night that just ended
    assert (morning.since, morning.until) == (_at(24, 18), _at(25, 8))
    evening = tonight.resolve(_at(25, 21))  # asked in the evening: the night that began at 18:00
    assert (evening.since, evening.until) == (_at(25, 18), _at(25, 21))
    # "Since 23h" asked at 22:30 is yesterday's 23:00, never a time still to come.
    since = time_window("desde as 23h")
    assert since is not None and since.resolve(_at(25, 22, 30)).since == _at(24, 23)


@pytest.mark.parametrize("question", ["status do FP_CALC_FOLHA", "why did CARGA_DW fail?", "from 3 streams, which failed?",
                                      "what failed since 2 days ago?", "falhou depois de 2 tentativas",
                                      "o que falhou desde 20/11?", "como resolver AWSBHT001E?"])
def test_no_window_where_none_was_asked(question: str) -> None:
    assert time_window(question) is None


# --- the validation rules ----------------------------------------------------------------------------


def _window(**kwargs: Any) -> Any:
    return validation.window_resolve(now=NIGHT, **kwargs)


def _refused(rule: str, **kwargs: Any) -> str:
    with pytest.raises(validation.ValidationRefused) as refused:
        _window(**kwargs)
    assert refused.value.rule == rule, refused.value.message
    return refused.value.message


def test_window_size_is_bounded() -> None:
    assert _window(last_hours=6).since == NIGHT - timedelta(hours=6)
    assert _window(last_hours=168).since == NIGHT - timedelta(days=7)
    assert "168 hours" in _refused("syntax.window", last_hours=169)
    _refused("syntax.window", last_hours=0)
    _refused("syntax.window", last_hours=-3)
    _refused("syntax.window", last_hours=float("inf"))
    assert _window(since="2026-11-18T03:00").since == _at(18, 3)
    assert "at most 168 hours" in _refused("syntax.window", since="2026-11-10T00:00")
    _refused("syntax.window", last_hours=6, since="22:00")  # one way of saying it at a time


def test_windows_never_reach_into_the_future() -> None:
    assert _window(since="2026-11-25T02:00", until="2026-11-25T02:33").until == NIGHT  # clock skew: still now
    assert "future" in _refused("syntax.window_future", since="2026-11-25T03:00")
    _refused("syntax.window_future", since="22:00", until="2026-11-26T00:00")
    # A time of day is its latest occurrence: "since 23:00" at 02:30 is last night's.
    assert _window(since="23:00").since == _at(24, 23)


def test_windows_start_before_they_end() -> None:
    window = _window(since="22:00", until="23:30")
    assert (window.since, window.until) == (_at(24, 22), _at(24, 23, 30))
    assert "after it ends" in _refused("syntax.window_order", since="2026-11-25T01:00", until="2026-11-25T00:00")


def test_window_times_must_be_times() -> None:
    assert _window(since="2026-11-24T22:00:00-03:00").since == _at(24, 22)
    assert _window(since="2026-11-24").since == _at(24, 0)  # a date: its midnight, in the site's time zone
    assert _window(since="22h30").since == _at(24, 22, 30)
    for bad in ("ontem", "25:00", "22:00; DROP TABLE", "2026-13-01"):
        assert "not a time" in _refused("syntax.window_format", since=bad)


def test_no_window_asked_is_no_window() -> None:
    assert _window() is None
    assert validation.window_of(PlanQueryArgs(failed_only=True)) is None


# --- applied to the plan snapshot ----------------------------------------------------------------------


_ids = count(1)


def _job(name: str, status: str, *, ended: timedelta | None = None, started: timedelta | None = None) -> Any:
    from jobs.models import JobInstance

    now = timezone.now()
    n = next(_ids)
    if ended is not None:
        started = ended + timedelta(minutes=5)
    return JobInstance.objects.create(
        hwa_id=f"tw-{n}", name=name, stream_name="JANELA", workstation="PRD_LNX01", status=status, fingerprint=str(n),
        started_at=now - started if started is not None else None, ended_at=now - ended if ended is not None else None,
        sched_time=now - timedelta(hours=30),
    )


@pytest.fixture
def night(db: Any) -> None:
    """Failures two and ten hours ago, one running since an hour ago, one never started."""
    _job("JOB_RECENTE", "ABEND", ended=timedelta(hours=2))
    _job("JOB_ANTIGO", "ABEND", ended=timedelta(hours=10))
    _job("JOB_RODANDO", "EXEC", started=timedelta(hours=1))
    _job("JOB_ESPERANDO", "HOLD")


def _ctx(user: Any, question: str = "o que abendou?") -> ToolContext:
    conversation = Conversation.objects.create(user=user)
    turn = Turn.objects.create(conversation=conversation, user=user, question=question)
    return ToolContext(user=user, conversation_id=conversation.id, turn_id=turn.id, question=question, language="pt")


def _names(result: Any) -> set[str]:
    return {j["name"] for j in result.data["jobs"]}


def test_plan_query_applies_the_window_to_the_snapshot(night: None, operator: Any) -> None:
    assert _names(tool_run("plan_query", {"failed_only": True}, _ctx(operator))) == {"JOB_RECENTE", "JOB_ANTIGO"}
    recent = tool_run("plan_query", {"failed_only": True, "last_hours": 6}, _ctx(operator))
    assert not recent.error and _names(recent) == {"JOB_RECENTE"}
    assert recent.data["window"]["since"] and "between" in recent.summary
    since = (timezone.localtime() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    assert _names(tool_run("plan_query", {"since": since}, _ctx(operator))) == {"JOB_RECENTE", "JOB_RODANDO"}


def test_a_refused_window_is_audited_and_lists_nothing(night: None, operator: Any) -> None:
    ctx = _ctx(operator)
    result = tool_run("plan_query", {"failed_only": True, "last_hours": 24 * 30}, ctx)
    assert result.error == "refused" and "168 hours" in result.data["error"] and "jobs" not in result.data
    event = AuditEvent.objects.get(action=AuditAction.VALIDATION_REFUSED)
    assert event.actor_id == operator.pk and event.outcome == "refused"
    assert event.details["rule"] == "syntax.window" and event.details["arguments"]["last_hours"] == 720
    future = (timezone.localtime() + timedelta(hours=2)).isoformat()
    assert tool_run("plan_query", {"until": future}, ctx).error == "refused"
    assert AuditEvent.objects.filter(action=AuditAction.VALIDATION_REFUSED).latest("id").details["rule"] == "syntax.window_future"


def test_no_llm_answers_apply_the_window_the_person_asked_for(night: None, ask: Any) -> None:
    pt = ask("o que abendou nas últimas 6 horas?")
    assert tools_of(pt) == [("plan_query", {"failed_only": True, "limit": 20, "last_hours": 6.0})]
    assert "JOB_RECENTE" in answer_of(pt) and "JOB_ANTIGO" not in answer_of(pt) and "Período:" in answer_of(pt)
    en = ask("what abended in the last 12 hours?")
    assert "JOB_RECENTE" in answer_of(en) and "JOB_ANTIGO" in answer_of(en) and "Time window:" in answer_of(en)
    # A run that began an hour ago and goes on was running in the last 30 minutes too.
    running = ask("what has been running in the last 30 minutes?")
    assert "JOB_RODANDO" in answer_of(running) and "JOB_RECENTE" not in answer_of(running)


def test_no_llm_answers_say_when_the_window_is_refused(night: None, ask: Any) -> None:
    turn = ask("o que falhou nos últimos 10 dias?")
    assert "Pedido recusado pela validação" in answer_of(turn) and "168 hours" in answer_of(turn)
    event = AuditEvent.objects.get(action=AuditAction.VALIDATION_REFUSED)
    assert event.details["rule"] == "syntax.window" and event.details["turn_id"] == str(turn.id)


def test_the_llm_gets_the_window_as_a_tool_parameter(night: None, ask: Any, fake_llm: Any) -> None:
    parameters = next(t for t in tool_schemas() if t["function"]["name"] == "plan_query")["function"]["parameters"]
    assert {"last_hours", "since", "until"} <= set(parameters["properties"])
    fake_llm.script = [Reply(tool_calls=[("plan_query", {"failed_only": True, "last_hours": 6}),
                                         ("plan_query", {"failed_only": True, "last_hours": 500})]),
                       Reply(text="JOB_RECENTE abendou [1].")]
    turn = ask("o que abendou nas últimas 6 horas?")
    calls = {c.arguments["last_hours"]: c for c in turn.tool_calls.all()}
    assert calls[6].result["total"] == 1 and not calls[6].error
    assert calls[500].error == "refused"
    tool_messages = [json.loads(m["content"]) for m in fake_llm.requests[1]["body"]["messages"] if m["role"] == "tool"]
    assert tool_messages[0]["data"]["window"]["since"] and "168 hours" in tool_messages[1]["data"]["error"]
