"""Shared start-up for benchmarks: Django configured against the database the environment names."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def django_setup(*, default_database: str = "postgres://postgres@127.0.0.1:5432/resync_bench") -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resync_site.settings")
    os.environ.setdefault("RESYNC_ENV", "test")
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", default_database)
    os.environ.setdefault("RESYNC_DATA_DIR", str(ROOT / "var" / "bench"))
    import django

    django.setup()


def ensure_database() -> None:
    """Creates the benchmark database if missing and migrates it."""
    from django.conf import settings
    from django.core.management import call_command

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        import psycopg

        admin = psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname="postgres",
                                autocommit=True)
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            admin.execute(f'CREATE DATABASE "{db["NAME"]}"')
        admin.close()
    call_command("migrate", verbosity=0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
