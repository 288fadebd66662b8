"""Live dashboard fan-out: N websocket dashboards on a running daphne server while the mock HWA's
jobs change state; prints the delay from the poll seeing a change (the event's `polled_at`) to
each client receiving it (p50/p95/max), plus the server's CPU time and memory.

    .venv/bin/python bench/dashboard.py [--clients 500] [--rounds 20] [--interval 1.0]

Needs PostgreSQL (BENCH_DATABASE_URL, default the local `resync_ui_bench` database, created and
migrated here) and Redis (REDIS_URL: the channel layer between the poller and the server).
Everything listens on 127.0.0.1 with ephemeral ports and stops by itself. Target: p95 <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from _setup import ROOT, django_setup, ensure_database, percentile

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONNECT_CONCURRENCY = 25


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _memory_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    return rss, peak


def _start_server(env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "--endpoint", "tcp:port=0:interface=127.0.0.1", "resync_site.asgi:application"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    deadline = time.monotonic() + 30
    assert process.stderr is not None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"Listening on TCP address 127\.0\.0\.1:(\d+)", line)
        if match:
            # Keep draining stderr so the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()  # type: ignore[union-attr]
            return process, int(match.group(1))
        if process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("daphne did not start")


def _session_cookie() -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from resync_site.roles import Role
    from resync_site.services import user_set_roles

    user, created = get_user_model().objects.get_or_create(username="bench-operator")
    if created:
        user_set_roles(user=user, roles=[Role.OPERATOR], reason="dashboard benchmark")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def _client(url: str, cookie: str, origin: str, gate: asyncio.Semaphore, ready: asyncio.Event, counter: list[int], total: int,
                  delays: list[float], errors: list[str], stop: asyncio.Event) -> None:
    import websockets

    try:
        async with gate:  # dashboards open over a few seconds, as after a deploy, not in one instant
            ws = await websockets.connect(url, origin=origin, additional_headers={"Cookie": cookie}, open_timeout=60,
                                          max_queue=None)
        async with ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
            assert hello["type"] == "hello", hello
            counter[0] += 1
            if counter[0] == total:
                ready.set()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                received = time.time()
                event = json.loads(raw)
                if event["type"] == "diff" and event.get("changes"):
                    delays.append(received - datetime.fromisoformat(event["polled_at"]).timestamp())
    except Exception as exc:  # counted and reported: the benchmark must say how many clients failed
        errors.append(f"{type(exc).__name__}: {exc}")
        counter[0] += 1
        if counter[0] >= total:
            ready.set()


async def run(clients: int, rounds: int, interval: float) -> None:
    import httpx

    from jobs.poll import plan_poll
    from jobs.tws.mock.auth import MOCK_PASSWORD, MOCK_USERNAME
    from jobs.tws.mock.server import MockHwaServer

    mock = MockHwaServer(scenario="demo", port=0, speed=0.0).start()
    from django.conf import settings

    settings.TWS_URL = mock.url
    settings.TWS_USERNAME = MOCK_USERNAME
    settings.TWS_PASSWORD = MOCK_PASSWORD
    await asyncio.to_thread(plan_poll)
    cookie = await asyncio.to_thread(_session_cookie)

    env = {**os.environ, "TWS_URL": mock.url, "TWS_USERNAME": MOCK_USERNAME, "TWS_PASSWORD": MOCK_PASSWORD,
           "DATABASE_URL": os.environ["DATABASE_URL"], "DJANGO_SETTINGS_MODULE": "resync_site.settings"}
    server, port = _start_server(env)
    try:
        url, origin = f"ws://127.0.0.1:{port}/ws/dashboard/", f"http://127.0.0.1:{port}"
        ready, stop, gate = asyncio.Event(), asyncio.Event(), asyncio.Semaphore(CONNECT_CONCURRENCY)
        counter: list[int] = [0]
        delays: list[float] = []
        errors: list[str] = []
        started = time.perf_counter()
        tasks = [asyncio.create_task(_client(url, cookie, origin, gate, ready, counter, clients, delays, errors, stop)) for _ in range(clients)]
        await asyncio.wait_for(ready.wait(), 120)
        connect_seconds = time.perf_counter() - started
        cpu_before, wall_before = _cpu_seconds(server.pid), time.perf_counter()
        changes = 0
        async with httpx.AsyncClient(timeout=10) as http:
            for round_ in range(rounds):
                # Churn moves a share of the jobs to another state every round, so every poll has news.
                await http.post(f"{mock.url}/mock/control/churn", json={"fraction": 0.1, "seed": round_})
                result = await asyncio.to_thread(plan_poll)
                changes += result.changed + result.created
                await asyncio.sleep(interval)
        await asyncio.sleep(2)  # let the last deliveries land
        cpu = _cpu_seconds(server.pid) - cpu_before
        wall = time.perf_counter() - wall_before
        rss, peak = _memory_mb(server.pid)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        mock.stop()

    expected = clients * rounds
    print(f"clients: {clients} connected in {connect_seconds:.1f} s, errors: {len(errors)}")
    if errors:
        print("  first error:", errors[0])
    print(f"rounds: {rounds} polls, {changes} job changes seen by the poll; diff deliveries: {len(delays)} (of up to {expected})")
    if delays:
        print(f"poll saw change -> client received: p50 {percentile(delays, 50) * 1000:.0f} ms, "
              f"p95 {percentile(delays, 95) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms  (target p95 <= 1000 ms)")
    print(f"server (one daphne process): CPU {cpu:.1f} s over {wall:.1f} s ({100 * cpu / wall:.0f}% of one core), "
          f"RSS {rss:.0f} MB (peak {peak:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    django_setup(default_database="postgres://postgres@127.0.0.1:5432/resync_ui_bench")
    if not os.environ.get("REDIS_URL"):
        sys.exit("REDIS_URL is required: the poller and the server talk over the Redis channel layer")
    ensure_database()
    asyncio.run(run(args.clients, args.rounds, args.interval))


if __name__ == "__main__":
    main()
