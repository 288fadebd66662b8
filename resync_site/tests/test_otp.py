"""Second-factor enrollment at /account/2fa/ and the backup codes that stand in for the phone."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.test import Client
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, AuditEvent
from conftest import PASSWORD
from resync_site.services import BACKUP_CODE_COUNT
from resync_site.tests.helpers import totp_now, totp_wrong

SETUP = "/account/2fa/"
CODE = re.compile(r"<li><code>([0-9a-f]+)</code></li>")


def _signed_in(username: str) -> Client:
    client = Client()
    assert client.post("/account/signin/", {"username": username, "password": PASSWORD}).status_code == 302
    return client


def test_enrollment_page_needs_a_signed_in_user() -> None:
    response = Client().get(SETUP)
    assert response.status_code == 302 and response["Location"].startswith("/account/signin/")


def test_enrollment_page_shows_a_qr_code_and_the_key(operator: Any) -> None:
    response = _signed_in("olivia").get(SETUP)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'src="data:image/svg+xml' in html
    device = TOTPDevice.objects.get(user=operator, confirmed=False)
    assert "otpauth" in device.config_url and "Resync" in device.config_url
    assert re.search(r'<code id="otp-secret">[A-Z2-7]{32}</code>', html)
    # Reloading shows the same pending authenticator, so a slow scan still works.
    assert _signed_in("olivia").get(SETUP).status_code == 200
    assert TOTPDevice.objects.filter(user=operator).count() == 1


def test_a_wrong_code_is_refused(operator: Any) -> None:
    client = _signed_in("olivia")
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=operator)
    response = client.post(SETUP, {"token": totp_wrong(device)})
    assert response.status_code == 200
    assert response.context["form"].errors["token"]
    device.refresh_from_db()
    assert not device.confirmed
    assert not AuditEvent.objects.filter(action=AuditAction.OTP_ENROLLED).exists()


def test_the_right_code_enrolls_and_returns_backup_codes_once(reviewer: Any) -> None:
    client = _signed_in("renata")
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=reviewer)
    assert client.get("/admin/").status_code == 302

    response = client.post(SETUP, {"token": totp_now(device)})
    assert response.status_code == 200
    codes = CODE.findall(response.content.decode())
    assert len(codes) == BACKUP_CODE_COUNT == len(set(codes))
    device.refresh_from_db()
    assert device.confirmed
    [event] = AuditEvent.objects.filter(action=AuditAction.OTP_ENROLLED)
    assert event.actor == reviewer
    assert event.details == {"device": "totp", "backup_codes": BACKUP_CODE_COUNT}
    assert not any(code in str(event.details) for code in codes)

    # Enrolling verified this session: the admin opens without signing in again.
    assert client.get("/admin/").status_code == 200
    # The codes are not shown again on the page.
    page = client.get(SETUP).content.decode()
    assert not any(code in page for code in codes)


def test_a_backup_code_works_once(reviewer: Any) -> None:
    client = _signed_in("renata")
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=reviewer)
    codes = CODE.findall(client.post(SETUP, {"token": totp_now(device)}).content.decode())
    backup = StaticDevice.objects.get(user=reviewer, name="backup").persistent_id

    # The phone is lost: a backup code opens the admin ...
    first = Client()
    response = first.post("/admin/login/?next=/admin/", {"username": "renata", "password": PASSWORD,
                                                         "otp_token": codes[0], "otp_device": backup})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert first.get("/admin/").status_code == 200
    # ... once.
    second = Client()
    response = second.post("/admin/login/?next=/admin/", {"username": "renata", "password": PASSWORD,
                                                          "otp_token": codes[0], "otp_device": backup})
    assert response.status_code == 200
    assert second.get("/admin/").status_code == 302
    assert StaticToken.objects.filter(device__user=reviewer).count() == BACKUP_CODE_COUNT - 1


def test_new_backup_codes_replace_the_old_ones(reviewer: Any) -> None:
    client = _signed_in("renata")
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=reviewer)
    old = CODE.findall(client.post(SETUP, {"token": totp_now(device)}).content.decode())

    response = client.post("/account/2fa/backup-codes/")
    new = CODE.findall(response.content.decode())
    assert len(new) == BACKUP_CODE_COUNT and not set(new) & set(old)
    assert AuditEvent.objects.filter(action=AuditAction.OTP_BACKUP_CODES, actor=reviewer).count() == 1
    stale = Client().post("/admin/login/?next=/admin/", {"username": "renata", "password": PASSWORD,
                                                         "otp_token": old[0],
                                                         "otp_device": StaticDevice.objects.get(user=reviewer, name="backup").persistent_id})
    assert stale.status_code == 200


def test_new_backup_codes_need_a_verified_session(operator: Any, client_for: Callable[..., Client]) -> None:
    response = client_for(operator).post("/account/2fa/backup-codes/")
    assert response.status_code == 302 and response["Location"] == SETUP
    assert not AuditEvent.objects.filter(action=AuditAction.OTP_BACKUP_CODES).exists()
