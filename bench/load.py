"""Benchmark: a mixed load against the production topology (the Procfile: 2 web processes, the chat
and background workers, beat, the mock HWA) on this machine, for 5 minutes by default.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/resync_bench_load .venv/bin/python bench/load.py [--seconds 300] [--users 20]

Each virtual user is a signed-in operator who, in a loop, picks: a chat turn over the websocket
(no-LLM mode: question -> done), a dashboard (the page plus /api/dashboard/), or an API read (jobs,
job streams, status events, conversations). Prints requests per second, p50/p95/p99 latency per
kind, errors, and the resident memory of every process of the topology at the end. A private
Redis server is started for the run; the database named by DATABASE_URL (default
resync_bench_load) is created and migrated if missing. The knowledge-base search API is left out:
without a Qdrant server the local store belongs to a single process (docs/production.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._setup import django_setup, ensure_database, percentile  # noqa: E402

QUESTIONS = ["status do FP_CALC_FOLHA?", "o que abendou hoje à noite?", "why did BKP_RMAN_FULL fail?",
             "o que depende do FP_CALC_FOLHA?", "status of the FOLHA_PAGAMENTO stream?", "workstation PRD_WIN02?"]
API_PATHS = ["/api/jobs/?limit=50", "/api/jobs/?status=ABEND", "/api/job-streams/?limit=50", "/api/status-events/?limit=50",
             "/api/conversations/", "/api/workstations/"]
KINDS = {"chat": 0.3, "dashboard": 0.35, "api": 0.35}


def _procs() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, RSS in kB, command line) for every process on the machine."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            rss = next((int(line.split()[1]) for line in (entry / "status").read_text().splitlines()
                        if line.startswith("VmRSS:")), 0)
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            table[int(entry.name)] = (ppid, rss, cmd)
        except (OSError, ValueError, IndexError):
            continue
    return table


def memory_by_process(root: int) -> dict[str, float]:
    """Resident memory (MB) of each process started under `root` (honcho), its own children included."""
    table = _procs()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _, _) in table.items():
        children[ppid].append(pid)

    def tree(pid: int) -> int:
        return table.get(pid, (0, 0, ""))[1] + sum(tree(c) for c in children[pid])

    def commands(pid: int) -> str:
        return " ".join(table[c][2] + " " + commands(c) for c in children[pid])

    out = {}
    for child in children[root]:
        cmd = commands(child)  # what runs under honcho's per-process helper
        name = next((label for word, label in (("daphne", "web"), ("--queues audit", "worker_bg"), ("--queues hwa", "poller"), ("chat,knowledge", "worker (chat)"),
                                               ("beat", "beat"), ("mock_tws", "mock HWA")) if word in cmd), cmd[:40])
        key = name
        while key in out:
            key += "+"
        out[key] = tree(child) / 1024
    return out


async def virtual_user(index: int, base_url: str, cookie: str, deadline: float, results: dict, errors: dict) -> None:
    import httpx
    import websockets

    rng = random.Random(index)
    ws_url = base_url.replace("http://", "ws://") + "/ws/chat/"
    headers = {"Cookie": cookie}
    ws = None
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
        while time.monotonic() < deadline:
            kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
            started = time.monotonic()
            try:
                if kind == "chat":
                    if ws is None:
                        ws = await websockets.connect(ws_url, origin=base_url, additional_headers=headers, max_size=2**22)
                    await ws.send(json.dumps({"type": "message", "text": rng.choice(QUESTIONS)}))
                    while True:
                        event = json.loads(await asyncio.wait_for(ws.recv(), 60))
                        if event["type"] == "done":
                            break
                        if event["type"] == "error":
                            raise RuntimeError(event.get("code"))
                elif kind == "dashboard":
                    page = await http.get("/dashboard/")
                    data = await http.get("/api/dashboard/")
                    if page.status_code != 200 or data.status_code != 200:
                        raise RuntimeError(f"{page.status_code}/{data.status_code}")
                else:
                    response = await http.get(rng.choice(API_PATHS))
                    if response.status_code != 200:
                        raise RuntimeError(str(response.status_code))
                results[kind].append(time.monotonic() - started)
            except Exception as exc:  # counted, and the user goes on (a new socket next time)
                errors[kind][f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
                if ws is not None:
                    await ws.close()
                    ws = None
                await asyncio.sleep(0.5)
            await asyncio.sleep(rng.uniform(0.05, 0.3))  # think time
    if ws is not None:
        await ws.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--web", type=int, default=2)
    args = parser.parse_args()

    os.environ.setdefault("BENCH_DATABASE_URL", os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/resync_bench_load"))
    os.environ.pop("REDIS_URL", None)  # the bench process itself needs no Redis
    django_setup(default_database="postgres://postgres@127.0.0.1:5432/resync_bench_load")
    ensure_database()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from resync_site.roles import Role
    from resync_site.services import user_set_roles
    from tests.topology.client import database_url
    from tests.topology.stack import PrivateRedis, Stack, sign_in

    password = "load-" + secrets.token_urlsafe(12)
    users = []
    for i in range(args.users):
        user, _ = get_user_model().objects.get_or_create(username=f"load{i:03d}")
        user.password = PBKDF2PasswordHasher().encode(password, secrets.token_hex(8))
        user.save()
        user_set_roles(user=user, roles=[Role.OPERATOR], reason="load benchmark")
        users.append(user)

    redis = PrivateRedis().start()
    stack = Stack(database_url=database_url(), redis_url=redis.url, data_dir=settings.DATA_DIR / "load-stack", web=args.web,
                  env={"CHAT_MESSAGES_PER_MINUTE": "100000", "CHAT_MESSAGE_BURST": "1000", "API_THROTTLE_RATE": "100000/min"})
    try:
        stack.prepare()
        stack.start_with_honcho()
        print(f"topology up: web {stack.urls}, {args.users} users, {args.seconds:g} s, machine: {os.cpu_count()} cores")
        cookies = [sign_in(stack.urls[i % len(stack.urls)], u.username, password) for i, u in enumerate(users)]
        results: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        deadline = time.monotonic() + args.seconds

        async def run() -> None:
            await asyncio.gather(*(virtual_user(i, stack.urls[i % len(stack.urls)], cookies[i], deadline, results, errors)
                                   for i in range(args.users)))

        started = time.monotonic()
        asyncio.run(run())
        elapsed = time.monotonic() - started
        memory = memory_by_process(stack.honcho.popen.pid) if stack.honcho else {}
    finally:
        stack.stop()
        redis.stop()

    total = sum(len(v) for v in results.values())
    print(f"\n{total} operations in {elapsed:.0f} s: {total / elapsed:.1f} ops/s")
    print(f"{'kind':<10} {'count':>7} {'ops/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for kind in KINDS:
        values = results[kind]
        print(f"{kind:<10} {len(values):>7} {len(values) / elapsed:>7.1f} {percentile(values, 50) * 1000:>8.0f} "
              f"{percentile(values, 95) * 1000:>8.0f} {percentile(values, 99) * 1000:>8.0f} {sum(errors[kind].values()):>7}")
    for kind, kinds in errors.items():
        for message, count in kinds.items():
            print(f"  error {kind}: {count} x {message}")
    for name, mb in memory.items():
        print(f"memory {name}: {mb:.0f} MB RSS")
    print(f"memory total: {sum(memory.values()):.0f} MB RSS")


if __name__ == "__main__":
    main()
