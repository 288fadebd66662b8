"""Fixtures for the jobs tests: a real mock HWA server on an ephemeral port, clients for it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jobs.tws.client import HwaClient
from jobs.tws.mock.auth import MOCK_PASSWORD, MOCK_USERNAME
from jobs.tws.mock.server import MockHwaServer


@pytest.fixture
def mock_hwa() -> Iterator[MockHwaServer]:
    server = MockHwaServer(scenario="demo", port=0, speed=0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hwa(mock_hwa: MockHwaServer) -> Iterator[HwaClient]:
    client = HwaClient(base_url=mock_hwa.url, username=MOCK_USERNAME, password=MOCK_PASSWORD, retries=2, backoff_base=0.01,
                       timeout=5)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def hwa_settings(settings: Any, mock_hwa: MockHwaServer) -> MockHwaServer:
    """Points get_client() (and so the poller, selectors and services) at the mock."""
    settings.TWS_URL = mock_hwa.url
    settings.TWS_USERNAME = MOCK_USERNAME
    settings.TWS_PASSWORD = MOCK_PASSWORD
    settings.TWS_API_KEY = ""
    settings.TWS_TIMEOUT_SECONDS = 5.0
    return mock_hwa


def control(server: MockHwaServer, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Drives the mock over its control endpoint, as a test script or an operator would."""
    response = httpx.post(f"{server.url}/mock/control/{name}", json=body or {}, timeout=10)
    response.raise_for_status()
    return response.json()


def find_job(server: MockHwaServer, name: str) -> Any:
    return next(j for j in server.sim.jobs if j.name == name)


class GroupListener:
    """A channel on its own instance of the real channel layer, subscribed to a group.

    It runs on one private event loop: channels_redis binds a channel's receive buffer to the loop
    that first used it, so every call must come from the same loop.
    """

    def __init__(self, group: str) -> None:
        from channels.layers import channel_layers

        self.layer = channel_layers.make_backend("default")
        self.loop = asyncio.new_event_loop()
        self.group = group
        self.channel = self.loop.run_until_complete(self.layer.new_channel())
        self.loop.run_until_complete(self.layer.group_add(group, self.channel))

    def receive_all(self, timeout: float = 0.5) -> list[dict[str, Any]]:
        async def drain() -> list[dict[str, Any]]:
            found = []
            while True:
                try:
                    found.append(await asyncio.wait_for(self.layer.receive(self.channel), timeout))
                except TimeoutError:
                    return found

        return self.loop.run_until_complete(drain())

    def close(self) -> None:
        self.loop.run_until_complete(self.layer.group_discard(self.group, self.channel))
        if hasattr(self.layer, "flush"):
            self.loop.run_until_complete(self.layer.flush())
        self.loop.close()


@pytest.fixture
def status_listener() -> Iterator[GroupListener]:
    from jobs.events import STATUS_GROUP

    listener = GroupListener(STATUS_GROUP)
    listener.receive_all(timeout=0.05)
    try:
        yield listener
    finally:
        listener.close()
