"""Server → client chat events: stored for replay, then sent to the conversation's group.

Turns run in Celery workers (or in a thread of the web process in the embedded default), so the
sender is synchronous code. Every send goes through one event loop per process and waits for
the group send to finish: events of a turn reach the group in the order they were made, and the
Redis channel layer keeps one connection pool instead of one per call. When the web server's
own loop is known (the embedded default, in-memory channel layer) sends run on that loop, since
the in-memory layer's queues belong to it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from channels.layers import get_channel_layer

from chat.models import ChatEvent, conversation_group

logger = logging.getLogger(__name__)

APPROVERS_GROUP = "chat.approvers"
# Coalesced token rows: one stored row per burst of streamed text.
TOKEN_FLUSH_CHARS = 400
TOKEN_FLUSH_SECONDS = 0.25
SEND_TIMEOUT_SECONDS = 5.0

_server_loop: asyncio.AbstractEventLoop | None = None
_own_loop: asyncio.AbstractEventLoop | None = None
_own_loop_pid = 0
_own_loop_lock = threading.Lock()


def register_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Called by the consumer: group sends from worker threads run on the server's loop."""
    global _server_loop
    _server_loop = loop


def _loop() -> asyncio.AbstractEventLoop:
    global _own_loop, _own_loop_pid
    if _server_loop is not None and _server_loop.is_running() and not _server_loop.is_closed():
        return _server_loop
    with _own_loop_lock:
        # A forked child inherits the loop object but not the thread that ran it: start afresh.
        if _own_loop is None or _own_loop.is_closed() or _own_loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="chat-event-sender", daemon=True).start()
            _own_loop = loop
            _own_loop_pid = os.getpid()
        return _own_loop


# At most this many queued sends are taken at once (and merged, see `coalesce`).
SEND_BATCH = 256


def coalesce(batch: list[tuple[str, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The queued sends of a moment, per group in their order, live token deltas merged.

    A token delta that continues the text of the group's previous message (same turn, its offset
    where that text ends) is appended to it: under load, when sends queue up while one is in flight,
    a turn goes out as a few frames of several tokens instead of one per token; when nothing waits,
    every delta still goes out on its own, at once. Order within a group is kept; across groups
    there is none to keep.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for group, message in batch:
        sends = groups.setdefault(group, [])
        event = message.get("event") or {}
        last = sends[-1].get("event") if sends else None
        if (
            last is not None
            and event.get("type") == "token" == last.get("type")
            and "seq" not in event and "seq" not in last
            and event.get("turn_id") == last.get("turn_id")
            and event.get("offset") == last.get("offset", 0) + len(last.get("text", ""))
        ):
            sends[-1] = {**sends[-1], "event": {**last, "text": last["text"] + event["text"]}}
        else:
            sends.append(message)
    return groups


async def _drain(queue: asyncio.Queue[tuple[str, dict[str, Any]]], own_layer: bool) -> None:
    if own_layer:
        # This process's shared layer object may already be bound to another (maybe closed) loop;
        # the sender loop gets its own instance. Only the Redis layer gets here: with the in-memory
        # one the sends run on the server's loop, whose queues the consumers read.
        from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

        layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    else:
        layer = get_channel_layer()

    while True:
        batch = [await queue.get()]
        while len(batch) < SEND_BATCH and not queue.empty():
            batch.append(queue.get_nowait())
        for group, messages in coalesce(batch).items():
            for message in messages:
                try:
                    await layer.group_send(group, message)
                except Exception:  # a lost live event is recovered by the client's replay from the database
                    logger.exception("group send to %s failed", group)


def _enqueue(loop: asyncio.AbstractEventLoop, group: str, message: dict[str, Any]) -> None:
    queue = getattr(loop, "_chat_send_queue", None)
    if queue is None:
        queue = asyncio.Queue()
        loop._chat_send_queue = queue  # type: ignore[attr-defined]  # lives and dies with its loop
        loop.create_task(_drain(queue, own_layer=loop is _own_loop))
    queue.put_nowait((group, message))


def run_on_sender_loop(coro: Coroutine[Any, Any, Any], timeout: float = SEND_TIMEOUT_SECONDS) -> Any:
    loop = _loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:  # pragma: no cover - sync code must never be called on the loop itself
        raise RuntimeError("run_on_sender_loop called from the sender loop")
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


def group_send(group: str, event: dict[str, Any]) -> None:
    """Queues the send on the sender loop without waiting for it.

    One queue per loop, drained by one task, keeps every event in the order it was made while the
    turn goes on working; the stored copy makes a lost live event recoverable by replay.
    """
    if get_channel_layer() is None:
        return
    loop = _loop()
    loop.call_soon_threadsafe(_enqueue, loop, group, {"type": "chat.event", "event": event})


def event_publish(
    *,
    conversation_id: uuid.UUID | str,
    turn_id: uuid.UUID | str | None,
    type: str,
    payload: dict[str, Any],
    persist: bool = True,
) -> dict[str, Any]:
    """Stores the event (unless it is a live-only token delta) and sends it to the conversation."""
    event: dict[str, Any] = {"type": type, "turn_id": str(turn_id) if turn_id else None, **payload}
    if persist:
        row = ChatEvent.objects.create(conversation_id=conversation_id, turn_id=turn_id, type=type, payload=event)
        event["seq"] = row.id
        event["conversation_id"] = str(conversation_id)
    else:
        event["conversation_id"] = str(conversation_id)
    group_send(conversation_group(conversation_id), event)
    return event


class TurnEmitter:
    """Everything one turn says, in order. Tokens go out live and are stored in bursts."""

    def __init__(self, *, conversation_id: uuid.UUID | str, turn_id: uuid.UUID | str) -> None:
        self.conversation_id = conversation_id
        self.turn_id = turn_id
        self.text = ""
        self._pending_offset = 0
        self._pending = ""
        self._pending_since = 0.0
        self.first_token_at: float | None = None

    def token(self, delta: str) -> None:
        if not delta:
            return
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        offset = len(self.text)
        self.text += delta
        event_publish(
            conversation_id=self.conversation_id,
            turn_id=self.turn_id,
            type="token",
            payload={"text": delta, "offset": offset},
            persist=False,
        )
        if not self._pending:
            self._pending_offset = offset
            self._pending_since = time.monotonic()
        self._pending += delta
        if len(self._pending) >= TOKEN_FLUSH_CHARS or time.monotonic() - self._pending_since >= TOKEN_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        event = {
            "type": "token",
            "turn_id": str(self.turn_id),
            "conversation_id": str(self.conversation_id),
            "text": self._pending,
            "offset": self._pending_offset,
        }
        ChatEvent.objects.create(conversation_id=self.conversation_id, turn_id=self.turn_id, type="token", payload=event)
        self._pending = ""

    def emit_many(self, type: str, payloads: list[dict[str, Any]]) -> None:
        """Several events of one kind (a tool's citations) stored in one INSERT, then sent in order."""
        if not payloads:
            return
        self.flush()
        events = [{"type": type, "turn_id": str(self.turn_id), **p, "conversation_id": str(self.conversation_id)} for p in payloads]
        rows = ChatEvent.objects.bulk_create(
            [ChatEvent(conversation_id=self.conversation_id, turn_id=self.turn_id, type=type, payload=e) for e in events]
        )
        group = conversation_group(self.conversation_id)
        for row, event in zip(rows, events, strict=True):
            event["seq"] = row.id
            group_send(group, event)

    def emit(self, type: str, **payload: Any) -> dict[str, Any]:
        self.flush()
        return event_publish(conversation_id=self.conversation_id, turn_id=self.turn_id, type=type, payload=payload)
