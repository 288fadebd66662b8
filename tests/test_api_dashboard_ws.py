"""The dashboard websocket through the full ASGI stack (origin check, session auth, routing) and
the real Redis channel layer: live diffs after a poll, catch-up after a reconnect, HWA outages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from resync_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def plan(settings: Any) -> Iterator[Any]:
    from jobs.poll import plan_poll
    from jobs.tws.mock.auth import MOCK_PASSWORD, MOCK_USERNAME
    from jobs.tws.mock.server import MockHwaServer

    server = MockHwaServer(scenario="demo", port=0, speed=0.0).start()
    settings.TWS_URL = server.url
    settings.TWS_USERNAME = MOCK_USERNAME
    settings.TWS_PASSWORD = MOCK_PASSWORD
    settings.TWS_API_KEY = ""
    settings.TWS_TIMEOUT_SECONDS = 2.0
    assert plan_poll().ok
    yield server
    server.stop()


def _session(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _socket(session: str | None = None, origin: bytes = b"http://127.0.0.1") -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"127.0.0.1")]
    if session:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    return WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)


def _advance_and_poll(server: Any, seconds: float) -> Any:
    import httpx

    from jobs.poll import plan_poll

    httpx.post(f"{server.url}/mock/control/advance", json={"seconds": seconds}, timeout=5).raise_for_status()
    return plan_poll()


def _snapshot(user: Any) -> dict[str, Any]:
    client = Client()
    client.force_login(user)
    return client.get("/api/dashboard/").json()


async def _next(ws: WebsocketCommunicator, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    while True:
        event = await ws.receive_json_from(timeout=timeout)
        if event["type"] == kind:
            return event


async def _refused_with(ws: WebsocketCommunicator) -> int:
    connected, code = await ws.connect()
    if not connected:
        return code
    return (await ws.receive_output())["code"]


async def test_only_operations_roles_from_our_origin_may_connect(plan: Any, reviewer: Any, operator: Any) -> None:
    assert await _refused_with(_socket()) == 4401
    assert await _refused_with(_socket(await database_sync_to_async(_session)(reviewer))) == 4403
    connected, _ = await _socket(await database_sync_to_async(_session)(operator), origin=b"http://evil.example").connect()
    assert not connected


async def test_a_status_change_seen_by_the_poll_reaches_the_dashboard(plan: Any, operator: Any) -> None:
    ws = _socket(await database_sync_to_async(_session)(operator))
    assert (await ws.connect())[0]
    hello = await _next(ws, "hello")
    snapshot = await database_sync_to_async(_snapshot)(operator)
    assert hello["seq"] == snapshot["seq"], "the hello and the API agree on where the page starts"
    result = await database_sync_to_async(_advance_and_poll)(plan, 1800)
    assert result.ok and result.status_changes > 0
    diff = await _next(ws, "diff")
    assert diff["seq"] == hello["seq"] + 1
    assert diff["changes"] and {"id", "name", "stream", "folder", "workstation", "status", "previous_status"} <= set(diff["changes"][0])
    folders = await database_sync_to_async(_folders_by_id)()
    assert all(c["folder"] == folders[c["id"]] for c in diff["changes"]), "a diff says each job's folder, as the snapshot does"
    assert sum(diff["counts"].values()) == 40
    await ws.send_json_to({"type": "ping"})
    assert (await _next(ws, "pong"))["type"] == "pong"
    await ws.send_to(text_data="not json")
    assert (await _next(ws, "error"))["code"] == "bad_frame"
    await ws.disconnect()


def _folders_by_id() -> dict[str, str]:
    from jobs.models import JobInstance

    return dict(JobInstance.objects.values_list("hwa_id", "folder"))


async def test_a_dashboard_filtered_by_folder_gets_what_it_needs_to_apply_diffs(plan: Any, operator: Any) -> None:
    """The page filters live diffs itself (dashboard.js `matches`): the filtered snapshot and the
    events it applies on top must agree on each job's folder."""
    ws = _socket(await database_sync_to_async(_session)(operator))
    assert (await ws.connect())[0]
    hello = await _next(ws, "hello")
    client = await database_sync_to_async(_logged_in)(operator)
    snapshot = (await database_sync_to_async(client.get)("/api/dashboard/?folder=/TI/")).json()
    assert snapshot["seq"] == hello["seq"] and snapshot["filters"]["folder"] == "/TI/"
    assert sum(snapshot["counts"].values()) == 7
    result = await database_sync_to_async(_advance_and_poll)(plan, 3600)
    assert result.ok and result.status_changes > 0
    diff = await _next(ws, "diff")
    ti = [c for c in diff["changes"] if c["folder"] == "/TI/"]
    assert ti and len(ti) < len(diff["changes"]), "the night moves jobs in /TI/ and elsewhere"
    # What the page computes for its filtered counts from the diff equals a fresh filtered snapshot.
    counts = dict(snapshot["counts"])
    for change in ti:
        counts[change["previous_status"]] -= 1
        counts[change["status"]] = counts.get(change["status"], 0) + 1
    fresh = (await database_sync_to_async(client.get)("/api/dashboard/?folder=/TI/")).json()
    assert {k: v for k, v in counts.items() if v} == fresh["counts"]
    bad = await database_sync_to_async(client.get)("/api/dashboard/?folder=/FIN ANCEIRO/")
    assert bad.status_code == 400 and "folder" in bad.json()
    await ws.disconnect()


def _logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def test_a_reconnecting_dashboard_catches_up_from_the_api(plan: Any, operator: Any) -> None:
    session = await database_sync_to_async(_session)(operator)
    ws = _socket(session)
    assert (await ws.connect())[0]
    seen = (await _next(ws, "hello"))["seq"]
    await ws.disconnect()  # the network blip: events published now reach nobody
    before = {j["id"]: j["status"] for j in (await database_sync_to_async(_snapshot)(operator))["timeline"]}
    assert (await database_sync_to_async(_advance_and_poll)(plan, 3600)).status_changes > 0
    ws = _socket(session)
    assert (await ws.connect())[0]
    hello = await _next(ws, "hello")
    assert hello["seq"] > seen, "the page learns it missed events, so it refetches the snapshot"
    snapshot = await database_sync_to_async(_snapshot)(operator)
    assert snapshot["seq"] == hello["seq"]
    after = {j["id"]: j["status"] for j in snapshot["timeline"]}
    assert after != before, "the refetched snapshot holds what happened while the page was offline"
    await ws.disconnect()


async def test_hwa_outage_and_recovery_are_pushed(plan: Any, operator: Any) -> None:
    import httpx

    from jobs.poll import plan_poll

    ws = _socket(await database_sync_to_async(_session)(operator))
    assert (await ws.connect())[0]
    await _next(ws, "hello")
    httpx.post(f"{plan.url}/mock/control/faults", json={"outage_seconds": 60}, timeout=5).raise_for_status()
    assert not (await database_sync_to_async(plan_poll)()).ok
    down = await _next(ws, "hwa_status")
    assert down["stale"] is True and down["message"]
    httpx.post(f"{plan.url}/mock/control/faults/clear", json={}, timeout=5).raise_for_status()
    await database_sync_to_async(_reset_breaker)()
    assert (await database_sync_to_async(plan_poll)()).ok
    up = await _next(ws, "hwa_status")
    assert up["stale"] is False and up["seq"] > down["seq"]
    await ws.disconnect()


def _reset_breaker() -> None:
    from jobs.tws.client import get_client

    client = get_client()
    if hasattr(client.breaker, "reset"):
        client.breaker.reset()
