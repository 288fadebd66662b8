from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.retention import anchor_write
from audit.selectors import anchor_file_path


class Command(BaseCommand):
    help = "Writes the chain head (sequence, hash) to the anchor table and appends it to the anchor file."

    def handle(self, *args: Any, **options: Any) -> None:
        anchor = anchor_write()
        self.stdout.write(f"anchored sequence {anchor.sequence} {anchor.hash} in {anchor_file_path()}")
