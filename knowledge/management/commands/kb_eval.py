from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from knowledge.evaluation import read_questions, run_eval


class Command(BaseCommand):
    help = (
        "Import a workbook into a scratch collection (rolled back afterwards), run every question and print "
        "JSON metrics: recall@1, recall@k, MRR overall and per kind, no-answer precision/recall."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kb", type=Path, required=True, help="knowledge workbook")
        parser.add_argument("--questions", type=Path, required=True, help="CSV: question, expected_ids, lang, kind")
        parser.add_argument("--k", type=int, default=5)
        parser.add_argument("--details", action="store_true", help="also list every question's ranking")

    def handle(self, *args: Any, **options: Any) -> None:
        for path in (options["kb"], options["questions"]):
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
        report = run_eval(
            workbook=options["kb"], questions=read_questions(options["questions"]), k=options["k"],
            keep_outcomes=options["details"],
        )
        output: dict[str, Any] = dict(report.metrics)
        if options["details"]:
            output["details"] = [
                {"question": o.question.question, "kind": o.question.kind, "expected": o.question.expected_ids,
                 "rank": o.rank, "top": o.ranked_ids[:3], "confident": o.confident, "reason": o.reason,
                 "similarity": round(o.top_similarity, 3)}
                for o in report.outcomes
            ]
        self.stdout.write(json.dumps(output, ensure_ascii=False, indent=2))
