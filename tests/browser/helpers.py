"""Helpers for the browser tests."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="browser-test-backend")


def off_loop[T](fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs `fn` in a plain thread: Playwright's sync API keeps an event loop in the test's thread,
    and the poll's channel-layer publish (async_to_sync) refuses to run beside one."""

    def run() -> T:
        from django.db import connection

        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return _pool.submit(run).result(timeout=60)
