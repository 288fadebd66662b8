"""The production topology on one machine: `honcho start` on the Procfile (two web processes, the
chat and background Celery workers, beat, the mock HWA) against PostgreSQL and a private Redis,
driven through its sockets like a browser would: a chat turn, an action confirmed in the chat, and
the live status change it causes reaching a dashboard open on the *other* web process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import PASSWORD
from tests.topology.client import answer, ask, connect, production_password, stack_for_test, until
from tests.topology.fixtures import private_redis  # noqa: F401  (fixture)
from tests.topology.stack import PrivateRedis, Stack, sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def topology(private_redis: PrivateRedis, operator: Any, transactional_db: Any) -> Iterator[Stack]:  # noqa: F811
    production_password(operator, PASSWORD)
    stack = stack_for_test(private_redis.url, web=2)
    stack.prepare()
    try:
        stack.start_with_honcho()
        yield stack
    except BaseException:
        print(stack.tail())
        raise
    finally:
        stack.stop()


def test_chat_action_and_live_status_through_the_production_process_set(topology: Stack, operator: Any) -> None:
    web1, web2 = topology.urls
    cookie = sign_in(web1, operator.username, PASSWORD)  # a session made by one web process...

    async def scenario() -> None:
        # ...is honoured by the other: the dashboard socket lives on web 2, the chat on web 1.
        async with connect(web2, "/ws/dashboard/", cookie) as dashboard, connect(web1, "/ws/chat/", cookie) as chat:
            hello = json.loads(await asyncio.wait_for(dashboard.recv(), 10))
            assert hello["type"] == "hello"

            # A chat turn, run by the chat worker (no LLM configured: the no-LLM mode answers).
            events = await ask(chat, "por que o FP_CALC_FOLHA falhou?")
            assert events[0]["type"] == "ack" and events[-1]["type"] == "done", events[-1]
            assert events[-1]["model"] == "no-llm"
            assert "FP_CALC_FOLHA" in answer(events) and "12" in answer(events)  # the abend's return code
            conversation_id = events[0]["conversation_id"]

            # An action: proposed by the turn, confirmed by the person, carried out against HWA.
            events = await ask(chat, "reexecutar FP_CALC_FOLHA", conversation_id=conversation_id)
            proposal = next(e for e in events if e["type"] == "action_proposal")
            assert proposal["action"] == "rerun" and proposal["jobs"][0]["name"] == "FP_CALC_FOLHA"
            await chat.send(json.dumps({"type": "confirm_action", "proposal_id": proposal["proposal_id"],
                                        "justification": "smoke test of the production topology"}))
            result = (await until(chat, "action_result", timeout=30))[-1]
            assert result["ok"] is True, result

            # The live status change reaches the dashboard on the other web process.
            diff = (await until(dashboard, lambda e: e["type"] == "diff" and any(
                c["name"] == "FP_CALC_FOLHA" for c in e["changes"]), timeout=30))[-1]
            change = next(c for c in diff["changes"] if c["name"] == "FP_CALC_FOLHA")
            assert change["previous_status"] == "ABEND" and change["status"] != "ABEND"

    asyncio.run(scenario())

    # HWA saw exactly one rerun, with the justification the person typed.
    state = httpx.get(f"{topology.mock_url}/mock/control/state", timeout=5).json()
    reruns = [a for a in state["actions"] if a.get("action") == "rerun"]
    assert len(reruns) == 1 and "smoke test" in json.dumps(reruns[0])
    # Both web processes serve pages (as behind the TLS proxy) and hashed static files.
    for url in topology.urls:
        page = httpx.get(f"{url}/dashboard/", headers={"Cookie": cookie, "X-Forwarded-Proto": "https"}, timeout=10)
        assert page.status_code == 200 and "Strict-Transport-Security" in page.headers
        static = httpx.get(f"{url}/static/js/chat.js", timeout=10)
        assert static.status_code == 200 and "max-age" in static.headers.get("Cache-Control", "")
