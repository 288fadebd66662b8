from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from knowledge import services
from resync_site.lib.errors import ApplicationError


class Command(BaseCommand):
    help = "Import a knowledge workbook (.xlsx, .xlsm, .csv): validate, write, index."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="validate and show the preview; write nothing")
        parser.add_argument("--only-valid", action="store_true", help="import the valid rows even if others fail")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            plan = services.import_plan(data=path.read_bytes(), file_name=path.name)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        preview = plan.describe()
        if not options["json"]:
            self.stdout.write(
                f"sheet '{plan.parsed.sheet}' (header on row {plan.parsed.header_row}); "
                f"other sheets ignored: {', '.join(plan.parsed.other_sheets) or '-'}"
            )
            self.stdout.write("columns: " + ", ".join(f"{h} -> {f}" for f, h in plan.parsed.columns.items()))
            for error in plan.parsed.errors:
                self.stdout.write(self.style.WARNING(f"  {error}"))
            self.stdout.write("preview: " + ", ".join(f"{k} {v}" for k, v in plan.counts.items()))
        if options["dry_run"]:
            if options["json"]:
                self.stdout.write(json.dumps(preview, ensure_ascii=False, indent=2))
            return
        try:
            result = services.import_apply(acting_user=None, plan=plan, only_valid=options["only_valid"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        total = len(result.written_ids)

        def progress(done: int) -> None:
            if not options["json"]:
                self.stdout.write(f"\rindexed {done}/{total}", ending="")
                self.stdout.flush()

        services.entries_index(entry_ids=result.written_ids, progress=progress)
        if options["json"]:
            self.stdout.write(json.dumps(preview | {"result": result.counts}, ensure_ascii=False, indent=2))
        else:
            self.stdout.write("")
            self.stdout.write(self.style.SUCCESS("imported: " + ", ".join(f"{k} {v}" for k, v in result.counts.items())))
