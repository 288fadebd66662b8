"""Who may open which page: one table for the whole site.

Each row names a URL, the roles that may open it, and what everybody else sees. Every row is run
for every persona (anonymous, signed in without a role, and one user per role). Other features add
their pages by adding rows here, so a page nobody listed is a page nobody checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client

from resync_site.roles import STAFF_ROLES, Role

# --- what a persona may see --------------------------------------------------------------------

Expect = Callable[[HttpResponse], bool]


def ok(response: HttpResponse) -> bool:
    return response.status_code == 200


def to_signin(response: HttpResponse) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/account/signin/?next=")


def to_admin_signin(response: HttpResponse) -> bool:
    # Django's admin sends anyone it will not serve (anonymous, non-staff, no second factor) to its own form.
    return response.status_code == 302 and response["Location"].startswith("/admin/login/?next=")


def forbidden(response: HttpResponse) -> bool:
    return response.status_code == 403


def api_refused(response: HttpResponse) -> bool:
    # The API answers machines: a refusal, never a redirect to an HTML form.
    return response.status_code in (401, 403) and "Location" not in response


def to_home(response: HttpResponse) -> bool:
    return response.status_code == 302 and response["Location"] == "/"


ANYONE = "anyone"  # including anonymous visitors
SIGNED_IN = "signed in"  # any signed-in user, with or without a role

PERSONAS: dict[str, frozenset[str]] = {
    # persona fixture (conftest.py) -> its roles
    "anonymous": frozenset(),
    "outsider": frozenset(),
    "operator": frozenset({Role.OPERATOR}),
    "supervisor": frozenset({Role.SUPERVISOR}),
    "reviewer": frozenset({Role.REVIEWER}),
    "compliance": frozenset({Role.COMPLIANCE}),
    "admin_user": frozenset({Role.ADMIN}),
}


@dataclass(frozen=True)
class Page:
    path: str
    allowed: str | tuple[str, ...]  # ANYONE, SIGNED_IN, or the roles that may open it
    anonymous: Expect = to_signin
    denied: Expect = forbidden  # signed in, but without one of the roles
    granted: Expect = ok

    def expect(self, persona: str) -> Expect:
        if self.allowed == ANYONE:
            return self.granted
        if persona == "anonymous":
            return self.anonymous
        if self.allowed == SIGNED_IN or PERSONAS[persona] & set(self.allowed):
            return self.granted
        return self.denied


PAGES: list[Page] = [
    Page("/", SIGNED_IN),
    Page("/account/2fa/", SIGNED_IN),
    Page("/account/password/", SIGNED_IN),
    Page("/account/password/done/", SIGNED_IN),
    # Staff personas come with their second factor passed (client_for); without it see test_signin.
    Page("/admin/", STAFF_ROLES, anonymous=to_admin_signin, denied=to_admin_signin),
    Page("/api/schema/", SIGNED_IN, anonymous=api_refused),
    Page("/api/docs/", SIGNED_IN, anonymous=api_refused),
    Page("/healthz", ANYONE),
    # Load balancers ask without credentials; what it answers (200/503) is the readiness tests' concern.
    Page("/readyz", ANYONE, granted=lambda r: r.status_code in (200, 503) and r["Content-Type"] == "application/json"),
    # Signing in again while signed in just goes home.
    Page("/account/signin/", SIGNED_IN, anonymous=ok, granted=to_home),
]


def _cases() -> list[Any]:
    return [pytest.param(page, persona, id=f"{page.path} {persona}") for page in PAGES for persona in PERSONAS]


@pytest.mark.parametrize(("page", "persona"), _cases())
def test_page_permissions(page: Page, persona: str, request: pytest.FixtureRequest,
                          client_for: Callable[..., Client], db: Any) -> None:
    client = Client() if persona == "anonymous" else client_for(request.getfixturevalue(persona))
    response = client.get(page.path)
    expect = page.expect(persona)
    where = response.get("Location", "")
    assert expect(response), f"{persona} on {page.path}: got {response.status_code} {where}, wanted {expect.__name__}"


def test_every_persona_is_a_fixture_with_the_roles_the_table_says(request: pytest.FixtureRequest, db: Any) -> None:
    from resync_site.roles import user_roles

    for persona, roles in PERSONAS.items():
        if persona != "anonymous":
            assert user_roles(request.getfixturevalue(persona)) == roles, persona


# --- /metrics: a bearer token or an allowed network, whoever is signed in --------------------------

METRICS_TOKEN = "metrics-token-for-the-matrix-0123456789"


@pytest.mark.parametrize(
    ("remote_addr", "authorization", "status"),
    [
        pytest.param("127.0.0.1", "", 200, id="loopback, no token"),
        pytest.param("203.0.113.9", "", 403, id="outside network, no token"),
        pytest.param("203.0.113.9", f"Bearer {METRICS_TOKEN}", 200, id="outside network, right token"),
        pytest.param("203.0.113.9", "Bearer not-the-token", 403, id="outside network, wrong token"),
        pytest.param("203.0.113.9", f"Basic {METRICS_TOKEN}", 403, id="outside network, wrong scheme"),
    ],
)
def test_metrics_token_and_network_rule(remote_addr: str, authorization: str, status: int,
                                        settings: Any, db: Any) -> None:
    settings.METRICS_TOKEN = METRICS_TOKEN
    headers = {"Authorization": authorization} if authorization else {}
    response = Client(REMOTE_ADDR=remote_addr).get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 200:
        assert b"django_http_requests" in response.content


def test_metrics_without_a_configured_token_accepts_no_token(settings: Any, db: Any) -> None:
    settings.METRICS_TOKEN = ""
    response = Client(REMOTE_ADDR="203.0.113.9").get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status_code == 403
