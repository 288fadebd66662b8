"""Cached live reads: many operators asking about the same failure cost HWA one call, and cached
answers say how old they are; list questions never call HWA."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from chat.agent.tools import ToolContext, tool_run
from chat.models import Conversation, Turn


def _hwa_requests(hwa: Any) -> int:
    # Counted at the mock itself (its control endpoint), not in our client.
    with urllib.request.urlopen(f"{hwa.url}/mock/control/state", timeout=5) as response:  # noqa: S310 - local mock
        return int(json.load(response)["requests"])


def _ctx(user: Any) -> ToolContext:
    conversation = Conversation.objects.create(user=user)
    turn = Turn.objects.create(conversation=conversation, user=user, question="log")
    return ToolContext(user=user, conversation_id=conversation.id, turn_id=turn.id, question="log", language="pt")


def test_the_second_identical_live_read_is_served_from_the_cache(hwa: Any, operator: Any, supervisor: Any) -> None:
    from django.core.cache import cache

    cache.clear()
    before = _hwa_requests(hwa)
    first = tool_run("job_log", {"job": "FP_CALC_FOLHA"}, _ctx(operator))
    after_first = _hwa_requests(hwa)
    second = tool_run("job_log", {"job": "FP_CALC_FOLHA"}, _ctx(supervisor))
    after_second = _hwa_requests(hwa)
    assert after_first - before == 1 and after_second == after_first  # HWA called once for both operators
    assert first.data["lines"] == second.data["lines"]
    assert not first.data["cached"] and "ago" not in first.summary
    assert second.data["cached"] and f"read from HWA {second.data['age_seconds']} s ago" in second.summary


def test_list_questions_are_answered_from_the_snapshot(hwa: Any, operator: Any) -> None:
    before = _hwa_requests(hwa)
    result = tool_run("plan_query", {"failed_only": True}, _ctx(operator))
    assert result.data["total"] > 0 and _hwa_requests(hwa) == before


def test_a_cached_answer_says_how_old_the_log_is(hwa: Any, ask: Any, kb: Any) -> None:
    from django.core.cache import cache

    from chat.tests.conftest import answer_of

    cache.clear()
    first = ask("mostra o log do FP_CALC_FOLHA")
    second = ask("mostra o log do FP_CALC_FOLHA")
    assert "lido do HWA há" not in answer_of(first)
    assert "lido do HWA há" in answer_of(second)


def test_a_burst_of_identical_reads_costs_one_call(settings: Any) -> None:
    import threading
    import time
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from chat.agent import sources

    calls = []
    lock = threading.Lock()

    def slow_read() -> list[str]:
        with lock:
            calls.append(1)
        time.sleep(0.3)  # a slow HWA: every operator arrives while the first read is in flight
        return ["line 1", "ORA-19502 line 2"]

    key = f"chat:test:{uuid.uuid4().hex}"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: sources._live_read(key, slow_read, span_name="hwa.test"), range(8)))
    assert len(calls) == 1
    assert all(r.value == ["line 1", "ORA-19502 line 2"] for r in results)
    assert sum(not r.cached for r in results) == 1
