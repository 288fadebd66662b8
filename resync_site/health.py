"""Liveness and readiness.

`/healthz` says the process answers. `/readyz` checks each part Resync depends on and answers 503
when a required one is down, so a load balancer stops sending traffic to this instance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import connection
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    required: bool
    detail: str


def check_database() -> CheckResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # reported, not raised: readiness must always answer
        return CheckResult("database", ok=False, required=True, detail=f"{type(exc).__name__}: {exc}")
    return CheckResult("database", ok=True, required=True, detail=connection.vendor)


def check_redis() -> CheckResult:
    if not settings.REDIS_URL:
        return CheckResult("redis", ok=True, required=False, detail="not configured: in-memory channel layer, in-process tasks")
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:  # reported, not raised
        return CheckResult("redis", ok=False, required=True, detail=f"{type(exc).__name__}: {exc}")
    return CheckResult("redis", ok=True, required=True, detail="ping ok")


def readiness() -> tuple[bool, list[dict[str, object]]]:
    results = [import_string(path)() for path in settings.READINESS_CHECKS]
    ready = all(result.ok for result in results if result.required)
    return ready, [asdict(result) for result in results]
