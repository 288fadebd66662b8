"""Production mode refuses to start half-configured, and passes Django's deployment checklist.

Settings are read once at import, so each case runs `manage.py check` in its own process with an
environment built from scratch (nothing inherited from the test run).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

SECRET = "prod-secret-" + "k3y" * 20  # 72 characters, varied enough for check --deploy


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "RESYNC_DATA_DIR": str(tmp_path / "data"),
             "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=clean,
                          capture_output=True, text=True, timeout=120, check=False)


def _production(**overrides: str) -> dict[str, str]:
    env = {"RESYNC_ENV": "production", "SECRET_KEY": SECRET, "ALLOWED_HOSTS": "resync.example.com",
           "DATABASE_URL": "postgres://resync@db.example.com:5432/resync", "REDIS_URL": "redis://cache.example.com:6379/0"}
    env.update(overrides)
    return {k: v for k, v in env.items() if v != "<unset>"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"SECRET_KEY": "<unset>"}, "SECRET_KEY must be set", id="no SECRET_KEY"),
        pytest.param({"SECRET_KEY": "short-key"}, "SECRET_KEY must be at least 50 characters", id="short SECRET_KEY"),
        pytest.param({"ALLOWED_HOSTS": "<unset>"}, "ALLOWED_HOSTS must be set in production", id="no ALLOWED_HOSTS"),
        pytest.param({"DATABASE_URL": "<unset>"}, "DATABASE_URL must be set", id="no DATABASE_URL"),
        pytest.param({"DATABASE_URL": "sqlite:////tmp/resync.sqlite3"}, "DATABASE_URL must point at PostgreSQL",
                     id="SQLite in production"),
        pytest.param({"REDIS_URL": "<unset>"}, "REDIS_URL must be set", id="no REDIS_URL"),
        pytest.param({"OIDC_RP_CLIENT_ID": "resync"}, "OIDC_RP_CLIENT_SECRET must be set", id="half-configured OIDC"),
    ],
)
def test_production_refuses_to_start_half_configured(overrides: dict[str, str], message: str, tmp_path: Path) -> None:
    result = _manage(tmp_path, "check", **_production(**overrides))
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("Resync cannot start: ") and message in last_line, result.stderr
    assert "Traceback" not in result.stderr, "the operator gets one clear line, not a stack trace"


def test_production_passes_the_deployment_checklist(tmp_path: Path) -> None:
    # Strict on purpose: any warning (security settings, API schema gaps) is a deployment issue.
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **_production())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_with_oidc_configured_passes_too(tmp_path: Path) -> None:
    oidc = {"OIDC_RP_CLIENT_ID": "resync", "OIDC_RP_CLIENT_SECRET": "s3cret-value",
            "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://idp.example.com/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": "https://idp.example.com/token",
            "OIDC_OP_USER_ENDPOINT": "https://idp.example.com/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": "https://idp.example.com/jwks"}
    result = _manage(tmp_path, "check", "--deploy", **_production(**oidc))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "security." not in result.stdout + result.stderr
