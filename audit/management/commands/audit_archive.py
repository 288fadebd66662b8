from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.retention import archive_run, retention_cutoff
from resync_site.lib.errors import ApplicationError


class Command(BaseCommand):
    help = (f"Archives events older than the retention period (AUDIT_RETENTION_MONTHS, now "
            f"{settings.AUDIT_RETENTION_MONTHS}) to compressed JSON lines with a manifest, then removes them "
            "from the online table. Audited; asks for --yes.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", help="archive events older than this date (YYYY-MM-DD) instead")
        parser.add_argument("--user", help="the administrator running this (recorded in the trail)")
        parser.add_argument("--yes", action="store_true", help="really archive and remove the events")

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = retention_cutoff()
        if options["before"]:
            try:
                cutoff = timezone.make_aware(datetime.fromisoformat(options["before"]))
            except ValueError as exc:
                raise CommandError(f"--before: {exc}") from exc
        if not options["yes"]:
            raise CommandError(f"This removes events older than {cutoff.isoformat()} from the online table "
                               "after archiving them; run again with --yes.")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no such user: {options['user']}")
        try:
            archive = archive_run(acting_user=user, before=cutoff, actor_label="" if user else "system:cli")
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if archive is None:
            self.stdout.write(f"nothing older than {cutoff.isoformat()} to archive")
            return
        self.stdout.write(f"archived {archive.row_count} events (#{archive.first_sequence}..#{archive.last_sequence}) "
                          f"to {archive.file_name}")
