from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.reports import report_pdf
from audit.selectors import report_figures


class Command(BaseCommand):
    help = "Writes the period report PDF for a period to a file (nothing stored; use the web page for that)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("start", type=date.fromisoformat)
        parser.add_argument("end", type=date.fromisoformat)
        parser.add_argument("output", type=Path)
        parser.add_argument("--language", default=settings.LANGUAGE_CODE, choices=[c for c, _ in settings.LANGUAGES])

    def handle(self, *args: Any, **options: Any) -> None:
        if options["end"] < options["start"]:
            raise CommandError("the period ends before it starts")
        figures = report_figures(period_start=options["start"], period_end=options["end"])
        options["output"].write_bytes(report_pdf(figures, language=options["language"], requested_by="manage.py"))
        self.stdout.write(f"wrote {options['output']} ({figures['events_total']} events, {figures['chain_result']})")
