"""Writes about people: roles, preferences and second factors. Each one audits itself."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.http import HttpRequest
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction
from audit.services import audit_record
from audit.signals import audited_by_caller
from resync_site.models import UserPreference
from resync_site.roles import ROLE_PERMISSIONS, STAFF_ROLES, Role

BACKUP_CODE_COUNT = 10


def roles_sync() -> None:
    """Creates the role groups and grants each the model permissions ROLE_PERMISSIONS names."""
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        if names == ("*",):
            permissions = Permission.objects.all()
        else:
            wanted = {tuple(name.split(".", 1)) for name in names}
            permissions = [
                p for p in Permission.objects.select_related("content_type")
                if (p.content_type.app_label, p.codename) in wanted
            ]
        group.permissions.set(permissions)


@transaction.atomic
def user_set_roles(*, user: Any, roles: Iterable[str], acting_user: Any = None, request: HttpRequest | None = None,
                   reason: str = "") -> None:
    """Makes `roles` the user's roles exactly; staff roles also open the admin (behind its second factor)."""
    wanted = {Role(role).value for role in roles}
    current = set(user.groups.values_list("name", flat=True)) & {r.value for r in Role}
    if wanted == current and user.is_staff == bool(wanted & {r.value for r in STAFF_ROLES}):
        return
    keep_other = list(user.groups.exclude(name__in=[r.value for r in Role]))
    with audited_by_caller():
        user.groups.set(keep_other + [Group.objects.get_or_create(name=name)[0] for name in sorted(wanted)])
    user.is_staff = bool(wanted & {r.value for r in STAFF_ROLES}) or user.is_superuser
    user.save(update_fields=["is_staff"])
    user.__dict__.pop("_resync_roles", None)
    audit_record(
        action=AuditAction.ROLE_CHANGED,
        actor=acting_user,
        actor_label="" if acting_user is not None else "system",
        request=request,
        target_type="user",
        target_id=user.pk,
        target_label=user.get_username(),
        details={"before": sorted(current), "after": sorted(wanted), "reason": reason},
    )


@transaction.atomic
def user_set_language(*, user: Any, language: str, request: HttpRequest | None = None) -> None:
    preference, _ = UserPreference.objects.get_or_create(user=user)
    before = preference.language
    preference.language = language
    preference.full_clean()
    preference.save()
    audit_record(action=AuditAction.LANGUAGE_CHANGED, actor=user, request=request, target_type="user",
                 target_id=user.pk, target_label=user.get_username(), details={"before": before, "after": language})


def totp_pending_device(*, user: Any) -> TOTPDevice:
    """The unconfirmed authenticator the enrollment page shows as a QR code (made once, reused)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


@transaction.atomic
def totp_enroll(*, user: Any, token: str, request: HttpRequest | None = None) -> list[str] | None:
    """Confirms the pending authenticator if `token` is right; returns fresh backup codes, shown once."""
    device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
    if device is None or not device.verify_token(token.strip().replace(" ", "")):
        return None
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
    codes = backup_codes_regenerate(user=user, request=request, audit=False)
    audit_record(action=AuditAction.OTP_ENROLLED, actor=user, request=request, target_type="user",
                 target_id=user.pk, target_label=user.get_username(), details={"device": "totp", "backup_codes": len(codes)})
    if request is not None:
        from django_otp import login as otp_login

        otp_login(request, device)
    return codes


@transaction.atomic
def backup_codes_regenerate(*, user: Any, request: HttpRequest | None = None, audit: bool = True) -> list[str]:
    device, _ = StaticDevice.objects.get_or_create(user=user, name="backup", defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [secrets.token_hex(5) for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    if audit:
        audit_record(action=AuditAction.OTP_BACKUP_CODES, actor=user, request=request, target_type="user",
                     target_id=user.pk, target_label=user.get_username(), details={"count": len(codes)})
    return codes
