"""Every URL the site has, found by introspection (so a new URL is covered the day it is added):

- anonymous visitors and signed-in people without a role get nothing but a refusal (a redirect to
  a sign-in form, 401, 403, 404 or 405), except on the few URLs listed below as public or as open
  to anyone signed in: a new public page needs a row here, on purpose;
- a POST without a CSRF token never succeeds, whoever sends it;
- every form on every page a signed-in administrator can open carries a CSRF token;
- every websocket route refuses anonymous visitors (4401), roles without operations access (4403)
  and foreign origins, and accepts the roles that have it.

Role-by-role rows for each page are in tests/test_permissions.py and in each app's tests; this
file is the net under them. Secrets in logs: resync_site/tests/test_logging.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from resync_site.roles import OPERATIONS, user_roles

SAMPLES = {"int": "1", "uuid": str(uuid.UUID(int=1)), "str": "X", "slug": "x", "path": "x"}

# Anyone at all may open these (sign-in form, probes); /metrics has its own rule (tests/test_permissions.py).
PUBLIC = {"/healthz", "/readyz", "/account/signin/", "/metrics", "/account/language/", "/admin/login/", "/admin/logout/"}
# Anyone signed in, with or without a role: their own account pages and the API's description.
SIGNED_IN = {"/", "/account/2fa/", "/account/2fa/backup-codes/", "/account/password/", "/account/password/done/",
             "/api/schema/", "/api/docs/", "/account/signin/", "/account/language/"}


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for entry in patterns:
        pattern = entry.pattern
        if isinstance(pattern, RoutePattern):
            part = re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLES.get(m.group(1) or "str", "x"), str(pattern))
        elif isinstance(pattern, RegexPattern):
            regex = str(pattern).lstrip("^").rstrip("$").replace("\\Z", "")
            if "(?P<app_label>" in regex:
                regex = re.sub(r"\(\?P<app_label>([^|)]+)[^)]*\)", r"\1", regex)  # the first app of the admin's list
            regex = re.sub(r"\(\?P<\w+>[^)]*\)", "1", regex)
            if re.search(r"[()\[\]*+?\\]", regex):
                continue  # a pattern with no sensible sample (static file catch-alls)
            part = regex
        else:  # pragma: no cover
            continue
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + part)
        elif isinstance(entry, URLPattern):
            yield "/" + prefix + part


def all_paths() -> list[str]:
    paths = sorted(set(_walk(get_resolver().url_patterns)))
    return [p for p in paths if not p.startswith("/static/")]


def test_admin_urls_with_a_malformed_id_are_not_found(admin_user: Any, client_for: Any) -> None:
    # A custom admin view (the import preview, simple-history's history) once passed `x` straight to
    # a UUID / integer query: a 500 where Django's own views answer 404.
    client = client_for(admin_user)
    client.raise_request_exception = False
    for path in ("/admin/knowledge/importrun/x/change/", "/admin/knowledge/knowledgeentry/x/history/"):
        assert client.get(path).status_code == 404, path


def refused(response: Any, *, anonymous: bool) -> bool:
    if response.status_code in (401, 403, 404, 405):
        return True
    if response.status_code == 302:
        location = response["Location"]
        return location.startswith(("/account/signin/", "/admin/login/")) or (not anonymous and location == "/")
    return False


def test_the_walk_finds_every_app_and_the_admin(db: Any) -> None:
    paths = all_paths()
    for expected in ("/dashboard/", "/chat/", "/audit/", "/api/conversations/", "/api/jobs/", "/api/kb/search/",
                     "/admin/", "/admin/auth/user/", "/admin/audit/auditevent/"):
        assert expected in paths, expected
    assert len(paths) > 80


@pytest.mark.parametrize("persona", ["anonymous", "outsider"])
def test_no_url_serves_anonymous_visitors_or_people_without_a_role(persona: str, request: Any, client_for: Any) -> None:
    client = Client(REMOTE_ADDR="203.0.113.9") if persona == "anonymous" else client_for(request.getfixturevalue("outsider"))
    open_to = PUBLIC if persona == "anonymous" else PUBLIC | SIGNED_IN
    leaks = []
    for path in all_paths():
        if path in open_to:
            continue
        response = client.get(path)
        if not refused(response, anonymous=persona == "anonymous"):
            leaks.append(f"{path} -> {response.status_code} {response.get('Location', '')}")
    assert not leaks, "served without the right role:\n" + "\n".join(leaks)


def test_a_post_without_csrf_token_never_succeeds(admin_user: Any, operator: Any, client_for: Any) -> None:
    failures = []
    for user in (admin_user, operator):
        client = client_for(user)
        client.handler.enforce_csrf_checks = True
        for path in all_paths():
            response = client.post(path, {"x": "1"})
            if response.status_code < 400:
                failures.append(f"{user.username} POST {path} -> {response.status_code}")
    assert not failures, "\n".join(failures)


FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S | re.I)


def test_every_post_form_carries_a_csrf_token(admin_user: Any, client_for: Any) -> None:
    client = client_for(admin_user)
    checked, missing = 0, []
    for path in all_paths():
        response = client.get(path)
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        for form in FORM.findall(response.content.decode(errors="replace")):
            if re.search(r'method=["\']?post', form, re.I):
                checked += 1
                if "csrfmiddlewaretoken" not in form:
                    missing.append(f"{path}: {form[:120]}")
    assert checked >= 10, f"only {checked} forms found"
    assert not missing, "\n".join(missing)


def test_every_admin_model_needs_a_staff_role_with_a_second_factor(operator: Any, reviewer: Any, client_for: Any) -> None:
    """Operators (not staff) and staff without the second factor never reach an admin page."""
    unverified = client_for(reviewer, verified=False)
    for model, model_admin in admin.site._registry.items():
        path = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        for client in (client_for(operator), unverified):
            response = client.get(path)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), path
            # An admin action posted straight at the list page does not run either.
            actions = list(model_admin.actions or [])
            if actions:
                name = actions[0] if isinstance(actions[0], str) else actions[0].__name__
                response = client.post(path, {"action": name, "_selected_action": ["1"]})
                assert response.status_code in (302, 403), (path, name, response.status_code)


# --- websockets ----------------------------------------------------------------------------------


def _ws_routes() -> list[str]:
    from resync_site.routing import websocket_urlpatterns

    return ["/" + str(p.pattern) for p in websocket_urlpatterns]


async def _ws_outcome(path: str, cookie: str | None, origin: str = "http://127.0.0.1") -> Any:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: F401  (app import order)

    from resync_site.asgi import application

    headers = [(b"origin", origin.encode()), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=10)
    if connected:
        # Consumers accept and then close with their code, so a browser sees why (a close before
        # the accept reaches it as a bare HTTP 403).
        output = {} if await communicator.receive_nothing(timeout=0.5) else await communicator.receive_output(timeout=1)
        if output.get("type") == "websocket.close":
            connected, code = False, output.get("code")
    await communicator.disconnect()
    return connected, code


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("persona", ["anonymous", "outsider", "operator", "supervisor", "reviewer", "compliance", "admin_user"])
async def test_websocket_routes_by_role(persona: str, request: Any) -> None:
    from asgiref.sync import sync_to_async

    cookie = None
    expected_ok = False
    if persona != "anonymous":
        user = await sync_to_async(request.getfixturevalue)(persona)
        client = Client()
        await sync_to_async(client.force_login)(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        expected_ok = bool(set(await sync_to_async(user_roles)(user)) & set(OPERATIONS))
    for path in _ws_routes():
        connected, code = await _ws_outcome(path, cookie)
        if expected_ok:
            assert connected, (path, persona, code)
            # The same session from a page of another site is refused before any consumer runs.
            assert (await _ws_outcome(path, cookie, origin="https://evil.example.com"))[0] is False
        else:
            assert not connected and code == (4401 if persona == "anonymous" else 4403), (path, persona, code)
