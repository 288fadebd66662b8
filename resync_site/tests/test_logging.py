"""Secrets never reach the logs: what the configured console handler writes is checked, not the filter alone."""

from __future__ import annotations

import io
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from resync_site.lib.logging import JsonFormatter

SECRETS = {
    "sign-in password": "Hunter2-signin-pw",
    "bearer token": "eyJhbGciOiJSUzI1NiJ9.payload.signature",
    "DRF token": "9f8e7d6c5b4a39281706f5e4",
    "basic credentials": "c3ZjLXVzZXI6dHdzLXBhNTU=",
    "URL password": "tws-pa55-in-url",
    "Redis password": "r3dis-only-password",
    "password= in a message": "Tws-Pa55word!",
    "env-style secret": "llm-key-abc123456",
    "quoted password": "with spaces inside it",
    "exception text": "pg-s3cret-in-traceback",
    "private key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
}


@pytest.fixture(params=["text", "json"])
def log_output(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """Everything the console handler (as LOGGING configures it) writes, in both production and dev formats."""
    # Other tests run servers and workers in this process that may reconfigure logging (Twisted,
    # Celery's test worker): start from the configuration a Resync process has.
    logging.config.dictConfig(settings.LOGGING)
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    buffer = io.StringIO()
    previous_stream = handler.setStream(buffer)
    previous_formatter = handler.formatter
    if request.param == "json":
        handler.setFormatter(JsonFormatter())
    try:
        yield buffer
    finally:
        handler.setStream(previous_stream)  # type: ignore[arg-type]
        handler.setFormatter(previous_formatter)


def test_every_configured_handler_redacts() -> None:
    for name, handler in settings.LOGGING["handlers"].items():
        assert "redact" in handler.get("filters", []), f"log handler {name!r} would write secrets as they are"


def test_secrets_never_reach_the_log(log_output: io.StringIO, operator: Any) -> None:
    # A failed sign-in through the real stack (django-axes logs the attempt).
    response = Client().post("/account/signin/", {"username": "olivia", "password": SECRETS["sign-in password"]})
    assert response.status_code == 200

    # What libraries and our own code write when something goes wrong, through real loggers.
    logging.getLogger("django.request").warning(
        "Bad request POST /account/signin/ body=%s", f"username=olivia&password={SECRETS['sign-in password']}&next=/")
    logging.getLogger("httpx").warning("request headers %s", {"Authorization": f"Bearer {SECRETS['bearer token']}"})
    logging.getLogger("django.request").warning("META %s", {"HTTP_AUTHORIZATION": f"Token {SECRETS['DRF token']}"})
    logging.getLogger("jobs.tws").error("HWA refused Authorization: Basic %s", SECRETS["basic credentials"])
    logging.getLogger("jobs.tws").error("cannot reach https://svc-user:%s@hwa.example.com:31116/twsd",
                                        SECRETS["URL password"])
    logging.getLogger("resync_site").error("redis down: redis://:%s@redis:6379/0", SECRETS["Redis password"])
    logging.getLogger("jobs.tws").warning("login failed for user=ops password=%s", SECRETS["password= in a message"])
    logging.getLogger("resync_site").warning("environment: LLM_API_KEY=%s DEBUG=0", SECRETS["env-style secret"])
    logging.getLogger("resync_site").warning('payload {"user": "ops", "password": "%s"}', SECRETS["quoted password"])
    logging.getLogger("resync_site").warning("key loaded: -----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----",
                                             SECRETS["private key"])
    try:
        raise ConnectionError(f"could not connect to postgres://resync:{SECRETS['exception text']}@db/resync")
    except ConnectionError:
        logging.getLogger("django.db").exception("database unavailable")

    written = log_output.getvalue()
    assert "database unavailable" in written and "ConnectionError" in written, "the lines themselves are kept"
    assert "login failure" in written, "the failed sign-in itself is logged"
    leaked = [what for what, secret in SECRETS.items() if secret in written]
    assert not leaked, f"secrets in the log: {leaked}\n{written}"


def test_redaction_leaves_ordinary_lines_alone(log_output: io.StringIO) -> None:
    logging.getLogger("resync_site").warning("the token expired after %d s; password_reset sent to %s",
                                             900, "https://example.com:8443/a@b")
    assert "the token expired after 900 s; password_reset sent to https://example.com:8443/a@b" in log_output.getvalue()
