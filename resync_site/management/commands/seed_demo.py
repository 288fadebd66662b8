"""Demo users for every role, for the embedded default (`make run`). Refuses to run in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from resync_site.roles import STAFF_ROLES, Role
from resync_site.services import user_set_roles

DEMO_PASSWORD_SUFFIX = "-demo-2026"  # noqa: S105 (demo accounts are meant to be known)
# A fixed backup code so a demo staff user can pass the admin's second factor without a phone.
DEMO_BACKUP_CODE = "demo-otp-123"


class Command(BaseCommand):
    help = "Creates (or refreshes) one demo user per role and prints their credentials."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo creates well-known passwords and never runs in production mode")
        User = get_user_model()
        rows = []
        with transaction.atomic():
            for role in Role:
                username = role.value
                password = f"{username}{DEMO_PASSWORD_SUFFIX}"
                user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@resync.example"})
                user.set_password(password)
                user.first_name = str(role.label)
                user.is_superuser = role is Role.ADMIN
                user.save()
                user_set_roles(user=user, roles=[role.value], reason="demo data")
                otp = ""
                if role in STAFF_ROLES:
                    device, _ = StaticDevice.objects.get_or_create(user=user, name="backup", defaults={"confirmed": True})
                    if not device.token_set.filter(token=DEMO_BACKUP_CODE).exists():
                        StaticToken.objects.create(device=device, token=DEMO_BACKUP_CODE)
                    otp = DEMO_BACKUP_CODE
                    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
                rows.append((role.value, username, password, otp))
        self.stdout.write("Demo users (embedded default only):")
        self.stdout.write(f"  {'role':<11} {'username':<11} {'password':<24} admin second factor")
        for role_name, username, password, otp in rows:
            note = f"backup code {otp} (reusable for the demo: `make run` restores it)" if otp else "-"
            self.stdout.write(f"  {role_name:<11} {username:<11} {password:<24} {note}")
