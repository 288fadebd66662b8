"""The chat end to end: a real daphne server socket, a real websocket client, turns on a real
Celery worker (Redis broker and channel layer), the mock HWA and the sample knowledge base."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from django.test import Client

from chat.tests.conftest import hwa, hwa_scenario, kb, kb_index  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def live_server_url(transactional_db: Any) -> Iterator[str]:
    """daphne in its own process (not a fork of this multi-threaded one) on the test database."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    from django.db import connection

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from django.conf import settings

    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
           "LOG_LEVEL": "warning"}
    if settings.TWS_URL:  # the mock HWA this test started (pages that read job logs call it)
        env.update({"TWS_URL": settings.TWS_URL, "TWS_USERNAME": settings.TWS_USERNAME, "TWS_PASSWORD": settings.TWS_PASSWORD})
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "resync_site.asgi:application"],
                              cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("daphne did not start") from None
            time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def celery_worker_running(django_db_setup: Any) -> Iterator[None]:
    """A Celery worker (threads) in this process, for the one test that asks for it.

    Never longer: other tests use the suite's Redis database too (one empties it, others run the
    Procfile's workers on it), and a worker left running beside them takes their messages, or hangs
    in its shutdown on a task of theirs."""
    from celery.contrib.testing.worker import start_worker

    import chat.tasks  # noqa: F401  (registers the tasks with the app before the worker starts)
    from resync_site.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False  # turns go through Redis to the worker, as in production

    with app.connection_for_write() as conn:
        conn.default_channel.queue_declare("chat", durable=True, auto_delete=False)
        conn.default_channel.queue_purge("chat")
    try:
        with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, queues=["chat"], shutdown_timeout=10):
            yield
    finally:
        app.conf.task_always_eager = previous


def _session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def _until(ws: Any, kind: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    events = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        events.append(event)
        if event["type"] == kind:
            return events


def test_chat_over_a_real_socket_with_a_celery_worker(hwa, kb, live_server_url, celery_worker_running, operator) -> None:  # noqa: F811
    cookie = _session_cookie(operator)
    url = f"ws://{live_server_url}/ws/chat/"
    origin = f"http://{live_server_url}"

    async def scenario() -> None:
        async with websockets.connect(url, origin=origin, additional_headers={"Cookie": cookie}) as ws:
            await ws.send(json.dumps({"type": "message", "text": "por que o FP_CALC_FOLHA falhou?", "ref": "a"}))
            events = await _until(ws, "done")
            assert events[0]["type"] == "ack"
            text = "".join(e["text"] for e in events if e["type"] == "token")
            assert "FOL-0012" in text and "KB-0003" in text
            assert {e["kind"] for e in events if e["type"] == "citation"} == {"plan", "joblog", "kb"}
            cited_log.extend(e for e in events if e["type"] == "citation" and e["kind"] == "joblog")
            conversation_id = events[0]["conversation_id"]
            # A second question; the client drops right after the ack.
            await ws.send(json.dumps({"type": "message", "text": "what depends on FP_CALC_FOLHA?", "conversation_id": conversation_id}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert ack["type"] == "ack"
            seen = max(e.get("seq", 0) for e in events)

        # Reconnect and continue from the last event seen.
        async with websockets.connect(url, origin=origin, additional_headers={"Cookie": cookie}) as ws:
            await ws.send(json.dumps({"type": "resume", "conversation_id": conversation_id, "after": seen}))
            resumed = await _until(ws, "done")
            assert resumed[0]["type"] == "ack"
            assert any(e["type"] == "question" and e["text"] == "what depends on FP_CALC_FOLHA?" for e in resumed)
            assert resumed[-1]["turn_id"] == ack["turn_id"]
            assert all(e.get("seq", seen + 1) > seen for e in resumed[1:])

        # Without a session cookie the socket is closed with 4401.
        async with websockets.connect(url, origin=origin) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd.code == 4401

    cited_log: list[dict[str, Any]] = []
    asyncio.run(scenario())

    # A job-log citation opens the jobs app's log viewer with the cited lines marked.
    first, last = cited_log[0]["lines"]
    assert cited_log[0]["url"].startswith("/jobs/") and f"/log/?from={first}&to={last}#L{first}" in cited_log[0]["url"]
    viewer = httpx.get(f"http://{live_server_url}{cited_log[0]['url'].split('#')[0]}", headers={"Cookie": cookie}, timeout=30)
    assert viewer.status_code == 200
    assert f'<tr id="L{first}" class="failure cited"' in viewer.text or f'<tr id="L{first}" class=" cited"' in viewer.text
    assert f'id="L{last + 1}" class=" cited"' not in viewer.text

    # The page itself: served by the same server, scripts only from static files.
    response = httpx.get(f"http://{live_server_url}/chat/", headers={"Cookie": cookie}, timeout=30)
    assert response.status_code == 200
    assert 'data-ws-path="/ws/chat/"' in response.text and "js/chat.js" in response.text
    assert "<script>" not in response.text and "'unsafe-inline'" not in response.headers.get("Content-Security-Policy", "")
    assert httpx.get(f"http://{live_server_url}/static/js/chat.js", timeout=30).status_code == 200
