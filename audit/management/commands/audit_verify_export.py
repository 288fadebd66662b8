from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.exports import export_verify


class Command(BaseCommand):
    help = ("Checks an audit export against its manifest (SHA-256, row count, first and last sequence and hash), "
            "each row against its own hash, and the rows against the chain. Prints 'OK <n> rows ...' or why not.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("manifest", type=Path)
        parser.add_argument("--no-chain", action="store_true",
                            help="check the file and its rows only, not against this database's chain")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["file"].exists():
            raise CommandError(f"no such file: {options['file']}")
        result = export_verify(options["file"], options["manifest"], check_chain=not options["no_chain"])
        if not result.ok:
            raise CommandError(str(result))
        self.stdout.write(str(result))
