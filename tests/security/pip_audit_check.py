"""Known vulnerabilities in the locked requirements, without ever passing silently.

`pip-audit` asks a vulnerability service about every pinned package. When the service cannot be
reached (these machines reach the package index but not its per-release JSON API, nor OSV) it
skips each package with "could not be audited" and still says "No known vulnerabilities found"
with exit code 0. This wrapper reads its JSON report instead:

- a known vulnerability in any package: exit 1, always;
- some packages audited, some skipped: exit 1 (a partial audit is not an audit);
- nothing could be audited (no service reachable): a loud NOT CHECKED banner, and exit 1 when
  `PIP_AUDIT_STRICT=1` (set it wherever a vulnerability service is reachable), else exit 0 so the
  rest of `make test` still runs offline.

Run: `.venv/bin/python tests/security/pip_audit_check.py requirements/base.txt [more.txt ...]`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TIMEOUT_SECONDS = 300


def audit(requirements: Path) -> tuple[list[str], list[str], int]:
    """(vulnerability lines, skipped package lines, packages audited) for one locked file."""
    pip_audit = Path(sys.executable).with_name("pip-audit")
    command = [str(pip_audit), "-r", str(requirements), "--require-hashes", "--disable-pip",
               "--progress-spinner", "off", "--format", "json"]
    service = os.environ.get("PIP_AUDIT_SERVICE")  # e.g. "osv" (with PIP_AUDIT_OSV_URL for a mirror)
    if service:
        command += ["--vulnerability-service", service]
    if os.environ.get("PIP_AUDIT_OSV_URL"):
        command += ["--osv-url", os.environ["PIP_AUDIT_OSV_URL"]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        # pip-audit exits 1 with a JSON report when it finds something; anything else is a crash.
        print(result.stdout[-2000:], result.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"pip-audit did not produce a report for {requirements} (exit {result.returncode})") from None
    vulnerable, skipped, audited = [], [], 0
    for dep in report.get("dependencies", []):
        if "skip_reason" in dep:
            skipped.append(f"{dep['name']}: {dep['skip_reason']}")
            continue
        audited += 1
        for vuln in dep.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed release"
            vulnerable.append(f"{dep['name']} {dep.get('version', '?')}: {vuln['id']} (fixed in {fixed})")
    return vulnerable, skipped, audited


def main(paths: list[str]) -> int:
    strict = os.environ.get("PIP_AUDIT_STRICT", "0") == "1"
    failed = False
    for name in paths or ["requirements/base.txt"]:
        path = Path(name)
        vulnerable, skipped, audited = audit(path)
        for line in vulnerable:
            print(f"VULNERABLE  {line}")
        if vulnerable:
            failed = True
        if audited and skipped:
            print(f"pip-audit: {path}: {len(skipped)} package(s) could not be audited:", *skipped, sep="\n  ")
            failed = True
        elif skipped:
            bar = "!" * 78
            print(f"{bar}\n!! pip-audit: {path} NOT CHECKED: none of its {len(skipped)} packages could be looked up\n"
                  f"!! (no vulnerability service reachable from this machine; first reason: {skipped[0]}).\n"
                  f"!! {'Failing because PIP_AUDIT_STRICT=1.' if strict else 'Set PIP_AUDIT_STRICT=1 where a service is reachable.'}\n{bar}")
            failed = failed or strict
        elif not vulnerable:
            print(f"pip-audit: {path}: {audited} packages audited, no known vulnerability")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
