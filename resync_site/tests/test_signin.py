"""Password sign-in, lockout, sign-out, password change and the admin's second factor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, AuditEvent, AuditOutcome
from conftest import PASSWORD
from resync_site.tests.helpers import totp_now, totp_wrong

SIGNIN = "/account/signin/"


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


def test_sign_in_and_sign_out_are_audited(operator: Any) -> None:
    client = Client()
    response = client.post(SIGNIN, {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200

    [signin] = _events(AuditAction.SIGNIN)
    assert signin.actor == operator
    assert signin.details == {"method": "password"}
    assert signin.ip_address == "127.0.0.1"

    response = client.post("/account/signout/")
    assert response.status_code == 302
    assert client.get("/").status_code == 302, "signed out: the home page sends to sign-in again"
    [signout] = _events(AuditAction.SIGNOUT)
    assert signout.actor == operator


def test_sign_in_keeps_a_safe_next_page_and_drops_an_outside_one(operator: Any) -> None:
    response = Client().post(f"{SIGNIN}?next=/account/2fa/", {"username": "olivia", "password": PASSWORD,
                                                             "next": "/account/2fa/"})
    assert response["Location"] == "/account/2fa/"
    response = Client().post(SIGNIN, {"username": "olivia", "password": PASSWORD, "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_a_wrong_password_is_refused_and_audited_without_the_password(operator: Any) -> None:
    response = Client().post(SIGNIN, {"username": "olivia", "password": "not-her-password-7"})
    assert response.status_code == 200
    assert "_auth_user_id" not in Client().session
    [failed] = _events(AuditAction.SIGNIN_FAILED)
    assert failed.outcome == AuditOutcome.FAILURE
    assert failed.target_label == "olivia"
    assert "not-her-password-7" not in str(failed.details)


def test_repeated_failures_lock_the_account_out(operator: Any, supervisor: Any) -> None:
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(1, limit):
        response = client.post(SIGNIN, {"username": "olivia", "password": f"guess-{attempt}-xyz"})
        assert response.status_code == 200, f"attempt {attempt} is a plain failure"
    locked = client.post(SIGNIN, {"username": "olivia", "password": "guess-last-xyz"})
    assert locked.status_code == 429
    assert "registration/locked_out.html" in [t.name for t in locked.templates]

    # Even the right password does not get in while the lock holds.
    still = client.post(SIGNIN, {"username": "olivia", "password": PASSWORD})
    assert still.status_code == 429
    assert "_auth_user_id" not in client.session

    assert len(_events(AuditAction.SIGNIN_FAILED)) >= limit
    lockouts = _events(AuditAction.LOCKED_OUT)
    assert lockouts, "the lockout is in the audit trail"
    assert {(e.outcome, e.target_label) for e in lockouts} == {(AuditOutcome.REFUSED, "olivia")}
    assert not _events(AuditAction.SIGNIN)

    # The lock is per account and address: a colleague at the same desk still signs in.
    other = Client().post(SIGNIN, {"username": "sergio", "password": PASSWORD})
    assert other.status_code == 302


def test_password_change_is_audited_and_the_new_password_works(operator: Any,
                                                               client_for: Callable[..., Client]) -> None:
    client = client_for(operator)
    new = "a-new-long-passphrase-31"
    response = client.post("/account/password/", {"old_password": PASSWORD, "new_password1": new,
                                                   "new_password2": new})
    assert response.status_code == 302 and response["Location"] == "/account/password/done/"
    assert client.get("/").status_code == 200, "changing the password keeps this session signed in"
    [event] = _events(AuditAction.PASSWORD_CHANGED)
    assert event.actor == operator
    assert new not in str(event.details) and PASSWORD not in str(event.details)

    assert Client().post(SIGNIN, {"username": "olivia", "password": PASSWORD}).status_code == 200
    assert Client().post(SIGNIN, {"username": "olivia", "password": new}).status_code == 302


def test_password_change_refuses_a_wrong_old_password(operator: Any, client_for: Callable[..., Client]) -> None:
    response = client_for(operator).post("/account/password/", {
        "old_password": "wrong-old-password", "new_password1": "another-passphrase-8",
        "new_password2": "another-passphrase-8"})
    assert response.status_code == 200
    assert not _events(AuditAction.PASSWORD_CHANGED)


@pytest.fixture
def reviewer_with_authenticator(reviewer: Any) -> tuple[Any, TOTPDevice]:
    return reviewer, TOTPDevice.objects.create(user=reviewer, name="phone", confirmed=True)


def _admin_login(client: Client, username: str, **fields: str) -> Any:
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": PASSWORD, **fields})


def test_admin_needs_the_second_factor(reviewer_with_authenticator: tuple[Any, TOTPDevice]) -> None:
    _, device = reviewer_with_authenticator
    client = Client()
    assert client.post(SIGNIN, {"username": "renata", "password": PASSWORD}).status_code == 302
    assert client.get("/").status_code == 200

    for page in ("/admin/", "/admin/auth/user/", "/admin/audit/auditevent/"):
        response = client.get(page)
        assert response.status_code == 302, f"{page} opened without a second factor"
        assert response["Location"].startswith("/admin/login/")

    # The admin's sign-in form: password and code; the first try lists her devices to pick from.
    token = totp_now(device)
    ask_device = _admin_login(client, "renata", otp_token=token)
    assert ask_device.status_code == 200
    assert device.persistent_id in ask_device.content.decode()
    verified = _admin_login(client, "renata", otp_token=token, otp_device=device.persistent_id)
    assert verified.status_code == 302 and verified["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    # Past the second factor, the role's own permissions decide (a reviewer manages no accounts).
    assert client.get("/admin/auth/user/").status_code == 403


def test_admin_refuses_a_wrong_code(reviewer_with_authenticator: tuple[Any, TOTPDevice]) -> None:
    _, device = reviewer_with_authenticator
    client = Client()
    refused = _admin_login(client, "renata", otp_token=totp_wrong(device), otp_device=device.persistent_id)
    assert refused.status_code == 200
    assert refused.context["form"].errors
    assert client.get("/admin/").status_code == 302
    # Guessing is slowed down: right after a wrong code even the right one waits a moment.
    throttled = _admin_login(client, "renata", otp_token=totp_now(device), otp_device=device.persistent_id)
    assert throttled.status_code == 200


def test_admin_without_an_enrolled_authenticator_stays_closed(reviewer: Any) -> None:
    client = Client()
    response = _admin_login(client, "renata", otp_token="123456")
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_admin_stays_closed_to_non_staff_even_with_a_second_factor(operator: Any) -> None:
    device = TOTPDevice.objects.create(user=operator, name="phone", confirmed=True)
    client = Client()
    response = _admin_login(client, "olivia", otp_token=totp_now(device), otp_device=device.persistent_id)
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302
