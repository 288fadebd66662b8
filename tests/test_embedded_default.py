"""`make run`'s embedded default end to end: SQLite, in-memory channel layer, in-process tasks,
local Qdrant, the bundled mock HWA polled in process, the no-LLM answer mode.

The rest of the suite runs on PostgreSQL and Redis, so this is the one place the README's first
command is exercised as a new user meets it: the same three manage.py steps as the Makefile, in a
process whose environment names no service at all, then a signed-in operator who sees the demo plan
on the dashboard API and gets a cited answer in the chat.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from django.conf import settings

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path) -> dict[str, str]:
    # Nothing inherited from the test run: no DATABASE_URL, REDIS_URL, TWS_URL, LLM_MODEL.
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "RESYNC_DATA_DIR": str(tmp_path / "data"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def _manage(tmp_path: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=_env(tmp_path),
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _sign_in(base: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10, follow_redirects=False)
    client.get("/account/signin/")
    response = client.post("/account/signin/", data={"username": username, "password": password,
                                                     "csrfmiddlewaretoken": client.cookies["csrftoken"]},
                           headers={"Referer": base + "/account/signin/"})
    assert response.status_code == 302, response.text[:500]
    return client


async def _ask(base: str, session: str, question: str) -> list[dict]:
    url = base.replace("http://", "ws://") + "/ws/chat/"
    events: list[dict] = []
    async with websockets.connect(url, origin=base, additional_headers={"Cookie": f"sessionid={session}"}) as ws:
        await ws.send(json.dumps({"type": "message", "text": question}))
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 30))
            events.append(event)
            if event["type"] in ("done", "error"):
                return events


def test_make_run_embedded_default_serves_the_demo_plan_and_answers(tmp_path: Path) -> None:
    _manage(tmp_path, "migrate", "--noinput")
    credentials = _manage(tmp_path, "seed_demo")
    match = re.search(r"^\s+operator\s+(\S+)\s+(\S+)", credentials, re.M)
    assert match, f"seed_demo prints the operator's credentials:\n{credentials}"

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=settings.BASE_DIR, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("the embedded server did not answer /healthz within 60 s")

        client = _sign_in(base, match.group(1), match.group(2))
        # The in-process poller fills the snapshot from the bundled mock HWA's demo plan.
        snapshot: dict = {}
        while time.monotonic() < deadline:
            snapshot = client.get("/api/dashboard/").json()
            if snapshot["freshness"]["job_count"]:
                break
            time.sleep(0.5)
        assert snapshot["freshness"]["job_count"] >= 30, snapshot["freshness"]
        assert not snapshot["freshness"]["stale"]
        assert snapshot["failed"], "the demo night has failed jobs to show"

        events = asyncio.run(_ask(base, client.cookies["sessionid"], "o que abendou esta noite?"))
        done = events[-1]
        assert done["type"] == "done" and done["status"] == "done", events[-3:]
        assert done["model"] == "no-llm"
        answer = "".join(e["text"] for e in events if e["type"] == "token")
        failed_name = snapshot["failed"][0]["name"]
        assert failed_name in answer, answer[:500]
        assert any(e["type"] == "citation" and e["kind"] == "plan" for e in events)
    finally:
        server.terminate()
        try:
            output, _ = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert "Traceback" not in output, output[-4000:]
