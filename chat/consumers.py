"""The chat websocket `/ws/chat/`: validates frames, calls services, forwards events. Nothing else.

Frames and events are described in docs/chat-protocol.md.

Close codes: 4401 not signed in, 4403 role without chat access, 1003 binary frame, 1008 too many
invalid frames or a flood, 1009 frame larger than CHAT_MAX_FRAME_BYTES. Every other problem with a
frame is answered with an `error` event and the socket stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Annotated, Any, Literal

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from chat import selectors, services
from chat.events import APPROVERS_GROUP, register_server_loop
from chat.models import conversation_group
from resync_site.lib.errors import ApplicationError
from resync_site.roles import APPROVERS, OPERATIONS, has_role

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
MAX_BAD_FRAMES = 10


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    ref: str | None = Field(None, max_length=64, description="Echoed in the ack, for the client's bookkeeping")


class MessageFrame(Frame):
    type: Literal["message"]
    text: str = Field(..., min_length=1, max_length=4000)
    conversation_id: uuid.UUID | None = None
    # The agent picked in the chat (its slug); empty or absent: "Automatic", the router picks.
    agent: str | None = Field(None, max_length=24, description="Slug of the agent to answer; empty for automatic")


class StopFrame(Frame):
    type: Literal["stop"]
    turn_id: uuid.UUID | None = None


class ResumeFrame(Frame):
    type: Literal["resume"]
    conversation_id: uuid.UUID
    after: int = Field(0, ge=0)


class ConfirmFrame(Frame):
    type: Literal["confirm_action"]
    proposal_id: uuid.UUID
    justification: str = Field("", max_length=2000)
    ticket: str = Field("", max_length=64)


class ApproveFrame(Frame):
    type: Literal["approve_action"]
    proposal_id: uuid.UUID
    note: str = Field("", max_length=1000)


class RejectFrame(Frame):
    type: Literal["reject_action"]
    proposal_id: uuid.UUID
    reason: str = Field("", max_length=1000)


class FeedbackFrame(Frame):
    type: Literal["feedback"]
    message_id: int = Field(..., ge=1)
    rating: Literal["up", "down"]
    reason: str = Field("", max_length=1000)


class ResolveFrame(Frame):
    type: Literal["resolve"]
    conversation_id: uuid.UUID
    note: str = Field("", max_length=1000)


class PingFrame(Frame):
    type: Literal["ping"]


ClientFrame = TypeAdapter(
    Annotated[
        MessageFrame | StopFrame | ResumeFrame | ConfirmFrame | ApproveFrame | RejectFrame | FeedbackFrame | ResolveFrame | PingFrame,
        Field(discriminator="type"),
    ]
)


def _db(func: Any) -> Any:
    """`database_sync_to_async` on the executor's thread pool rather than the one thread shared by
    every consumer of this server process: a turn's start must not queue behind 199 others.

    Only for calls that are whole units of work (their own transaction, no state shared with
    other sync code of this socket), which is what services are.
    """
    return database_sync_to_async(func, thread_sensitive=False)


class TokenBucket:
    def __init__(self, capacity: float, per_second: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.tokens = capacity
        self.updated = time.monotonic()

    def take(self) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


# Per user across all their sockets in this process (an ASGI worker); with several workers each
# enforces its own share, which still bounds a misbehaving client.
_message_buckets: dict[int, TokenBucket] = {}
_frame_buckets: dict[int, TokenBucket] = {}


def _bucket(store: dict[int, TokenBucket], user_id: int, capacity: float, per_second: float) -> TokenBucket:
    bucket = store.get(user_id)
    if bucket is None or bucket.capacity != capacity or bucket.per_second != per_second:
        bucket = store[user_id] = TokenBucket(capacity, per_second)
    return bucket


def _error_text(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"] if not isinstance(p, int)) or "frame"
    return f"{where}: {first['msg']}"


class ChatConsumer(AsyncWebsocketConsumer):
    user: Any
    conversation_id: uuid.UUID | None

    async def connect(self) -> None:
        register_server_loop(asyncio.get_running_loop())
        self.user = self.scope.get("user")
        self.conversation_id = None
        self.bad_frames = 0
        self.approver = False
        self.allowed = False
        # Refusals accept first and then close: a close before the handshake completes reaches
        # the browser as a bare HTTP 403, and the page could not tell "sign in" from "no access".
        if self.user is None or not self.user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        roles_ok, approver = await _db(lambda: (has_role(self.user, OPERATIONS), has_role(self.user, APPROVERS)))()
        await self.accept()
        if not roles_ok:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.approver = approver
        self.allowed = True
        if approver:
            await self.channel_layer.group_add(APPROVERS_GROUP, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.conversation_id is not None:
            await self.channel_layer.group_discard(conversation_group(self.conversation_id), self.channel_name)
        if getattr(self, "approver", False):
            await self.channel_layer.group_discard(APPROVERS_GROUP, self.channel_name)

    # --- server -> client ------------------------------------------------------------------------

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False, default=str))

    async def chat_event(self, message: dict[str, Any]) -> None:
        await self.send_event(message["event"])

    async def error(self, code: str, message: str, *, ref: str | None = None, turn_id: Any = None, **extra: Any) -> None:
        await self.send_event({"type": "error", "turn_id": str(turn_id) if turn_id else None, "ref": ref,
                               "code": code, "message": message, **extra})

    async def follow(self, conversation_id: uuid.UUID) -> None:
        if self.conversation_id == conversation_id:
            return
        if self.conversation_id is not None:
            await self.channel_layer.group_discard(conversation_group(self.conversation_id), self.channel_name)
        self.conversation_id = conversation_id
        await self.channel_layer.group_add(conversation_group(conversation_id), self.channel_name)

    # --- client -> server ------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.allowed:
            return
        if text_data is None:
            await self.close(code=CLOSE_UNSUPPORTED)
            return
        if len(text_data.encode()) > getattr(settings, "CHAT_MAX_FRAME_BYTES", 16384):
            await self.close(code=CLOSE_TOO_BIG)
            return
        frame_wait = _bucket(_frame_buckets, self.user.pk, getattr(settings, "CHAT_FRAME_BURST", 60),
                             getattr(settings, "CHAT_FRAMES_PER_SECOND", 10.0)).take()
        if frame_wait:
            await self.close(code=CLOSE_POLICY)
            return
        try:
            raw = json.loads(text_data)
            frame = ClientFrame.validate_python(raw)
        except (ValueError, ValidationError) as exc:
            self.bad_frames += 1
            if self.bad_frames > MAX_BAD_FRAMES:
                await self.close(code=CLOSE_POLICY)
                return
            message = _error_text(exc) if isinstance(exc, ValidationError) else "The frame is not valid JSON."
            ref = raw.get("ref") if isinstance(exc, ValidationError) and isinstance(raw, dict) and isinstance(raw.get("ref"), str) else None
            await self.error("bad_frame", message, ref=ref[:64] if ref else None)
            return
        try:
            await getattr(self, f"on_{frame.type}")(frame)
        except ApplicationError as exc:
            await self.error(exc.code, exc.message, ref=frame.ref, **exc.extra)

    async def on_ping(self, frame: PingFrame) -> None:
        await self.send_event({"type": "pong", "turn_id": None, "ref": frame.ref})

    async def on_message(self, frame: MessageFrame) -> None:
        wait = _bucket(_message_buckets, self.user.pk, getattr(settings, "CHAT_MESSAGE_BURST", 5),
                       getattr(settings, "CHAT_MESSAGES_PER_MINUTE", 20) / 60.0).take()
        if wait:
            await self.error("rate_limited", f"Too many messages: wait {wait:.0f} s.", ref=frame.ref, retry_after=round(wait, 1))
            return
        turn_id = uuid.uuid4()
        conversation_id = frame.conversation_id or self.conversation_id or uuid.uuid4()
        # The ack goes out before any database work: it only says "received and valid".
        await self.send_event({"type": "ack", "turn_id": str(turn_id), "ref": frame.ref, "conversation_id": str(conversation_id)})
        try:
            if conversation_id != self.conversation_id and frame.conversation_id is not None:
                # An id from the client: check it is this person's before listening to its group.
                conversation = await _db(services.conversation_open)(
                    acting_user=self.user, conversation_id=conversation_id)
                await self.follow(conversation.id)
            else:
                # Already checked on this socket, or made here just now: listen first, so that no
                # event of the turn can arrive before the socket is in the group.
                await self.follow(conversation_id)
            await _db(services.turn_start)(
                acting_user=self.user, conversation=conversation_id, turn_id=turn_id, question=frame.text,
                agent=frame.agent or "",
            )
        except ApplicationError as exc:
            await self.error(exc.code, exc.message, ref=frame.ref, turn_id=turn_id)

    async def on_stop(self, frame: StopFrame) -> None:
        if self.conversation_id is None:
            raise ApplicationError("Nothing to stop.", code="nothing_running")
        count = await database_sync_to_async(services.turn_stop)(
            acting_user=self.user, conversation_id=self.conversation_id, turn_id=frame.turn_id
        )
        await self.send_event({"type": "ack", "turn_id": str(frame.turn_id) if frame.turn_id else None, "ref": frame.ref, "stopping": count})

    async def on_resume(self, frame: ResumeFrame) -> None:
        # Join first, then read: an event made in between arrives twice (clients skip seen seqs),
        # never zero times.
        events = await database_sync_to_async(selectors.conversation_for)(self.user, frame.conversation_id)
        if events is None:
            raise ApplicationError("No such conversation.", code="conversation_not_found")
        await self.follow(frame.conversation_id)
        missed = await database_sync_to_async(selectors.events_after)(self.user, frame.conversation_id, frame.after)
        await self.send_event({"type": "ack", "turn_id": None, "ref": frame.ref, "conversation_id": str(frame.conversation_id),
                               "replaying": len(missed or [])})
        for event in missed or []:
            await self.send_event(event)

    async def on_confirm_action(self, frame: ConfirmFrame) -> None:
        await self.send_event({"type": "ack", "turn_id": None, "ref": frame.ref, "proposal_id": str(frame.proposal_id)})
        await database_sync_to_async(services.proposal_confirm)(
            proposal_id=frame.proposal_id, acting_user=self.user, justification=frame.justification, ticket=frame.ticket
        )

    async def on_approve_action(self, frame: ApproveFrame) -> None:
        await self.send_event({"type": "ack", "turn_id": None, "ref": frame.ref, "proposal_id": str(frame.proposal_id)})
        await database_sync_to_async(services.proposal_approve)(proposal_id=frame.proposal_id, acting_user=self.user, note=frame.note)

    async def on_reject_action(self, frame: RejectFrame) -> None:
        await self.send_event({"type": "ack", "turn_id": None, "ref": frame.ref, "proposal_id": str(frame.proposal_id)})
        await database_sync_to_async(services.proposal_reject)(proposal_id=frame.proposal_id, acting_user=self.user, reason=frame.reason)

    async def on_resolve(self, frame: ResolveFrame) -> None:
        await database_sync_to_async(services.conversation_resolve)(
            acting_user=self.user, conversation_id=frame.conversation_id, note=frame.note
        )
        await self.send_event({"type": "ack", "turn_id": None, "ref": frame.ref, "conversation_id": str(frame.conversation_id),
                               "resolved": True})

    async def on_feedback(self, frame: FeedbackFrame) -> None:
        await database_sync_to_async(services.feedback_record)(
            acting_user=self.user, message_id=frame.message_id, rating=frame.rating, reason=frame.reason
        )
        await self.send_event({"type": "ack", "turn_id": None, "ref": frame.ref, "message_id": frame.message_id})
