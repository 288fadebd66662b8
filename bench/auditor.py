"""AI auditor and verified-answer benchmark on the shared sample knowledge base.

    .venv/bin/python bench/auditor.py [--copies 4] [--matches 200]

1. The nightly sweep over the sample (71 entries) plus N learned near-copies of each: entries/s,
   findings by type (how noisy the auditor is on the team's real base).
2. A second sweep (nothing new: every finding only touched), entries/s.
3. `verified_answer_match` latency p50/p95 with 200 verified answers.

All in a transaction that is rolled back and a scratch Qdrant collection that is dropped, in its own
database (BENCH_DATABASE_URL, default resync_learn_bench) and data folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("RESYNC_DATA_DIR", str(Path(__file__).resolve().parent.parent / "var" / "bench-learn"))
from _setup import django_setup, ensure_database, percentile

django_setup(default_database="postgres://postgres@127.0.0.1:5432/resync_learn_bench")
ensure_database()

from django.db import transaction  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kb" / "knowledge_base.xlsx"


class Rollback(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=1, help="learned near-copies per sample entry")
    parser.add_argument("--matches", type=int, default=200)
    args = parser.parse_args()

    from knowledge import services
    from knowledge.auditor import audit_context, auditor_run
    from knowledge.index import drop_collection
    from knowledge.learning import verified_answer_create, verified_answer_match
    from knowledge.models import EntryStatus, KnowledgeEntry

    collection = f"bench_auditor_{uuid.uuid4().hex[:8]}"
    with override_settings(QDRANT_COLLECTION=collection):
        try:
            with transaction.atomic():
                plan = services.import_plan(data=SAMPLE.read_bytes(), file_name=SAMPLE.name)
                ids = services.import_apply(acting_user=None, plan=plan).written_ids
                services.entries_index(entry_ids=ids)
                sample = list(KnowledgeEntry.objects.filter(pk__in=ids))
                for n in range(args.copies):
                    for entry in sample:
                        services.entry_create(
                            acting_user=None, external_id=f"LRN-B{n}-{entry.external_id}", status=EntryStatus.PENDING_REVIEW,
                            source="learned", symptom=entry.symptom + " (de novo esta noite)", solution=entry.solution,
                            title=entry.title, cause=entry.cause, error_codes=entry.error_codes,
                            job_patterns=entry.job_patterns)
                total = KnowledgeEntry.objects.count()
                ctx = audit_context()
                started = time.perf_counter()
                first = auditor_run(ctx=ctx)
                sweep = time.perf_counter() - started
                started = time.perf_counter()
                second = auditor_run(ctx=audit_context())
                resweep = time.perf_counter() - started
                print(f"entries: {total} ({len(sample)} sample + {total - len(sample)} learned copies)")
                print(f"sweep 1: {sweep:.2f} s, {total / sweep:.0f} entries/s, {first.new} findings; by type: {first.by_type}")
                print(f"sweep 2: {resweep:.2f} s, {total / resweep:.0f} entries/s, new {second.new}, seen {second.seen}")
                print(f"skipped: {first.skipped}")
                from knowledge.models import Finding

                for finding in Finding.objects.filter(type__in=["contradiction", "secret", "dangerous"]):
                    print(f"  {finding.type} {finding.entry.external_id}: {finding.reason[:150]}")

                approved = [e for e in sample if e.status == EntryStatus.APPROVED]
                for i in range(args.matches):
                    entry = approved[i % len(approved)]
                    verified_answer_create(acting_user=None, entry=entry, question=f"{entry.title} ({i})")
                timings = []
                questions = [e.symptom[:200] for e in approved]
                for i in range(args.matches):
                    started = time.perf_counter()
                    verified_answer_match(questions[i % len(questions)], count_hit=False)
                    timings.append((time.perf_counter() - started) * 1000)
                print(f"verified_answer_match with {args.matches} answers: p50 {statistics.median(timings):.1f} ms, "
                      f"p95 {percentile(timings, 95):.1f} ms")
                raise Rollback
        except Rollback:
            pass
        finally:
            drop_collection(collection)


if __name__ == "__main__":
    main()
