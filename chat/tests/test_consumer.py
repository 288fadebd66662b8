"""The chat websocket through the full ASGI stack (origin check, session auth, routing)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from audit.models import AuditAction, AuditEvent
from chat.models import ActionProposal, Feedback, ProposalStatus
from chat.testing import Reply
from resync_site.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_turns")]


def _session(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _socket(session: str | None = None, origin: bytes = b"http://127.0.0.1") -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"127.0.0.1")]
    if session:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    return WebsocketCommunicator(application, "/ws/chat/", headers=headers)


async def _until(ws: WebsocketCommunicator, kind: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    events = []
    while True:
        event = await ws.receive_json_from(timeout=timeout)
        events.append(event)
        if event["type"] == kind:
            return events


@pytest.fixture
def operator_session(operator: Any) -> str:
    return _session(operator)


async def test_anonymous_wrong_role_and_foreign_origin_are_refused(outsider: Any, operator_session: str) -> None:
    ws = _socket()
    assert (await ws.connect())[0]
    assert (await ws.receive_output())["code"] == 4401
    ws = _socket(await database_sync_to_async(_session)(outsider))
    assert (await ws.connect())[0]
    assert (await ws.receive_output())["code"] == 4403
    ws = _socket(operator_session, origin=b"http://evil.example")
    connected, _ = await ws.connect()
    assert not connected


async def test_a_question_streams_ack_tools_citations_tokens_and_done(hwa, kb, operator_session: str) -> None:
    ws = _socket(operator_session)
    assert (await ws.connect())[0]
    await ws.send_json_to({"type": "message", "text": "why did BKP_RMAN_FULL fail?", "ref": "q1"})
    events = await _until(ws, "done")
    types = [e["type"] for e in events]
    assert types[0] == "ack" and events[0]["ref"] == "q1"
    turn_id = events[0]["turn_id"]
    assert all(e["turn_id"] == turn_id for e in events)
    assert types.index("tool_call") < types.index("tool_result") < types.index("citation") < types.index("done")
    text = "".join(e["text"] for e in events if e["type"] == "token")
    assert "ORA-19502" in text and "KB-0028" in text
    kinds = {e["kind"] for e in events if e["type"] == "citation"}
    assert kinds == {"plan", "joblog", "kb"}
    done = events[-1]
    assert done["model"] == "no-llm" and done["message_id"] and "kb:KB-0028" in done["sources"]
    await ws.disconnect()


async def test_bad_frames_get_errors_and_the_socket_stays_usable(operator_session: str) -> None:
    ws = _socket(operator_session)
    await ws.connect()
    await ws.send_to(text_data="{not json")
    assert (await ws.receive_json_from())["code"] == "bad_frame"
    await ws.send_json_to({"type": "launch_missiles"})
    assert (await ws.receive_json_from())["code"] == "bad_frame"
    await ws.send_json_to({"type": "message", "text": "", "ref": "r"})
    error = await ws.receive_json_from()
    assert error["code"] == "bad_frame" and error["ref"] == "r"
    await ws.send_json_to({"type": "feedback", "message_id": 1, "rating": "meh"})
    assert (await ws.receive_json_from())["code"] == "bad_frame"
    await ws.send_json_to({"type": "ping", "ref": "p"})
    assert await ws.receive_json_from() == {"type": "pong", "turn_id": None, "ref": "p"}
    await ws.disconnect()


async def test_oversized_and_binary_frames_close_the_socket(operator_session: str, settings: Any) -> None:
    ws = _socket(operator_session)
    await ws.connect()
    await ws.send_to(text_data=json.dumps({"type": "message", "text": "x" * 20000}))
    assert (await ws.receive_output())["code"] == 1009
    ws = _socket(operator_session)
    await ws.connect()
    await ws.send_to(bytes_data=b"\x00\x01")
    assert (await ws.receive_output())["code"] == 1003


async def test_messages_are_rate_limited_per_user(hwa, kb, operator_session: str, settings: Any) -> None:
    settings.CHAT_MESSAGE_BURST = 2
    settings.CHAT_MESSAGES_PER_MINUTE = 1
    ws = _socket(operator_session)
    await ws.connect()
    for _ in range(2):
        await ws.send_json_to({"type": "message", "text": "oi", "conversation_id": str(uuid.uuid4())})
        await _until(ws, "done")
    # A second socket of the same person shares the budget.
    other = _socket(operator_session)
    await other.connect()
    await other.send_json_to({"type": "message", "text": "oi", "ref": "third"})
    error = await other.receive_json_from()
    assert error["code"] == "rate_limited" and error["ref"] == "third" and error["retry_after"] > 0
    await ws.disconnect()
    await other.disconnect()


async def test_one_turn_at_a_time_and_stop_ends_it(hwa, kb, operator_session: str, fake_llm) -> None:
    fake_llm.default = Reply(text="palavra " * 400, chunk_chars=8, chunk_delay=0.01)
    ws = _socket(operator_session)
    await ws.connect()
    await ws.send_json_to({"type": "message", "text": "conte uma história longa"})
    events = await _until(ws, "token")
    conversation_id = events[0]["conversation_id"]
    await ws.send_json_to({"type": "message", "text": "e outra", "conversation_id": conversation_id})
    busy = await _until(ws, "error")
    assert busy[-1]["code"] == "turn_in_progress"
    await ws.send_json_to({"type": "stop"})
    done = (await _until(ws, "done"))[-1]
    assert done["status"] == "stopped"
    text = "".join(e["text"] for e in events + busy if e["type"] == "token")
    assert len(text) < len("palavra " * 400)
    # The conversation takes a new question right away.
    await ws.send_json_to({"type": "message", "text": "e agora?", "conversation_id": conversation_id})
    assert (await _until(ws, "done"))[-1]["status"] == "done"
    await ws.disconnect()


async def test_an_answer_that_cannot_be_saved_ends_with_an_error_not_a_spinner(hwa, kb, operator_session: str,
                                                                               monkeypatch: Any) -> None:
    from chat import services
    from chat.models import Turn, TurnStatus

    def database_gone(**_: Any) -> None:
        raise RuntimeError("connection to the database was lost")

    monkeypatch.setattr(services, "audit_record", database_gone)
    ws = _socket(operator_session)
    await ws.connect()
    await ws.send_json_to({"type": "message", "text": "o que abendou esta noite?"})
    events = await _until(ws, "error")
    turn_id = events[0]["turn_id"]
    assert events[-1]["turn_id"] == turn_id and events[-1]["code"] == "internal"
    assert "done" not in [e["type"] for e in events]
    turn = await database_sync_to_async(Turn.objects.get)(pk=turn_id)
    assert turn.status == TurnStatus.FAILED and turn.finished_at is not None
    # Nothing half-written: no stored answer for a turn whose audit event could not be written.
    assert not await database_sync_to_async(turn.messages.filter(role="assistant").exists)()
    await ws.disconnect()


async def test_a_reconnecting_client_replays_what_it_missed(hwa, kb, operator_session: str) -> None:
    ws = _socket(operator_session)
    await ws.connect()
    await ws.send_json_to({"type": "message", "text": "what failed tonight?"})
    live = await _until(ws, "done")
    await ws.disconnect()
    conversation_id = live[0]["conversation_id"]
    first_seq = next(e["seq"] for e in live if e.get("seq"))

    again = _socket(operator_session)
    await again.connect()
    await again.send_json_to({"type": "resume", "conversation_id": conversation_id, "after": 0})
    ack = await again.receive_json_from()
    assert ack["type"] == "ack" and ack["replaying"] > 3
    replay = [await again.receive_json_from() for _ in range(ack["replaying"])]
    assert replay[0]["type"] == "question" and replay[-1]["type"] == "done" and all(e["replay"] for e in replay)
    live_text = "".join(e["text"] for e in live if e["type"] == "token")
    rebuilt = ""
    for e in replay:
        if e["type"] == "token":
            rebuilt = rebuilt[: e["offset"]] + e["text"]
    assert rebuilt == live_text
    await again.send_json_to({"type": "resume", "conversation_id": conversation_id, "after": first_seq})
    ack = await again.receive_json_from()
    assert ack["replaying"] == len(replay) - 1
    await again.disconnect()


async def test_someone_elses_conversation_cannot_be_resumed(hwa, kb, operator_session: str, supervisor: Any) -> None:
    ws = _socket(operator_session)
    await ws.connect()
    await ws.send_json_to({"type": "message", "text": "oi"})
    conversation_id = (await _until(ws, "done"))[0]["conversation_id"]
    spy = _socket(await database_sync_to_async(_session)(supervisor))
    await spy.connect()
    await spy.send_json_to({"type": "resume", "conversation_id": conversation_id, "after": 0})
    assert (await spy.receive_json_from())["code"] == "conversation_not_found"
    await spy.send_json_to({"type": "message", "text": "oi", "conversation_id": conversation_id})
    errors = await _until(spy, "error")
    assert errors[-1]["code"] == "conversation_not_found"
    await ws.disconnect()
    await spy.disconnect()


async def test_feedback_is_recorded(hwa, kb, operator_session: str) -> None:
    ws = _socket(operator_session)
    await ws.connect()
    await ws.send_json_to({"type": "message", "text": "how do I fix AWSBHT001E?"})
    done = (await _until(ws, "done"))[-1]
    await ws.send_json_to({"type": "feedback", "message_id": done["message_id"], "rating": "down", "reason": "outdated"})
    assert (await ws.receive_json_from())["type"] == "ack"
    feedback = await database_sync_to_async(Feedback.objects.get)()
    assert (feedback.rating, feedback.reason) == ("down", "outdated")
    await ws.send_json_to({"type": "resolve", "conversation_id": done["conversation_id"], "note": "fixed it"})
    assert (await ws.receive_json_from())["resolved"] is True
    events = await database_sync_to_async(lambda: list(AuditEvent.objects.filter(
        action__in=[AuditAction.FEEDBACK, AuditAction.CONVERSATION_RESOLVED]).values_list("action", flat=True)))()
    assert events == [AuditAction.FEEDBACK, AuditAction.CONVERSATION_RESOLVED]
    await ws.disconnect()


async def test_four_eyes_from_two_sessions(hwa, kb, operator_session: str, supervisor: Any) -> None:
    boss = _socket(await database_sync_to_async(_session)(supervisor))
    await boss.connect()
    ws = _socket(operator_session)
    await ws.connect()
    await ws.send_json_to({"type": "message", "text": "cancela o FP_ENVIA_BANCO"})
    events = await _until(ws, "done")
    card = next(e for e in events if e["type"] == "action_proposal")
    assert card["needs_second_approver"] and card["status"] == "pending" and card["action"] == "cancel"

    await ws.send_json_to({"type": "confirm_action", "proposal_id": card["proposal_id"], "justification": "x"})
    errors = await _until(ws, "error")
    assert errors[-1]["code"] == "justification_required"
    await ws.send_json_to({"type": "confirm_action", "proposal_id": card["proposal_id"], "justification": "remessa manual hoje"})
    waiting = (await _until(ws, "action_proposal"))[-1]
    assert waiting["status"] == "awaiting_approval"
    # The operator cannot approve it; the supervisor sees it and approves from their own session.
    await ws.send_json_to({"type": "approve_action", "proposal_id": card["proposal_id"]})
    assert (await _until(ws, "error"))[-1]["code"] == "forbidden"
    request = (await _until(boss, "approval_update"))[-1]
    while request["status"] != "awaiting_approval":  # the first update announced the pending proposal
        request = (await _until(boss, "approval_update"))[-1]
    assert request["proposal_id"] == card["proposal_id"] and request["status"] == "awaiting_approval"
    await boss.send_json_to({"type": "approve_action", "proposal_id": card["proposal_id"], "note": "ok"})
    result = (await _until(ws, "action_result", timeout=20))[-1]
    assert result["ok"] is True and result["status"] == "executed"
    proposal = await database_sync_to_async(ActionProposal.objects.get)(pk=card["proposal_id"])
    assert proposal.status == ProposalStatus.EXECUTED
    await ws.disconnect()
    await boss.disconnect()
    await asyncio.sleep(0)


async def test_the_embedded_default_streams_through_the_in_memory_layer(hwa, kb, operator_session: str, settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    ws = _socket(operator_session)
    await ws.connect()
    await ws.send_json_to({"type": "message", "text": "what failed tonight?"})
    events = await _until(ws, "done")
    assert "FP_CALC_FOLHA" in "".join(e["text"] for e in events if e["type"] == "token")
    await ws.disconnect()
