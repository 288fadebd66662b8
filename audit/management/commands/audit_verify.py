from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.selectors import anchors_verify, chain_verify


class Command(BaseCommand):
    help = ("Walks the audit chain (archives, then the online table) and prints 'OK <n> events' or the first "
            "broken sequence number and why; then checks the anchors, which catch a rewrite of the whole table.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-anchors", action="store_true", help="skip the anchor check")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        report = chain_verify()
        elapsed = time.perf_counter() - started
        if not report.ok:
            raise CommandError(str(report))
        self.stdout.write(f"{report} ({elapsed:.1f} s)")
        if not options["no_anchors"]:
            anchors = anchors_verify()
            if not anchors.ok:
                raise CommandError(str(anchors))
            self.stdout.write(str(anchors))
