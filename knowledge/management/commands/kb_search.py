from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from knowledge.retrieval import search


class Command(BaseCommand):
    help = "Search the knowledge base (approved entries) and print the ranked results."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("question")
        parser.add_argument("--limit", type=int, default=5)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        result = search(options["question"], limit=options["limit"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
            return
        verdict = "confident" if result.confident else "NOT IN THE KNOWLEDGE BASE"
        self.stdout.write(f"{verdict} ({result.reason})")
        for rank, hit in enumerate(result.hits, start=1):
            self.stdout.write(
                f"{rank}. {hit.external_id}  score {hit.score:.3f}  similarity {hit.similarity:.3f}  "
                f"[{', '.join(hit.matched)}]\n   {hit.title}"
            )
