from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser
from oauth2_provider.models import Application


class Command(BaseCommand):
    help = "Creates or updates the relying party (Resync) and one user with the given groups. Safe to repeat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--client-secret", required=True)
        parser.add_argument("--redirect-uri", required=True)
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--groups", default="", help="comma-separated; replaces the user's groups")

    def handle(self, *args: Any, **o: Any) -> None:
        user, _ = User.objects.get_or_create(username=o["username"])
        first, _, last = o["name"].partition(" ")
        user.email, user.first_name, user.last_name = o["email"], first, last
        user.set_password(o["password"])
        user.save()
        names = [g.strip() for g in o["groups"].split(",") if g.strip()]
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in names])

        app = Application.objects.filter(client_id=o["client_id"]).first() or Application(client_id=o["client_id"])
        app.name = "Resync"
        app.client_type = Application.CLIENT_CONFIDENTIAL
        app.authorization_grant_type = Application.GRANT_AUTHORIZATION_CODE
        app.redirect_uris = o["redirect_uri"]
        app.client_secret = o["client_secret"]  # hashed on save
        app.skip_authorization = True  # the consent screen of a company IdP is out of scope
        app.algorithm = Application.RS256_ALGORITHM
        app.save()
        self.stdout.write(f"user {user.username} groups={names} client={app.client_id}")
