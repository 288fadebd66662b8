"""The Redis channel layer, with one receiver per process that no closing socket can cancel.

All the websockets of a web process receive through one Redis sorted set ("specific.<process>!").
Upstream channels_redis (4.3) lets whichever consumer waits first run the blocking pop (BZPOPMIN)
for all of them. When that consumer's socket closes, its receive is cancelled, but redis-py shields
the command, so the pop still completes in Redis and the message it takes, meant for another
socket, is dropped: a streamed answer stopped halfway and its `done` never came
(channels_redis issue #366; resync_site/tests/test_channel_layer.py reproduces it).

Here the pops are made by one task per process that belongs to the layer, not to a consumer. It
hands each message to its channel's buffer; a consumer only waits on its own buffer, and cancelling
that wait takes nothing from anyone. When the pop fails (Redis went away) every receive fails with
it, as upstream: the consumers close their sockets and the browsers reconnect and join their groups
again. The receiver lives as long as the event loop (daphne has one per process) or until flush().
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels_redis.core import RedisChannelLayer as UpstreamRedisChannelLayer

logger = logging.getLogger(__name__)

# A channel whose receive was cancelled and not renewed for this long is gone (its socket closed):
# its buffer is dropped and late messages for it are not kept. A receive cancelled by a timeout and
# called again (tests, wait_for) keeps everything. Channel names are never reused.
GONE_AFTER_SECONDS = 60.0
CLOSED_CHANNELS_REMEMBERED = 10_000


# Upstream's group send in one script: each channel's expired messages are dropped (upstream does
# that in a separate pipeline first), then the message is added where there is room.
GROUP_SEND_LUA = """
local over_capacity = 0
local current_time = ARGV[#ARGV - 1]
local expiry = ARGV[#ARGV]
local oldest = math.floor(tonumber(current_time)) - tonumber(expiry)
for i = 1, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, oldest)
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
        redis.call('ZADD', KEYS[i], current_time, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""


class _Failed:
    """Put in each buffer when the receiver's pop failed: that channel's receive raises `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class RedisChannelLayer(UpstreamRedisChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receiver: asyncio.Task[None] | None = None
        self._idle_since: dict[str, float] = {}  # channels whose receive was cancelled, and when
        self._swept_at = 0.0
        self._closed: dict[str, None] = {}  # gone channels, oldest first, at most CLOSED_CHANNELS_REMEMBERED

    async def receive(self, channel: str) -> dict[str, Any]:
        if "!" not in channel:  # a named channel (a worker's): upstream's direct pop, nothing shared
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        real_channel = self.non_local_name(channel)
        assert real_channel.endswith(self.client_prefix + "!"), "Wrong client prefix"
        loop = asyncio.get_running_loop()
        if self._receiver is not None and (self._receiver.done() or self._receiver.get_loop().is_closed()):
            self._receiver = None  # failed, or a previous event loop's (tests run one loop each)
        if self._receiver is not None and self._receiver.get_loop() is not loop:
            if self._receiver.get_loop().is_running():
                raise RuntimeError("Two event loops are trying to receive() on one channel layer at once!")
            self._receiver.cancel()  # an idle loop's (a test's helper loop): this loop receives now
            self._receiver = None
        if self._receiver is None:
            self._receiver = loop.create_task(self._receive_forever(real_channel), name="channel-layer-receiver")
        self._idle_since.pop(channel, None)
        self._closed.pop(channel, None)
        try:
            item = await self.receive_buffer[channel].get()
        except asyncio.CancelledError:
            # The consumer stopped waiting: its socket closed, or a timeout. Nothing is lost either
            # way (the receiver keeps popping for the process); the channel counts as gone only if
            # it does not receive again within GONE_AFTER_SECONDS.
            self._idle_since[channel] = time.monotonic()
            if channel in self.receive_buffer and self.receive_buffer[channel].empty():
                del self.receive_buffer[channel]
            raise
        if self.receive_buffer[channel].empty():
            del self.receive_buffer[channel]
        if isinstance(item, _Failed):
            raise item.error
        return item

    def _sweep_gone(self, now: float) -> None:
        for channel, since in list(self._idle_since.items()):
            if now - since >= GONE_AFTER_SECONDS:
                del self._idle_since[channel]
                self.receive_buffer.pop(channel, None)
                self._closed[channel] = None
                if len(self._closed) > CLOSED_CHANNELS_REMEMBERED:
                    del self._closed[next(iter(self._closed))]

    async def _receive_forever(self, real_channel: str) -> None:
        while True:
            try:
                channels, message = await self.receive_single(real_channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # As upstream: every receive of the process fails, so the consumers close their
                # sockets and the browsers reconnect (and join their groups again).
                logger.warning("channel layer receive failed (%s): waiting sockets are closed to reconnect", exc)
                for buffer in list(self.receive_buffer.values()):
                    buffer.put_nowait(_Failed(exc))
                return
            now = time.monotonic()
            if now - self._swept_at >= GONE_AFTER_SECONDS / 4:
                self._swept_at = now
                self._sweep_gone(now)
            for channel in channels if isinstance(channels, list) else [channels]:
                if channel not in self._closed:
                    self.receive_buffer[channel].put_nowait(message)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Upstream's group send in two round trips instead of four (every chat frame is one)."""
        assert self.require_valid_group_name(group), "Group name not valid"
        key = self._group_key(group)
        connection = self.connection(self.consistent_hash(group))
        now = time.time()
        async with connection.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, min=0, max=int(now) - self.group_expiry)
            pipe.zrange(key, 0, -1)
            _, members = await pipe.execute()
        channel_names = [member.decode("utf8") for member in members]
        if not channel_names:
            return
        channel_keys, messages, capacities = self._map_channel_keys_to_connection(channel_names, message)
        for index, keys in channel_keys.items():
            args = [messages[k] for k in keys] + [capacities[k] for k in keys] + [now, self.expiry]
            over = await self.connection(index).eval(GROUP_SEND_LUA, len(keys), *keys, *args)
            if over:
                logger.warning("%s of %s channels over capacity in group %s: live frames dropped", over, len(channel_names), group)

    async def flush(self) -> None:
        if self._receiver is not None:
            self._receiver.cancel()
            self._receiver = None
        await super().flush()
