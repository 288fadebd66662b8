"""Websocket frames fuzzed with hypothesis against `/ws/chat/` and `/ws/dashboard/`: invalid JSON,
JSON of the wrong shape, known frame types with wrong field types, huge frames, binary frames and
floods. The only answers allowed are clean ones: an `error` event (the socket stays open), a
normal reply (ack / pong), or a close with one of the documented codes. The application must never
raise, and a socket that stays open must still answer a ping afterwards.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.django_db(transaction=True)]

CLOSE_CODES = {1003, 1008, 1009}
CHAT_TYPES = ["message", "stop", "resume", "confirm_action", "approve_action", "reject_action", "feedback", "ping", "bogus"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=50))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
# Frames that look like the protocol but carry wrong types or values (no valid question: it would start a turn).
typed_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(CHAT_TYPES)},
    optional={"text": st.one_of(st.integers(), st.lists(st.text()), st.just(""), st.text(min_size=4001, max_size=4100)),
              "conversation_id": json_values, "proposal_id": json_values, "turn_id": json_values,
              "after": st.one_of(st.integers(max_value=-1), st.text()), "message_id": json_values,
              "rating": st.text(max_size=5), "ref": st.one_of(st.integers(), st.text(min_size=65, max_size=80)),
              "extra": json_values},
).filter(lambda f: not (f["type"] == "message" and isinstance(f.get("text"), str) and 0 < len(f["text"].strip()) <= 4000))
frames = st.one_of(
    st.text(max_size=200),                                     # anything, mostly invalid JSON
    json_values.map(json.dumps),                               # valid JSON of any shape
    typed_frames.map(json.dumps),
    st.binary(max_size=64),                                    # binary frames
    st.integers(min_value=17_000, max_value=40_000).map(lambda n: json.dumps({"type": "ping", "pad": "x" * n})),  # huge
)


def _cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _exchange(path: str, cookie: bytes, sent: list[str | bytes], wait: float = 0.15) -> list[dict[str, Any]]:
    from resync_site.asgi import application

    communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1"),
                                                                     (b"host", b"127.0.0.1"), (b"cookie", cookie)])
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    outputs: list[dict[str, Any]] = []
    closed = False
    for frame in sent:
        # send_input, not send_to: a real client may send an empty frame, which send_to refuses.
        key = "bytes" if isinstance(frame, bytes) else "text"
        await communicator.send_input({"type": "websocket.receive", key: frame})
        while not await communicator.receive_nothing(timeout=wait, interval=0.01):
            output = await communicator.receive_output(timeout=1)  # re-raises anything the consumer raised
            outputs.append(output)
            closed = closed or output["type"] == "websocket.close"
        if closed:
            break
    if not closed:  # still usable after all that
        await communicator.send_to(text_data=json.dumps({"type": "ping"}))
        pong = json.loads((await communicator.receive_output(timeout=2))["text"])
        assert pong["type"] in ("pong", "error"), pong
    await communicator.disconnect()
    return outputs


def _check(outputs: list[dict[str, Any]]) -> None:
    for output in outputs:
        if output["type"] == "websocket.close":
            assert output.get("code") in CLOSE_CODES, output
            continue
        assert output["type"] == "websocket.send", output
        event = json.loads(output["text"])
        assert event["type"] in ("error", "ack", "pong", "hello"), event
        if event["type"] == "error":
            assert event["code"] and event["message"], event


@pytest.mark.parametrize("path", ["/ws/chat/", "/ws/dashboard/"])
def test_fuzzed_frames_get_only_clean_errors_and_closes(path: str, operator: Any) -> None:
    cookie = _cookie(operator)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(frames, min_size=1, max_size=4))
    def run(sent: list[str | bytes]) -> None:
        _check(async_to_sync(_exchange)(path, cookie, sent))

    run()


@pytest.mark.parametrize("path", ["/ws/chat/", "/ws/dashboard/"])
def test_a_flood_is_closed_cleanly(path: str, operator: Any) -> None:
    outputs = async_to_sync(_exchange)(path, _cookie(operator), [json.dumps({"type": "bogus"})] * 200, 0.02)
    _check(outputs)
    assert outputs[-1] == {"type": "websocket.close", "code": 1008}


def test_a_frame_over_the_size_limit_closes_with_1009(operator: Any, settings: Any) -> None:
    huge = json.dumps({"type": "message", "text": "x" * (settings.CHAT_MAX_FRAME_BYTES + 10)})
    outputs = asyncio.run(_exchange("/ws/chat/", _cookie(operator), [huge]))
    assert outputs == [{"type": "websocket.close", "code": 1009}]
