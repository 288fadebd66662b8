"""Single sign-on against a real OpenID Connect provider, end to end.

Two processes besides pytest: the test identity provider (django-oauth-toolkit, `tests/oidc_provider`)
and Resync itself under daphne, configured only through its OIDC_* environment variables, as in
production. An HTTP client plays the browser through the whole redirect dance.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from audit.models import AuditAction, AuditEvent
from resync_site.oidc import role_map, roles_from_claims

ROLE_MAP = "batch-supervisors=supervisor,batch-operators=operator"
CLIENT_ID = "resync-test-client"
CLIENT_SECRET = "resync-test-client-secret-0123456789"
IDP_PASSWORD = "idp-password-for-bia-42"
START_TIMEOUT = 90.0  # generous: CI machines are shared


# --- the role mapping on its own -------------------------------------------------------------------


def test_role_map_reads_pairs_and_keeps_resync_role_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OIDC_ROLE_MAP", "batch-supervisors=supervisor, ops = operator, typo=superviser")
    mapping = role_map()
    assert mapping["batch-supervisors"] == "supervisor"
    assert mapping["ops"] == "operator"
    assert "typo" not in mapping  # an unknown role grants nothing
    assert mapping["reviewer"] == "reviewer"


def test_roles_from_claims_accepts_a_list_or_a_single_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OIDC_ROLE_MAP", ROLE_MAP)
    assert roles_from_claims({"groups": ["batch-supervisors", "everyone", "batch-operators"]}) == {"supervisor", "operator"}
    assert roles_from_claims({"groups": "batch-operators"}) == {"operator"}
    assert roles_from_claims({"groups": None}) == set()
    assert roles_from_claims({}) == set()


# --- the processes ---------------------------------------------------------------------------------


@dataclass
class Server:
    """A child process serving HTTP on 127.0.0.1; its output is kept for failure messages."""

    process: subprocess.Popen[bytes]
    url: str = ""
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    def log(self) -> str:
        return "".join(self.output)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _start(command: list[str], env: dict[str, str], ready: re.Pattern[str]) -> Server:
    """Starts `command` and waits until a line of its output matches `ready` (group 1 is the port)."""
    if timeout := shutil.which("timeout"):
        # A hard upper bound: no server outlives a stuck or killed test run for long.
        command = [timeout, "-s", "TERM", "360", *command]
    process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = Server(process)
    listening = threading.Event()

    def read() -> None:
        # One thread reads every line until the process ends: it finds the ready line and keeps the pipe
        # from filling up (which would block the server). Not select() plus readline(): readline() buffers
        # whatever else arrived with the first line, and select() then never reports those lines (a loaded
        # machine gets daphne's four start-up lines in one read, and the ready line was lost).
        for raw in iter(process.stdout.readline, b""):  # type: ignore[union-attr]
            line = raw.decode(errors="replace")
            server.output.append(line)
            if not listening.is_set() and (match := ready.search(line)):
                server.url = f"http://127.0.0.1:{match.group(1)}"
                listening.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not listening.wait(timeout=0.5):
            if process.poll() is not None:
                reader.join(timeout=5)  # what it wrote last (usually a traceback) is still in the pipe
                raise AssertionError(f"{command} exited with {process.returncode} before listening:\n{server.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{command} did not listen within {START_TIMEOUT:.0f} s:\n{server.log()}")
    except BaseException:
        server.stop()
        raise
    return server


def _child_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment built from scratch: nothing of this test run's own (RESYNC_*, DATABASE_URL, REDIS_URL,
    proxies, variables earlier tests may have left in os.environ) reaches a child unless named here."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True", **extra}


@dataclass
class Provider:
    server: Server
    data_dir: Path

    def setup(self, *, redirect_uri: str, groups: str) -> None:
        """Registers Resync as a client and (re)creates the user `bia` with these groups."""
        result = subprocess.run(
            [sys.executable, "-m", "tests.oidc_provider", "oidc_setup", "--client-id", CLIENT_ID,
             "--client-secret", CLIENT_SECRET, "--redirect-uri", redirect_uri, "--username", "bia",
             "--password", IDP_PASSWORD, "--email", "bia@corp.example", "--name", "Beatriz Lima", "--groups", groups],
            cwd=settings.BASE_DIR, env=_child_env(self.data_dir / "home", OIDC_PROVIDER_DATA_DIR=str(self.data_dir)),
            capture_output=True, timeout=60, check=False,
        )
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[Provider]:
    data_dir = tmp_path / "idp"
    data_dir.mkdir()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (data_dir / "signing-key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = _start([sys.executable, "-m", "tests.oidc_provider", "oidc_serve", "--max-seconds", "360"],
                    _child_env(data_dir / "home", OIDC_PROVIDER_DATA_DIR=str(data_dir)),
                    re.compile(r"listening http://127\.0\.0\.1:(\d+)"))
    try:
        yield Provider(server, data_dir)
    finally:
        server.stop()


def _database_url() -> str:
    # The test database pytest-django made: the Resync process writes where this test reads.
    s = connection.settings_dict
    credentials = quote(s["USER"] or "", safe="")
    if s["PASSWORD"]:
        credentials += ":" + quote(s["PASSWORD"], safe="")
    return f"postgres://{credentials}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def resync_server(transactional_db: Any, provider: Provider, tmp_path: Path) -> Iterator[Server]:
    # Committed rows are what a second process sees, hence transactional_db. No serialized rollback: it
    # writes the migrated snapshot back over whatever is there, and rows that session-scoped fixtures
    # committed before this test (audit events, which nothing may delete) would then sit behind a chain
    # head reset to 0: the next append collides on sequence 1 (a 500 at the callback). The role groups
    # need no snapshot either, `roles_sync` re-creates them after migrate and after every flush.
    idp = provider.server.url
    env = _child_env(
        tmp_path / "resync-home",
        RESYNC_ENV="test",
        DATABASE_URL=_database_url(),  # the test database, not the one the test run was started with
        # Its own data folder: Qdrant's local mode admits one client per folder, and this test run may hold it.
        RESYNC_DATA_DIR=str(tmp_path / "resync-data"),
        # No REDIS_URL: this process needs no channel layer, cache or broker shared with anybody.
        LOG_LEVEL="info",
        LOG_FORMAT="text",
        OIDC_RP_CLIENT_ID=CLIENT_ID,
        OIDC_RP_CLIENT_SECRET=CLIENT_SECRET,
        OIDC_OP_AUTHORIZATION_ENDPOINT=f"{idp}/o/authorize/",
        OIDC_OP_TOKEN_ENDPOINT=f"{idp}/o/token/",
        OIDC_OP_USER_ENDPOINT=f"{idp}/o/userinfo/",
        OIDC_OP_JWKS_ENDPOINT=f"{idp}/o/.well-known/jwks.json",
        OIDC_ROLE_MAP=ROLE_MAP,
    )
    server = _start([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "0", "resync_site.asgi:application"],
                    env, re.compile(r"Listening on TCP address 127\.0\.0\.1:(\d+)"))
    try:
        yield server
    finally:
        # Stopped before the test database is emptied: its connections must be gone by then.
        server.stop()


def _sign_in_through_idp(resync: Server, provider: Provider) -> httpx.Response:
    """A fresh browser: Resync's sign-in page → the IdP's login form → back to Resync, signed in."""
    with httpx.Client(follow_redirects=True, trust_env=False, timeout=20) as browser:
        page = browser.get(f"{resync.url}/account/signin/")
        assert page.status_code == 200
        assert 'href="/oidc/authenticate/"' in page.text, "the sign-in page offers the company account"

        login = browser.get(f"{resync.url}/oidc/authenticate/")
        assert login.status_code == 200, login.text
        assert str(login.url).startswith(f"{provider.server.url}/accounts/login/"), login.url
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        assert csrf is not None
        # LoginView takes `next` (the pending authorize request) from the query string we post to.
        landed = browser.post(str(login.url), data={"csrfmiddlewaretoken": csrf.group(1), "username": "bia",
                                                   "password": IDP_PASSWORD})
        # The whole trail and both servers' logs: a failure here is usually explained by one of them.
        trail = "\n".join(f"  {r.request.method} {r.url} -> {r.status_code}" for r in (*landed.history, landed))
        why = f"\n{trail}\n--- Resync log:\n{resync.log()}--- IdP log:\n{provider.server.log()}"
        assert any("/oidc/callback/" in str(r.url) for r in landed.history), "never reached Resync's callback" + why
        assert (landed.status_code, str(landed.url)) == (200, f"{resync.url}/"), "not signed in" + why
        # Still signed in on the next page view: the session cookie is Resync's own.
        again = browser.get(f"{resync.url}/account/2fa/", follow_redirects=False)
        assert again.status_code == 200
        return landed


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_oidc_sign_in_creates_the_user_with_mapped_roles_and_follows_group_changes(
    provider: Provider, resync_server: Server
) -> None:
    redirect_uri = f"{resync_server.url}/oidc/callback/"
    provider.setup(redirect_uri=redirect_uri, groups="batch-supervisors,all-staff")

    _sign_in_through_idp(resync_server, provider)

    user = get_user_model().objects.get(email="bia@corp.example")
    assert user.username == "bia"
    assert (user.first_name, user.last_name) == ("Beatriz", "Lima")
    assert not user.has_usable_password(), "an SSO account has no local password to guess"
    assert set(user.groups.values_list("name", flat=True)) == {"supervisor"}
    assert not user.is_staff
    signins = AuditEvent.objects.filter(action=AuditAction.SIGNIN, actor=user)
    assert [e.details for e in signins] == [{"method": "oidc"}]
    assert signins[0].ip_address == "127.0.0.1"
    first_roles = AuditEvent.objects.filter(action=AuditAction.ROLE_CHANGED, target_type="user", target_id=str(user.pk)).last()
    assert first_roles is not None and first_roles.details["after"] == ["supervisor"]

    # The IdP moves Beatriz to another team; her next sign-in carries the change into Resync.
    provider.setup(redirect_uri=redirect_uri, groups="batch-operators")
    _sign_in_through_idp(resync_server, provider)

    user.refresh_from_db()
    assert set(user.groups.values_list("name", flat=True)) == {"operator"}
    assert get_user_model().objects.filter(email="bia@corp.example").count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.SIGNIN, actor=user).count() == 2
    change = AuditEvent.objects.filter(action=AuditAction.ROLE_CHANGED, target_type="user", target_id=str(user.pk)).last()
    assert change is not None
    assert (change.details["before"], change.details["after"]) == (["supervisor"], ["operator"])
    assert change.details["reason"] == "OIDC sign-in"

    # Leaving every mapped group takes every role away at the next sign-in (the account stays, for the trail).
    provider.setup(redirect_uri=redirect_uri, groups="all-staff")
    _sign_in_through_idp(resync_server, provider)
    assert not user.groups.exists()

    # A forged callback (no sign-in started in this browser) is turned away, not a server error.
    with httpx.Client(trust_env=False, timeout=20) as stranger:
        forged = stranger.get(f"{resync_server.url}/oidc/callback/?code=forged&state=forged")
        assert forged.status_code == 302
        assert stranger.get(f"{resync_server.url}/").status_code == 302, "not signed in"
