"""Security headers and cookies as production mode sends them: CSP, HSTS, secure cookies, no framing.

Settings are read once at import, so the requests run in a `manage.py shell` process started with
the production environment (against the test database), with Django's test client speaking HTTPS
to it as the TLS proxy in front of it would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from conftest import PASSWORD
from tests.topology.client import database_url, production_password

pytestmark = [pytest.mark.django_db(transaction=True)]

PROBE = """
import json
from django.test import Client
out = {}
c = Client(HTTP_HOST="resync.example.com")
def grab(name, response):
    out[name] = {"status": response.status_code, "headers": dict(response.headers),
                 "cookies": {k: {"secure": bool(v["secure"]), "httponly": bool(v["httponly"]), "samesite": v["samesite"]}
                             for k, v in response.cookies.items()},
                 "location": response.get("Location", "")}
grab("http_page", c.get("/account/signin/"))
grab("http_healthz", c.get("/healthz"))
grab("signin_page", c.get("/account/signin/", secure=True))
token = c.cookies["csrftoken"].value
grab("signin", c.post("/account/signin/", {"username": "olivia", "password": "%(password)s", "csrfmiddlewaretoken": token},
                      secure=True, HTTP_REFERER="https://resync.example.com/account/signin/"))
grab("dashboard", c.get("/dashboard/", secure=True))
grab("api", c.get("/api/dashboard/", secure=True))
print("PROBE" + json.dumps(out))
"""


@pytest.fixture
def production(operator: Any, tmp_path: Path) -> dict[str, Any]:
    production_password(operator, PASSWORD)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "RESYNC_ENV": "production", "SECRET_KEY": "headers-test-" + "s3cr3t" * 10,
           "ALLOWED_HOSTS": "resync.example.com", "DATABASE_URL": database_url(),
           "REDIS_URL": settings.REDIS_URL, "RESYNC_DATA_DIR": str(settings.DATA_DIR / "stack")}
    # Production serves hashed static files: the stack's collected copy (tests/topology) is reused.
    from tests.topology.stack import Stack

    Stack(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"], data_dir=Path(env["RESYNC_DATA_DIR"])).prepare()
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", PROBE % {"password": PASSWORD}],
                            cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120, check=False)
    line = next((x for x in result.stdout.splitlines() if x.startswith("PROBE")), None)
    assert line, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads(line[len("PROBE"):])


def test_production_sends_the_security_headers_and_secure_cookies(production: dict[str, Any]) -> None:
    # Plain HTTP is sent to HTTPS, except the probes a load balancer makes.
    assert production["http_page"]["status"] == 301
    assert production["http_page"]["location"] == "https://resync.example.com/account/signin/"
    assert production["http_healthz"]["status"] == 200

    page = production["signin_page"]
    assert page["status"] == 200
    headers = {k.lower(): v for k, v in page["headers"].items()}
    hsts = headers["strict-transport-security"]
    assert "max-age=31536000" in hsts and "includeSubDomains" in hsts and "preload" in hsts
    csp = headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";") if part.strip())
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["form-action"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert page["cookies"]["csrftoken"]["secure"] is True

    signed_in = production["signin"]
    assert signed_in["status"] == 302, signed_in
    session = signed_in["cookies"]["sessionid"]
    assert session == {"secure": True, "httponly": True, "samesite": "Lax"}
    # Signed-in pages and the API carry the same protections.
    for name in ("dashboard", "api"):
        response = production[name]
        assert response["status"] == 200, (name, response["status"])
        lowered = {k.lower() for k in response["headers"]}
        assert {"strict-transport-security", "content-security-policy", "x-content-type-options"} <= lowered, name
