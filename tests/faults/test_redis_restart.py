"""Redis restarted under the production process set, during chat and polling: the web keeps serving,
websockets reconnect, Celery reconnects, and no chat turn or status event is lost or duplicated.

Not covered, because it cannot pass with a Redis that keeps nothing: a task a worker has received
but not yet acknowledged at the instant Redis loses its data is gone with it (and kombu 5.7 then
exits the worker, which the Procfile's loop restarts). Production Redis for the broker keeps an
append-only file (docs/production.md), so the unacknowledged task is restored instead.

The stack (tests/topology/stack.py) runs the Procfile's web, chat worker, background worker, beat
and mock HWA processes against the test database and a Redis server of this test's own, which is
stopped and started again (it keeps nothing: `--save "" --appendonly no`, like a crashed cache).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import PASSWORD
from tests.topology.client import ask, connect, production_password, stack_for_test, until
from tests.topology.fixtures import private_redis  # noqa: F401  (fixture)
from tests.topology.stack import PrivateRedis, Stack, sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def stack(private_redis: PrivateRedis, operator: Any, transactional_db: Any) -> Iterator[Stack]:  # noqa: F811
    production_password(operator, PASSWORD)
    # A fast simulated clock, so the plan keeps changing and every poll has status events to send.
    stack = stack_for_test(private_redis.url, web=1, mock_speed=120, poll_seconds=1)
    stack.prepare()
    try:
        yield stack.start()
    except BaseException:
        print(stack.tail(60))
        raise
    finally:
        stack.stop()


async def _diffs(ws: Any, seconds: float) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.05, end - loop.time())))
        except TimeoutError:
            break
        if frame["type"] in ("diff", "hwa_status"):
            frames.append(frame)
    return frames


def test_redis_restart_during_chat_and_polling(stack: Stack, private_redis: PrivateRedis, operator: Any) -> None:  # noqa: F811
    (web,) = stack.urls
    cookie = sign_in(web, operator.username, PASSWORD)
    during: dict[str, Any] = {}

    async def scenario() -> None:
        async with connect(web, "/ws/chat/", cookie) as chat, connect(web, "/ws/dashboard/", cookie) as dashboard:
            json.loads(await dashboard.recv())  # hello
            before = await ask(chat, "status do FP_CALC_FOLHA?")
            assert before[-1]["type"] == "done", before[-1]
            conversation = before[0]["conversation_id"]
            seen = await _diffs(dashboard, 3)
            assert seen, "no live status event before the restart"

            # A question answered just before Redis goes away for two seconds.
            answered = await ask(chat, "o que abendou hoje à noite?", conversation_id=conversation)
            assert answered[-1]["type"] == "done", answered[-1]
            private_redis.stop()
            started = time.monotonic()
            with httpx.Client(base_url=web, headers={"Cookie": cookie}, timeout=5) as http:
                while time.monotonic() - started < 2:
                    # The web keeps serving what does not need Redis (sessions live in PostgreSQL).
                    assert http.get("/healthz").status_code == 200
                    assert http.get("/dashboard/").status_code == 200
                    await asyncio.sleep(0.2)
                ready = http.get("/readyz")
                during["readyz"] = (ready.status_code, ready.json()["status"])
            private_redis.start()

        # Websockets reconnect (a browser's page does this by itself) and catch up.
        async with connect(web, "/ws/chat/", cookie) as chat, connect(web, "/ws/dashboard/", cookie) as dashboard:
            hello = json.loads(await asyncio.wait_for(dashboard.recv(), 10))
            assert hello["type"] == "hello" and hello["seq"] >= seen[-1]["seq"]
            # Celery reconnected: a new question is answered by the chat worker.
            after = await ask(chat, "status do FP_ENVIA_BANCO?", conversation_id=conversation, timeout=60)
            assert after[-1]["type"] == "done", after[-1]
            # Polling resumed and its events reach the dashboard again: numbered one by one from
            # the hello on, so none was lost in between and none came twice.
            frames = await _diffs(dashboard, 6)
            assert any(f["type"] == "diff" for f in frames), "no live status event after the restart"
            seqs = [f["seq"] for f in frames]
            assert seqs == list(range(hello["seq"] + 1, hello["seq"] + 1 + len(seqs))), seqs

            # The whole conversation, replayed from the database: every question asked once, every
            # turn finished exactly once.
            await chat.send(json.dumps({"type": "resume", "conversation_id": conversation, "after": 0}))
            ack = (await until(chat, "ack", timeout=10))[-1]
            replay = [json.loads(await asyncio.wait_for(chat.recv(), 10)) for _ in range(ack["replaying"])]

        questions = [e["text"] for e in replay if e["type"] == "question"]
        assert sorted(questions) == sorted(["status do FP_CALC_FOLHA?", "o que abendou hoje à noite?",
                                            "status do FP_ENVIA_BANCO?"]), questions
        done = [e["turn_id"] for e in replay if e["type"] == "done"]
        assert len(done) == len(set(done)) == 3, [e["type"] for e in replay]
        seqs = [e["seq"] for e in replay]
        assert seqs == sorted(set(seqs))

    asyncio.run(asyncio.wait_for(scenario(), 150))
    assert during["readyz"] == (503, "unavailable")  # the load balancer is told, the process stays up



def test_a_question_sent_while_redis_is_down_is_not_lost(stack: Stack, private_redis: PrivateRedis, operator: Any) -> None:  # noqa: F811
    (web,) = stack.urls
    cookie = sign_in(web, operator.username, PASSWORD)

    async def scenario() -> None:
        async with connect(web, "/ws/chat/", cookie) as chat:
            first = await ask(chat, "status do FP_CALC_FOLHA?")
            conversation = first[0]["conversation_id"]
            private_redis.stop()
            await chat.send(json.dumps({"type": "message", "text": "o que abendou hoje à noite?",
                                        "conversation_id": conversation}))
            await asyncio.sleep(1)
            private_redis.start()
        async with connect(web, "/ws/chat/", cookie) as chat:
            # Answered once Redis is back (or refused at once): either way the conversation goes on.
            after = await ask(chat, "status do FP_ENVIA_BANCO?", conversation_id=conversation, timeout=60)
            assert after[-1]["type"] == "done", after[-1]

    asyncio.run(asyncio.wait_for(scenario(), 120))
