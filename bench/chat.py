"""Chat benchmark: N concurrent websocket clients against a running daphne + Celery worker.

    .venv/bin/python bench/chat.py [--clients 200] [--turns 2] [--ttft-clients 20] [--delay 0.2]

Starts, on this machine: the mock HWA (demo night, snapshot polled once), a local OpenAI-compatible
streaming server whose first token comes after a fixed delay, daphne serving the site plus a bare
echo consumer (bench/chat_asgi.py), and a Celery worker for chat turns. Then, for each mode:

- LLM mode: time to first token minus the fake LLM's own first-token delay (the chat's overhead),
  full-turn time, errors;
- no-LLM mode: full answer time, errors;
- frame -> ack round trip versus the echo consumer's round trip at the same concurrency.

Environment as for the tests (REDIS_URL, a PostgreSQL server); it uses its own database
(BENCH_DATABASE_URL, default resync_bench_chat) and channel-layer prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import ROOT, django_setup, ensure_database, percentile

QUESTIONS = ["what failed tonight?", "status do FP_EXTRAI_PONTO", "o que abendou hoje à noite?", "quais workstations estão com problema?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def make_sessions(count: int) -> list[str]:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore

    from resync_site.services import roles_sync

    roles_sync()
    operators = Group.objects.get(name="operator")
    User = get_user_model()
    cookies = []
    for i in range(count):
        user, created = User.objects.get_or_create(username=f"bench-op-{i:03d}")
        if created:
            user.set_unusable_password()
            user.save()
            user.groups.add(operators)
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        cookies.append(f"sessionid={store.session_key}")
    return cookies


# At most 50 handshakes at once: sessions open over a moment, not all in one millisecond.
GATE: dict[str, asyncio.Semaphore] = {}


async def _connect(url: str, origin: str, cookie: str):
    import websockets

    async with GATE["connect"]:
        return await websockets.connect(url, origin=origin, additional_headers={"Cookie": cookie}, max_size=2**22, open_timeout=30)


async def chat_client(url: str, origin: str, cookie: str, turns: int, results: dict, delay: float) -> None:
    try:
        async with await _connect(url, origin, cookie) as ws:
            for n in range(turns):
                sent = time.perf_counter()
                await ws.send(json.dumps({"type": "message", "text": QUESTIONS[n % len(QUESTIONS)]}))
                first = None
                got: list[str] = []
                while True:
                    try:
                        event = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    except TimeoutError:
                        results["stalls"].append(got)  # what a turn that never ended had received
                        raise
                    got.append(f"{event['type']}:{event.get('turn_id')}:{event.get('seq')}")
                    now = time.perf_counter()
                    if event["type"] == "ack":
                        results["ack"].append((now - sent) * 1000)
                    elif event["type"] == "token" and first is None:
                        first = now
                        results["ttft"].append((now - sent - delay) * 1000)
                    elif event["type"] == "error":
                        results["errors"].append(event.get("code"))
                        break
                    elif event["type"] == "done":
                        results["full"].append((now - sent) * 1000)
                        results["server"].append(event.get("latency_ms") or 0)
                        if event.get("first_token_ms") is not None:
                            results["server_ttft"].append(event["first_token_ms"] - delay * 1000)
                        if event.get("fallback_reason"):
                            results["errors"].append("fallback:" + event["fallback_reason"])
                        break
    except Exception as exc:  # every failure counts, whatever it is
        results["errors"].append(type(exc).__name__)


async def echo_client(url: str, origin: str, cookie: str, rounds: int, results: list[float], errors: list[str]) -> None:
    try:
        async with await _connect(url, origin, cookie) as ws:
            for _ in range(rounds):
                sent = time.perf_counter()
                await ws.send(json.dumps({"type": "ping"}))
                await asyncio.wait_for(ws.recv(), 30)
                results.append((time.perf_counter() - sent) * 1000)
    except Exception as exc:
        errors.append(type(exc).__name__)


def run_wave(port: int, cookies: list[str], turns: int, delay: float) -> dict:
    """Chat clients and, at the same time and the same count, echo clients: both under one load."""
    results: dict = {"ack": [], "ttft": [], "full": [], "server": [], "server_ttft": [], "errors": [], "echo": [], "echo_errors": [],
                     "stalls": []}
    origin = f"http://127.0.0.1:{port}"

    async def main() -> None:
        GATE["connect"] = asyncio.Semaphore(50)
        await asyncio.gather(
            *(chat_client(f"ws://127.0.0.1:{port}/ws/chat/", origin, c, turns, results, delay) for c in cookies),
            *(echo_client(f"ws://127.0.0.1:{port}/ws/echo/", origin, c, turns * 5, results["echo"], results["echo_errors"])
              for c in cookies),
        )

    started = time.perf_counter()
    results["started"] = time.time()
    asyncio.run(main())
    results["wall"] = time.perf_counter() - started
    return results


def queue_waits(since: float) -> list[float]:
    """Per turn of a wave: from the turn's creation (when the ack is sent) to a worker claiming it."""
    from datetime import UTC, datetime

    from django.db import connections

    from chat.models import Turn

    turns = Turn.objects.filter(created_at__gte=datetime.fromtimestamp(since, UTC), started_at__isnull=False)
    waits = [(t.started_at - t.created_at).total_seconds() * 1000 for t in turns.only("created_at", "started_at")]
    connections.close_all()
    return waits


def run_echo(port: int, cookies: list[str], rounds: int) -> tuple[list[float], list[str]]:
    results: list[float] = []
    errors: list[str] = []
    origin = f"http://127.0.0.1:{port}"

    async def main() -> None:
        GATE["connect"] = asyncio.Semaphore(50)
        await asyncio.gather(*(echo_client(f"ws://127.0.0.1:{port}/ws/echo/", origin, c, rounds, results, errors) for c in cookies))

    asyncio.run(main())
    return results, errors


def fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {percentile(values, 50):7.1f} ms  p95 {percentile(values, 95):7.1f} ms  (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--ttft-clients", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.2, help="the fake LLM's first-token delay (s)")
    parser.add_argument("--worker-concurrency", type=int, default=16)
    parser.add_argument("--conn-max-age", type=int, default=60,
                        help="DB_CONN_MAX_AGE for daphne and the worker (0 = a new PostgreSQL connection per call)")
    parser.add_argument("--modes", default="llm,no-llm", help="which answer modes to measure, comma-separated")
    parser.add_argument("--log-dir", default="", help="keep daphne's and the worker's stderr there (default: discarded)")
    args = parser.parse_args()

    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/5")
    os.environ["CHANNEL_LAYER_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}"
    # Latency is measured here, not the per-user rate limit (tests cover that).
    os.environ["CHAT_MESSAGE_BURST"] = "1000"
    os.environ["CHAT_MESSAGES_PER_MINUTE"] = "100000"
    django_setup(default_database="postgres://postgres@127.0.0.1:5432/resync_bench_chat")
    ensure_database()

    from jobs.poll import plan_poll
    from jobs.tws.mock.auth import MOCK_PASSWORD, MOCK_USERNAME
    from jobs.tws.mock.server import MockHwaServer

    hwa = MockHwaServer(scenario="demo", port=0, speed=0.0).start()
    from django.conf import settings

    settings.TWS_URL, settings.TWS_USERNAME, settings.TWS_PASSWORD = hwa.url, MOCK_USERNAME, MOCK_PASSWORD
    plan_poll()
    # The fake LLM runs in its own process: in this one it would compete with the clients for the GIL.
    llm_port = free_port()
    llm = subprocess.Popen([sys.executable, "-m", "chat.testing", "--port", str(llm_port), "--delay", str(args.delay),
                            "--text", "Sete jobs falharam no plano atual; o mais critico e o FP_CALC_FOLHA. " * 3],
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
    llm_url = f"http://127.0.0.1:{llm_port}/v1"
    cookies = make_sessions(max(args.clients, args.ttft_clients))
    from django.db import connections

    connections.close_all()

    port = free_port()
    env = {**os.environ, "TWS_URL": hwa.url, "TWS_USERNAME": MOCK_USERNAME, "TWS_PASSWORD": MOCK_PASSWORD,
           "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "resync_site.settings", "LOG_LEVEL": "warning",
           "DB_CONN_MAX_AGE": str(args.conn_max_age)}

    def log_to(name: str) -> Any:  # a file object, or DEVNULL
        return open(Path(args.log_dir) / f"{name}.log", "w") if args.log_dir else subprocess.DEVNULL

    server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "bench.chat_asgi:application"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_to("daphne"))
    worker = None
    try:
        wait_port(port)
        print(f"chat benchmark: {os.cpu_count()} cores, fake LLM first-token delay {args.delay * 1000:.0f} ms, "
              f"DB_CONN_MAX_AGE={args.conn_max_age}, worker threads {args.worker_concurrency}, load average {os.getloadavg()[0]:.2f}")
        for mode in args.modes.split(","):
            worker_env = dict(env)
            if mode == "llm":
                worker_env.update({"LLM_MODEL": "openai/fake-model", "LLM_API_BASE": llm_url, "LLM_API_KEY": "bench"})
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "resync_site", "worker", "-Q", "chat", "-P", "threads",
                 "-c", str(args.worker_concurrency), "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "warning"],
                cwd=ROOT, env=worker_env, stdout=subprocess.DEVNULL, stderr=log_to(f"worker-{mode}"))
            warm = run_wave(port, cookies[:4], 1, args.delay if mode == "llm" else 0.0)  # imports, connections
            if warm["errors"]:
                print(f"  warm-up errors: {warm['errors'][:5]}; a stalled turn had received {warm['stalls'][:1]}")
            delay = args.delay if mode == "llm" else 0.0
            small = run_wave(port, cookies[: args.ttft_clients], args.turns, delay)
            big = run_wave(port, cookies[: args.clients], args.turns, delay)
            small["queue"], big["queue"] = queue_waits(small["started"]), queue_waits(big["started"])
            echo, echo_errors = small["echo"], small["echo_errors"]
            big_echo, big_echo_errors = big["echo"], big["echo_errors"]
            print(f"\n== {mode} mode")
            for _label, wave, echo_times, errs, n in (("light", small, echo, echo_errors, args.ttft_clients),
                                                    ("heavy", big, big_echo, big_echo_errors, args.clients)):
                print(f" {n} concurrent sessions x {args.turns} turns ({wave['wall']:.1f} s wall):")
                if mode == "llm":
                    print(f"   first token - LLM delay  {fmt(wave['ttft'])}")
                    print(f"   (same, inside the worker) {fmt(wave['server_ttft'])}")
                print(f"   queued (ack -> claimed) {fmt(wave['queue'])}")
                print(f"   full turn               {fmt(wave['full'])}")
                print(f"   (in the worker)         {fmt(wave['server'])}")
                print(f"   frame -> ack            {fmt(wave['ack'])}")
                print(f"   echo round trip (same time, same count) {fmt(echo_times)}")
                if wave["ack"] and echo_times:
                    print(f"   ack p95 / echo p95      {percentile(wave['ack'], 95) / max(percentile(echo_times, 95), 0.001):.2f}x")
                print(f"   errors                  {len(wave['errors'])} {sorted(set(map(str, wave['errors'])))[:5]}  echo errors {len(errs)}")
                for stall in wave["stalls"][:2]:
                    print(f"   a turn that never ended had received: {stall}")
            worker.terminate()
            worker.wait(timeout=30)
            worker = None
    finally:
        if worker is not None:
            worker.terminate()
        server.terminate()
        server.wait(timeout=30)
        llm.terminate()
        hwa.stop()


if __name__ == "__main__":
    main()
