"""Scenarios for the mock HWA: JSON files in `scenarios/` (see docs/hwa.md for the format), a
path to such a file, or `large` (generated: 5,000 streams x 10 jobs = 50,000 jobs)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


def large_scenario(*, jobs: int = 50_000, per_stream: int = 10, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    workstations = [{"name": f"LNX{i:03d}", "type": "FTA", "os": "LINUX", "limit": 40} for i in range(50)]
    streams = []
    for s in range(jobs // per_stream):
        ws = workstations[s % len(workstations)]["name"]
        hour = 21 + (s * 9 // (jobs // per_stream))
        at = f"{hour % 24:02d}:{rng.randrange(60):02d}"
        stream_jobs = []
        for j in range(per_stream):
            job: dict[str, Any] = {"name": f"J{s:05d}_{j:02d}", "duration": rng.choice((60, 300, 900, 1800))}
            if j:
                job["follows"] = [f"J{s:05d}_{j - 1:02d}"]
            if rng.random() < 0.01:
                job["rc"] = rng.choice((1, 4, 8, 12))
            stream_jobs.append(job)
        # Nine in ten streams sit in one of eight line-of-business folders, the rest in the root.
        folder = "/" if s % 10 == 0 else f"/LOB{s % 8:02d}/"
        streams.append({"name": f"JS{s:05d}", "folder": folder, "workstation": ws, "at": at, "jobs": stream_jobs})
    return {
        "name": "large", "seed": seed, "time_zone": "America/Sao_Paulo", "plan_start": "2026-11-24T21:00:00-03:00",
        "clock_start": "23:00", "workstations": workstations, "resources": [], "prompts": [], "streams": streams,
    }


def load_scenario(name_or_path: str) -> dict[str, Any]:
    if name_or_path == "large":
        return large_scenario()
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no mock HWA scenario {name_or_path!r} (known: large, {', '.join(p.stem for p in SCENARIO_DIR.glob('*.json'))})")
    return json.loads(path.read_text(encoding="utf-8"))
