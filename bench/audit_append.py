"""Audit trail: append throughput under 8 concurrent writers, and chain verification speed.

    .venv/bin/python bench/audit_append.py [--events 20000] [--writers 8] [--verify-events 1000000]

Runs against PostgreSQL (BENCH_DATABASE_URL, default the local `resync_bench` database). Targets:
>= 2,000 events/s appended with a valid chain; 1,000,000 events verified in <= 30 s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

from _setup import django_setup, ensure_database


def _writer(count: int, writer: int, start: multiprocessing.synchronize.Event, cpu_used: multiprocessing.Queue) -> None:  # type: ignore[name-defined]
    django_setup()
    from audit.models import AuditAction
    from audit.services import audit_record

    start.wait()
    began = time.process_time()
    for i in range(count):
        audit_record(action=AuditAction.JOB_ACTION, actor_label=f"bench:writer{writer}", target_type="job",
                     target_id=f"JOB_{i}", details={"writer": writer, "i": i, "justification": "benchmark"})
    cpu_used.put(time.process_time() - began)


def _empty_trail() -> None:
    from django.db import connection

    from audit.chain import GENESIS_HASH
    from audit.models import AuditChainHead

    with connection.cursor() as cursor:
        cursor.execute("SET resync.allow_truncate = 'on'")
        cursor.execute("TRUNCATE audit_auditevent")
        cursor.execute("SET resync.allow_truncate = 'off'")
    AuditChainHead.objects.update_or_create(pk=1, defaults={"sequence": 0, "hash": GENESIS_HASH})


def bench_append(events: int, writers: int) -> None:
    from django.db import connection

    from audit.selectors import chain_verify

    _empty_trail()
    connection.close()  # writers are separate processes with their own connections
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    cpu_used = context.Queue()
    per_writer = events // writers
    processes = [context.Process(target=_writer, args=(per_writer, n, start, cpu_used)) for n in range(writers)]
    for process in processes:
        process.start()
    time.sleep(2)  # let every writer import Django before the clock starts
    began = time.perf_counter()
    start.set()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - began
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise SystemExit(f"{len(failed)} writers failed (exit codes {failed})")
    total = per_writer * writers
    verify_began = time.perf_counter()
    report = chain_verify()
    verify_elapsed = time.perf_counter() - verify_began
    print(f"append: {total} events from {writers} writers in {elapsed:.2f} s = {total / elapsed:,.0f} events/s")
    writers_cpu = sum(cpu_used.get() for _ in processes)
    print(f"        writers' own CPU {writers_cpu:.2f} s in all = {writers_cpu / total * 1e6:.0f} us per event (the rest is PostgreSQL's)")
    print(f"verify: {report} in {verify_elapsed:.2f} s (chain valid: {report.ok})")


def bench_verify(events: int) -> None:
    """Builds a valid chain of `events` rows quickly (bulk insert of precomputed hashes), then verifies it."""
    from datetime import UTC, datetime, timedelta

    from django.db import transaction

    from audit.chain import GENESIS_HASH, event_hash
    from audit.models import AuditChainHead, AuditEvent
    from audit.selectors import chain_verify

    _empty_trail()
    began = time.perf_counter()
    prev = GENESIS_HASH
    base = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[AuditEvent] = []
    with transaction.atomic():
        for sequence in range(1, events + 1):
            fields = {
                "sequence": sequence, "timestamp": base + timedelta(milliseconds=sequence), "actor_id": None,
                "actor_label": "bench", "ip_address": "127.0.0.1", "request_id": "", "action": "job.action",
                "target_type": "job", "target_id": f"JOB_{sequence % 5000}", "target_label": "",
                "details": {"justification": "benchmark", "n": sequence}, "outcome": "success", "prev_hash": prev,
            }
            fields["hash"] = prev = event_hash(fields)
            batch.append(AuditEvent(**fields))
            if len(batch) == 10_000:
                AuditEvent.objects.bulk_create(batch)
                batch.clear()
        AuditEvent.objects.bulk_create(batch)
        AuditChainHead.objects.filter(pk=1).update(sequence=events, hash=prev)
    print(f"built {events:,} events in {time.perf_counter() - began:.1f} s")
    verify_began = time.perf_counter()
    report = chain_verify()
    print(f"verify: {report} in {time.perf_counter() - verify_began:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--verify-events", type=int, default=1_000_000)
    args = parser.parse_args()
    django_setup()
    ensure_database()
    bench_append(args.events, args.writers)
    if args.verify_events:
        bench_verify(args.verify_events)


if __name__ == "__main__":
    main()
