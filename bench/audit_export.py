"""Audit compliance at scale: chain verification, CSV export and XLSX export.

    .venv/bin/python bench/audit_export.py [--events 1000000] [--xlsx-rows 100000] [--repeat 3] [--rebuild]

Runs against PostgreSQL (BENCH_DATABASE_URL, default the local `resync_audit_bench` database, created
and migrated if missing; the events are built once and reused while their count matches). Each
measurement runs in a fresh process so its peak RSS is its own. Targets: 1,000,000 events verified
in <= 30 s; CSV export of them in <= 60 s within <= 250 MB RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _setup import django_setup, ensure_database

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/resync_audit_bench"
ACTIONS = ("job.action", "chat.ai_answer", "auth.signin", "kb.entry_changed", "chat.action_confirmed")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def build(events: int) -> None:
    """A valid chain of `events` rows, hashed here and loaded with COPY (audit_record would take hours)."""
    from datetime import UTC, datetime, timedelta

    from django.db import connection, transaction

    from audit.chain import GENESIS_HASH, event_hash
    from audit.models import AuditChainHead, AuditEvent

    head = AuditChainHead.objects.filter(pk=1).first()
    if head and head.sequence == events and AuditEvent.objects.count() == events:
        print(f"reusing {events:,} events already built")
        return
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET resync.allow_truncate = 'on'")
        cursor.execute("TRUNCATE audit_auditevent")
        cursor.execute("SET resync.allow_truncate = 'off'")
    columns = ("sequence", "timestamp", "actor_id", "actor_label", "ip_address", "request_id", "action", "target_type",
               "target_id", "target_label", "details", "outcome", "prev_hash", "hash")
    prev = GENESIS_HASH
    base = datetime(2025, 1, 1, tzinfo=UTC)
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY audit_auditevent ({', '.join(columns)}) FROM STDIN") as copy:
            for sequence in range(1, events + 1):
                fields = {
                    "sequence": sequence, "timestamp": base + timedelta(seconds=sequence * 20), "actor_id": None,
                    "actor_label": f"user{sequence % 40}", "ip_address": "10.1.2.3", "request_id": f"r{sequence:x}",
                    "action": ACTIONS[sequence % len(ACTIONS)], "target_type": "job",
                    "target_id": f"JOB_{sequence % 5000}", "target_label": f"Job {sequence % 5000}",
                    "details": {"verb": "rerun", "n": sequence, "justification": "falha na conexão com o banco"},
                    "outcome": "success", "prev_hash": prev,
                }
                fields["hash"] = prev = event_hash(fields)
                copy.write_row([json.dumps(fields["details"]) if name == "details" else fields[name] for name in columns])
        AuditChainHead.objects.filter(pk=1).update(sequence=events, hash=prev)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")
    print(f"built {events:,} events in {time.perf_counter() - began:.1f} s")


def phase(name: str, xlsx_rows: int) -> dict[str, object]:
    """One measurement, in this (fresh) process."""
    from audit.selectors import EventFilters, chain_verify

    baseline = _rss_mb()
    began = time.perf_counter()
    result: dict[str, object] = {"phase": name}
    if name == "verify":
        report = chain_verify(read_archives=False)
        result["result"] = str(report)
    else:
        from audit.exports import export_write

        with tempfile.TemporaryDirectory() as folder:
            fmt = "csv" if name == "csv" else "xlsx"
            filters = EventFilters() if name == "csv" else EventFilters(sequence_max=xlsx_rows)
            manifest = export_write(filters=filters, fmt=fmt, path=Path(folder) / f"bench.{fmt}")
            result["result"] = f"{manifest['row_count']:,} rows, {manifest['size_bytes'] / 1e6:.0f} MB"
    result["seconds"] = round(time.perf_counter() - began, 2)
    result["peak_rss_mb"] = round(_rss_mb(), 1)
    result["rss_before_mb"] = round(baseline, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--phase", choices=("verify", "csv", "xlsx"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    django_setup(default_database=DEFAULT_DATABASE)
    if args.phase:
        print(json.dumps(phase(args.phase, args.xlsx_rows)))
        return
    ensure_database()
    if args.rebuild:
        from audit.models import AuditChainHead

        AuditChainHead.objects.filter(pk=1).update(sequence=-1)
    build(args.events)
    targets = {"verify": ("seconds", 30.0), "csv": ("seconds", 60.0), "xlsx": ("seconds", None)}
    for name in ("verify", "csv", "xlsx"):
        runs = []
        for _ in range(args.repeat):
            output = subprocess.run([sys.executable, __file__, "--phase", name, "--xlsx-rows", str(args.xlsx_rows)],
                                    check=True, capture_output=True, text=True, env=os.environ.copy()).stdout
            runs.append(json.loads(output.strip().splitlines()[-1]))
        seconds = statistics.median(run["seconds"] for run in runs)
        rss = max(run["peak_rss_mb"] for run in runs)
        target = targets[name][1]
        verdict = "" if target is None else f" (target <= {target:.0f} s: {'met' if seconds <= target else 'MISSED'})"
        rss_note = f" (target <= 250 MB: {'met' if rss <= 250 else 'MISSED'})" if name == "csv" else ""
        print(f"{name:6} {runs[0]['result']}: median {seconds:.2f} s of {len(runs)}{verdict}; "
              f"peak RSS {rss:.0f} MB{rss_note} (process at start {runs[0]['rss_before_mb']:.0f} MB); "
              f"runs {[run['seconds'] for run in runs]}")


if __name__ == "__main__":
    main()
