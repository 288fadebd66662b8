"""PostgreSQL restarted under a production web process: requests fail cleanly while it is down (a
quick error answer, no hang, no traceback, the process stays up) and work again right after.

A PostgreSQL cluster of the test's own (initdb on an ephemeral port, as the `postgres` OS user)
is restarted; the shared server other tests use is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.topology.fixtures import private_redis  # noqa: F401  (fixture)
from tests.topology.stack import PrivatePostgres, PrivateRedis, Stack, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PASSWORD = "pg-restart-" + "pw" * 8
MAKE_OPERATOR = f"""
from django.contrib.auth import get_user_model
from resync_site.roles import Role
from resync_site.services import user_set_roles
user = get_user_model().objects.create_user("olivia", password="{PASSWORD}")
user_set_roles(user=user, roles=[Role.OPERATOR], reason="postgres restart test")
"""


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres().init().start()
    try:
        pg.create_database()
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def web(postgres: PrivatePostgres, private_redis: PrivateRedis) -> Iterator[Stack]:  # noqa: F811
    stack = Stack(database_url=postgres.url, redis_url=private_redis.url, data_dir=Path(settings.DATA_DIR) / "stack-pg",
                  web=1, processes=("web",))
    stack.prepare(migrate=True)
    stack.manage("shell", "-c", MAKE_OPERATOR)
    try:
        yield stack.start()
    except BaseException:
        print(stack.tail(60))
        raise
    finally:
        stack.stop()


def test_requests_fail_cleanly_during_a_postgres_restart_and_recover(postgres: PrivatePostgres, web: Stack) -> None:
    (url,) = web.urls
    cookie = sign_in(url, "olivia", PASSWORD)
    with httpx.Client(base_url=url, headers={"Cookie": cookie}, timeout=10) as http:
        assert http.get("/dashboard/").status_code == 200

        postgres.stop("fast")
        started = time.monotonic()
        page = http.get("/dashboard/")
        took = time.monotonic() - started
        assert page.status_code in (500, 503), page.status_code
        assert took < 5, f"a request during the outage took {took:.1f} s"
        assert "Traceback" not in page.text and "OperationalError" not in page.text  # no debug page, no internals
        api = http.get("/api/jobs/")
        assert api.status_code in (500, 503) and "Traceback" not in api.text
        # The load balancer's probes (no session cookie): the process itself is alive, not ready.
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"

        postgres.start()
        # The next request after PostgreSQL is back works: no connection from before is reused.
        assert http.get("/dashboard/").status_code == 200
        assert http.get("/api/jobs/").status_code == 200
        assert http.get("/readyz").json()["checks"][0] == {"name": "database", "ok": True, "required": True,
                                                            "detail": "postgresql"}
    assert web.procs["web.1"].popen.poll() is None
