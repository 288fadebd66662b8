"""The Redis channel layer of the web processes: a socket that closes never takes another's message.

Every websocket of a web process receives through one Redis list per process. Upstream
channels_redis lets whichever consumer is waiting first run the blocking pop for all of them; when
that consumer's socket closes, its pop is cancelled on our side but not in Redis, and the message it
then takes (for another socket) is gone: an operator's answer stopped halfway, its `done` never came
(bench/chat.py showed it; channels_redis issue #366).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis channel layer needs REDIS_URL")


def _layer():
    config = settings.CHANNEL_LAYERS["default"]
    return import_string(config["BACKEND"])(**{**config["CONFIG"], "prefix": f"t{uuid.uuid4().hex[:8]}"})


async def test_messages_for_a_socket_arrive_in_order_while_others_come_and_go() -> None:
    """Upstream lost some of the 60 here (the test timed out); every one must arrive, in order."""
    layer = _layer()
    try:
        staying = await layer.new_channel()
        received: list[int] = []

        async def read() -> None:
            while len(received) < 60:
                received.append((await layer.receive(staying))["n"])

        reader = asyncio.create_task(read())
        for n in range(60):
            visitor = await layer.new_channel()
            visit = asyncio.create_task(layer.receive(visitor))
            await asyncio.sleep(0)
            await layer.send(staying, {"type": "x", "n": n})
            visit.cancel()
        await asyncio.wait_for(reader, 15)
        assert received == list(range(60))
    finally:
        await layer.flush()


async def test_a_socket_that_falls_behind_loses_live_frames_loudly_not_silently(monkeypatch: Any) -> None:
    from resync_site.lib import channel_layer

    warnings: list[str] = []
    # Recorded at the logger itself: another test's logging configuration may have disabled it.
    monkeypatch.setattr(channel_layer.logger, "warning", lambda msg, *args: warnings.append(msg % args))
    config = settings.CHANNEL_LAYERS["default"]
    layer = import_string(config["BACKEND"])(**{**config["CONFIG"], "prefix": f"t{uuid.uuid4().hex[:8]}", "capacity": 2})
    try:
        slow = await layer.new_channel()
        await layer.group_add("chat.c.slow", slow)
        for n in range(3):
            await layer.group_send("chat.c.slow", {"type": "x", "n": n})
        assert [(await layer.receive(slow))["n"] for _ in range(2)] == [0, 1]
        assert warnings == ["1 of 1 channels over capacity in group chat.c.slow: live frames dropped"]
    finally:
        await layer.flush()


async def test_a_closed_socket_keeps_no_buffer_of_late_messages(monkeypatch: Any) -> None:
    """A web process runs for weeks: frames for sockets long closed must not pile up in its memory."""
    from resync_site.lib import channel_layer

    monkeypatch.setattr(channel_layer, "GONE_AFTER_SECONDS", 0.2)
    layer = _layer()
    try:
        gone, staying = await layer.new_channel(), await layer.new_channel()
        receive = asyncio.create_task(layer.receive(gone))
        await asyncio.sleep(0.1)
        receive.cancel()  # the socket closes
        await asyncio.sleep(0.3)
        await layer.send(staying, {"type": "x", "n": 1})  # the receiver notices the closed one is gone
        assert (await asyncio.wait_for(layer.receive(staying), 5))["n"] == 1
        await layer.send(gone, {"type": "x", "n": 2})  # a late frame for the closed socket
        await layer.send(staying, {"type": "x", "n": 3})
        assert (await asyncio.wait_for(layer.receive(staying), 5))["n"] == 3
        assert gone not in layer.receive_buffer
    finally:
        await layer.flush()
