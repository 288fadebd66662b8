"""Benchmark: one full plan poll (+ diff + events) of the mock's 50,000-job `large` scenario, then
steady-state polls with 1% of the jobs changing between polls. Target: <= 2 s per poll.

    RESYNC_ENV=test DATABASE_URL=postgres://... REDIS_URL=redis://.../1 .venv/bin/python bench/poll.py [--rounds 5]

The mock runs in its own process (as a real HWA would), so its serialization does not count
against Resync's process; its cache is warmed before the first poll.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resync_site.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.core.management import call_command  # noqa: E402

from jobs.models import JobInstance, JobStream, PlanState, StatusChange, Workstation  # noqa: E402
from jobs.poll import plan_poll  # noqa: E402
from jobs.tws.client import HwaClient  # noqa: E402
from jobs.tws.mock.auth import MOCK_API_KEY  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fraction", type=float, default=0.01)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    port = free_port()
    mock = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "mock_tws", "--scenario", "large", "--port", str(port), "--speed", "0", "--duration", "900"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                state = httpx.get(f"{url}/mock/control/state", timeout=5).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or mock.poll() is not None:
                    raise SystemExit("mock HWA did not start") from None
                time.sleep(0.5)
        print(f"mock HWA: {state['jobs']} jobs, statuses {state['status_counts']}")
        for model in (StatusChange, JobInstance, JobStream, Workstation, PlanState):
            model.objects.all().delete()
        client = HwaClient(base_url=url, api_key=MOCK_API_KEY, timeout=60)
        rss_before = rss_mb()
        # Wall time is what users see; CPU time is Resync's own share (the mock and PostgreSQL
        # run in other processes, and on a shared machine the wall time also carries their load).
        started, cpu = time.perf_counter(), time.process_time()
        first = plan_poll(client=client)
        full = time.perf_counter() - started
        print(f"full poll (initial load): {full:.2f} s (CPU {time.process_time() - cpu:.2f} s), {first.jobs} jobs, created {first.created}, "
              f"peak RSS {rss_mb():.0f} MB (before {rss_before:.0f} MB), load avg {os.getloadavg()[0]:.1f}")
        # A new process's first poll has no memory of the previous one: it compares every job with the database.
        import jobs.poll as poll_module

        poll_module._memory_set(None)
        started, cpu = time.perf_counter(), time.process_time()
        cold = plan_poll(client=client)
        print(f"first poll of a fresh process (nothing changed): {time.perf_counter() - started:.2f} s (CPU {time.process_time() - cpu:.2f} s), changed {cold.changed}")
        times = []
        for i in range(args.rounds):
            httpx.post(f"{url}/mock/control/churn", json={"fraction": args.fraction, "seed": i}, timeout=60)
            started, cpu = time.perf_counter(), time.process_time()
            result = plan_poll(client=client)
            times.append(time.perf_counter() - started)
            print(f"  steady poll {i + 1}: {times[-1]:.2f} s (CPU {time.process_time() - cpu:.2f} s), changed {result.changed}, "
                  f"status changes {result.status_changes}, load avg {os.getloadavg()[0]:.1f}")
        print(f"steady-state poll ({args.fraction:.0%} changing): median {statistics.median(times):.2f} s, "
              f"max {max(times):.2f} s over {args.rounds} rounds; peak RSS {rss_mb():.0f} MB; target <= 2 s")
    finally:
        mock.terminate()
        mock.wait(timeout=10)


if __name__ == "__main__":
    main()
