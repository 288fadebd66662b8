from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from knowledge.services import index_rebuild


class Command(BaseCommand):
    help = "Rebuild the knowledge vector index with the configured EMBEDDING_MODEL."

    def handle(self, *args: Any, **options: Any) -> None:
        count = index_rebuild(acting_user=None)
        self.stdout.write(self.style.SUCCESS(f"indexed {count} entries"))
