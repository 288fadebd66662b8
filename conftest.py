"""Fixtures every test may use: personas for each role, and signed-in clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db.backends.signals import connection_created
from django.test import Client

from resync_site.roles import Role
from resync_site.services import user_set_roles


def _allow_test_flush(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Transactional tests empty every table with TRUNCATE, which the audit trigger refuses
    # unless this session says so (tests of the trigger turn it back off).
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET resync.allow_truncate = 'on'")


connection_created.connect(_allow_test_flush)


@pytest.fixture(scope="session", autouse=True)
def _empty_test_redis() -> None:
    """Start from an empty test Redis database: cache entries, channel groups and queued tasks left by
    an earlier run or a benchmark (user ids repeat across fresh test databases) must not leak in."""
    from django.conf import settings

    if settings.REDIS_URL and getattr(settings, "RESYNC_ENV", "") == "test":
        import redis

        redis.Redis.from_url(settings.REDIS_URL).flushdb()

PASSWORD = "correct-horse-battery-9"  # noqa: S105 (test personas' password)


@pytest.fixture
def make_user(db: Any) -> Callable[..., Any]:
    def make(username: str, *roles: str, **fields: Any) -> Any:
        user = get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)
        if roles:
            user_set_roles(user=user, roles=roles, reason="test persona")
        return user

    return make


@pytest.fixture
def operator(make_user: Callable[..., Any]) -> Any:
    return make_user("olivia", Role.OPERATOR)


@pytest.fixture
def supervisor(make_user: Callable[..., Any]) -> Any:
    return make_user("sergio", Role.SUPERVISOR)


@pytest.fixture
def reviewer(make_user: Callable[..., Any]) -> Any:
    return make_user("renata", Role.REVIEWER)


@pytest.fixture
def compliance(make_user: Callable[..., Any]) -> Any:
    return make_user("carla", Role.COMPLIANCE)


@pytest.fixture
def admin_user(make_user: Callable[..., Any]) -> Any:
    return make_user("ana", Role.ADMIN)


@pytest.fixture
def outsider(make_user: Callable[..., Any]) -> Any:
    """Signed in, but holding no role at all."""
    return make_user("otto")


@pytest.fixture
def client_for() -> Callable[[Any], Client]:
    """A test client signed in as `user` (for staff users, with the admin's second factor passed)."""

    def make(user: Any, *, verified: bool = True) -> Client:
        client = Client()
        client.force_login(user)
        if verified and user.is_staff:
            from django_otp.plugins.otp_static.models import StaticDevice

            device, _ = StaticDevice.objects.get_or_create(user=user, name="test", defaults={"confirmed": True})
            session = client.session
            session["otp_device_id"] = device.persistent_id
            session.save()
        return client

    return make
