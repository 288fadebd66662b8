"""Audit tests write their files (exports, archives, anchors) into the test's own temporary folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection


@pytest.fixture(autouse=True)
def audit_dirs(settings: Any, tmp_path: Path) -> Path:
    settings.AUDIT_ANCHOR_DIR = tmp_path / "anchors"
    settings.AUDIT_ARCHIVE_DIR = tmp_path / "archive"
    settings.AUDIT_EXPORT_DIR = tmp_path / "exports"
    return tmp_path


def tamper(sql: str, params: list[object]) -> None:
    """Changes rows behind the trigger's back, the way someone with database access could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
