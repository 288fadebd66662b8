"""Talking to a running Stack the way a browser does: websockets with the session cookie."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from tests.topology.stack import Stack


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://") + path


def connect(base_url: str, path: str, cookie: str) -> Any:
    return websockets.connect(ws_url(base_url, path), origin=base_url, additional_headers={"Cookie": cookie},
                              max_size=2**22, open_timeout=10)


async def until(ws: Any, predicate: Any, *, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Frames read until one satisfies `predicate` (a type name or a callable); that one is last."""
    test = (lambda e: e.get("type") == predicate) if isinstance(predicate, str) else predicate
    events: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"no matching frame within {timeout:g} s; got {[e.get('type') for e in events]}")
        event = json.loads(await asyncio.wait_for(ws.recv(), remaining))
        events.append(event)
        if test(event):
            return events


async def ask(ws: Any, text: str, *, timeout: float = 30.0, **extra: Any) -> list[dict[str, Any]]:
    """Sends one question; returns its frames up to its `done` (or a turn `error`)."""
    await ws.send(json.dumps({"type": "message", "text": text, **extra}))
    return await until(ws, lambda e: e.get("type") == "done" or (e.get("type") == "error" and e.get("turn_id")), timeout=timeout)


def answer(events: list[dict[str, Any]]) -> str:
    return "".join(e.get("text", "") for e in events if e.get("type") == "token")


def database_url() -> str:
    """The URL of the test database pytest-django made (the stack's processes use the same one)."""
    from urllib.parse import quote

    from django.conf import settings

    db = settings.DATABASES["default"]
    user = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else "")
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def stack_for_test(redis_url: str, **options: Any) -> Stack:
    from django.conf import settings

    return Stack(database_url=database_url(), redis_url=redis_url, data_dir=settings.DATA_DIR / "stack", **options)


def production_password(user: Any, password: str) -> None:
    """Stores `password` hashed the way production verifies it (tests hash with MD5 for speed)."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    from django.utils.crypto import get_random_string

    user.password = PBKDF2PasswordHasher().encode(password, get_random_string(16))
    user.save(update_fields=["password"])
