"""The dashboard websocket `/ws/dashboard/`: forwards the plan's status events, nothing else.

Server -> client frames (JSON):

- ``{"type": "hello", "seq": 41, "stale": false}`` once, on connect: the last event already in
  the database. The page then loads ``/api/dashboard/`` (which carries its own ``seq``) and applies
  only diffs with a higher ``seq``; a gap in ``seq`` (or ``truncated``) means "refetch the snapshot".
  After a reconnect the page does the same, so a network blip is caught up without a reload.
- ``{"type": "diff", ...}``: a ``jobs.diff`` event as documented in ``jobs/events.py``.
- ``{"type": "hwa_status", ...}``: a ``jobs.hwa_status`` event (HWA unreachable / recovered).
- ``{"type": "pong"}``: answer to a client ``{"type": "ping"}`` (keep-alive through proxies).

Close codes: 4401 not signed in, 4403 role without operations access, 1003 binary frame,
1008 too many invalid frames.
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from jobs.events import STATUS_GROUP
from resync_site.roles import OPERATIONS, has_role

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
MAX_FRAME_BYTES = 1024
MAX_BAD_FRAMES = 5


def _hello() -> dict[str, Any]:
    from jobs.models import PlanState

    state = PlanState.objects.filter(pk=1).only("event_seq", "stale").first()
    return {"type": "hello", "seq": state.event_seq if state else 0, "stale": bool(state and state.stale)}


class DashboardConsumer(AsyncWebsocketConsumer):
    joined = False
    bad_frames = 0

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(has_role)(user, OPERATIONS):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # Join before reading `seq`: an event committed in between is then both delivered and
        # newer than the hello, never lost between the two.
        await self.channel_layer.group_add(STATUS_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_json(await database_sync_to_async(_hello)())

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(STATUS_GROUP, self.channel_name)

    async def send_json(self, data: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(data, ensure_ascii=False, default=str))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            await self.close(code=CLOSE_UNSUPPORTED)
            return
        try:
            frame = json.loads(text_data or "") if len(text_data or "") <= MAX_FRAME_BYTES else None
        except ValueError:
            frame = None
        if isinstance(frame, dict) and frame.get("type") == "ping":
            await self.send_json({"type": "pong"})
            return
        self.bad_frames += 1
        if self.bad_frames >= MAX_BAD_FRAMES:
            await self.close(code=CLOSE_POLICY)
            return
        await self.send_json({"type": "error", "code": "bad_frame", "message": "Only {\"type\": \"ping\"} is accepted here."})

    # --- channel layer -> client ---------------------------------------------------------------

    async def jobs_diff(self, event: dict[str, Any]) -> None:
        await self.send_json({**event, "type": "diff"})

    async def jobs_hwa_status(self, event: dict[str, Any]) -> None:
        await self.send_json({**event, "type": "hwa_status"})
