"""The production process set (the Procfile) started on this machine, for tests and `bench/load.py`.

`Stack` starts the Procfile's processes with a production environment (RESYNC_ENV=production) on
127.0.0.1 ephemeral ports, either all at once through honcho (exactly as docs/production.md says)
or one by one (so fault tests can kill and restart a single process). Each process writes to its
own log file under `<data_dir>/logs/`; `tail()` shows it when something fails. Nothing here needs
Django: it only starts processes and talks HTTP. Also here: private Redis and PostgreSQL servers
on ephemeral ports for tests that restart them (never the shared ones).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "Procfile"
VENV_BIN = Path(sys.executable).parent

# What each Procfile process prints once it serves (matched against its log).
READY_LINES = {
    "web": re.compile(r"Listening on TCP address"),
    "worker": re.compile(r"\S+@\S+ ready\."),
    "worker_bg": re.compile(r"\S+@\S+ ready\."),
    "poller": re.compile(r"\S+@\S+ ready\."),
    "beat": re.compile(r"beat: Starting"),
    "mock_hwa": re.compile(r"mock HWA: \d+ jobs"),
}
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_run(count: int) -> int:
    """A base port with `count` free ports after it (honcho numbers web processes base, base+1, ...)."""
    for _ in range(200):
        base = free_port()
        if base + count >= 65535:
            continue
        try:
            sockets = []
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no run of free ports found")


def procfile_commands(path: Path = PROCFILE) -> dict[str, str]:
    """The Procfile's processes, parsed the way honcho parses them."""
    commands: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = PROCFILE_LINE.match(line)
        if match:
            commands[match.group(1)] = match.group(2)
    return commands


def wait_for(predicate: Any, *, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    offset: int = 0  # where this run's output starts in the log file

    def output(self) -> str:
        try:
            with self.log.open("rb") as handle:
                handle.seek(self.offset)
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


@dataclass
class Stack:
    """The Procfile's processes against one database and one Redis.

    `processes` picks which Procfile entries run (all by default); `web` is how many web processes.
    """

    database_url: str
    redis_url: str
    data_dir: Path
    web: int = 2
    processes: tuple[str, ...] = ("web", "worker", "poller", "worker_bg", "beat", "mock_hwa")
    env: dict[str, str] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: "stack-" + secrets.token_urlsafe(48))
    mock_speed: float = 1.0
    poll_seconds: int = 2

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.logs = self.data_dir / "logs"
        self.procs: dict[str, Proc] = {}
        self.web_ports: list[int] = []
        self.mock_port = free_port()
        self.honcho: Proc | None = None

    # --- environment ---------------------------------------------------------------------------

    @property
    def mock_url(self) -> str:
        return f"http://127.0.0.1:{self.mock_port}"

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.web_ports]

    def environment(self) -> dict[str, str]:
        env = {
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.data_dir),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "RESYNC_ENV": "production",
            "SECRET_KEY": self.secret_key,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "RESYNC_DATA_DIR": str(self.data_dir),
            # No TLS on the loopback: a reverse proxy terminates it in a real deployment.
            "SECURE_SSL_REDIRECT": "false",
            "TRUST_X_FORWARDED_PROTO": "true",  # as behind the TLS proxy: X-Forwarded-Proto says https
            "TWS_URL": self.mock_url,
            "TWS_USERNAME": "resync",
            "TWS_PASSWORD": "resync-mock-password",  # the mock's synthetic account (docs/hwa.md)
            "TWS_POLL_SECONDS": str(self.poll_seconds),
            "TWS_TIMEOUT_SECONDS": "2",
            "MOCK_TWS_PORT": str(self.mock_port),
            "MOCK_TWS_SPEED": f"{self.mock_speed:g}",
            "CHANNEL_LAYER_PREFIX": f"stack{self.mock_port}",
            "CHAT_WORKER_THREADS": "8",
            "BG_WORKER_PROCESSES": "1",
            "LOG_FORMAT": "text",
        }
        env.update(self.env)
        return env

    def manage(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.environment(),
                                capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def prepare(self, *, migrate: bool = False) -> None:
        """collectstatic (production serves hashed static files), and migrate when asked."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        if migrate:
            self.manage("migrate", "--noinput")
        manifest = self.data_dir / "staticfiles" / "staticfiles.json"
        newest_source = max((p.stat().st_mtime for p in (ROOT / "static").rglob("*") if p.is_file()), default=0)
        if not manifest.exists() or manifest.stat().st_mtime < newest_source:
            self.manage("collectstatic", "--noinput", "-v", "0")

    # --- processes -----------------------------------------------------------------------------

    def _spawn(self, name: str, command: str, env: dict[str, str]) -> Proc:
        log = self.logs / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        handle = log.open("ab")
        popen = subprocess.Popen(["/bin/sh", "-c", command], cwd=ROOT, env=env,
                                 stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()
        return Proc(name, popen, log, offset)

    def start_process(self, name: str, *, wait: bool = True, timeout: float = 60) -> Proc:
        """Starts (or restarts) one Procfile process; a web process keeps its port across restarts."""
        command = procfile_commands()[name.split(".")[0]]
        env = self.environment()
        if name.startswith("web"):
            index = int(name.split(".")[1]) - 1 if "." in name else 0
            while len(self.web_ports) <= index:
                self.web_ports.append(free_port())
            env["PORT"] = str(self.web_ports[index])
        proc = self._spawn(name, command, env)
        self.procs[name] = proc
        if wait:
            self.wait_ready([name], timeout=timeout)
        return proc

    def start(self, *, timeout: float = 90) -> Stack:
        """Starts the chosen processes one by one (all at once, then waits for each to be ready)."""
        names = [f"web.{i + 1}" if p == "web" else p for p in self.processes for i in range(self.web if p == "web" else 1)]
        for name in names:
            self.start_process(name, wait=False)
        self.wait_ready(names, timeout=timeout)
        return self

    def start_with_honcho(self, *, timeout: float = 90) -> Stack:
        """`honcho start -c web=N` on the Procfile, exactly as an operator runs it."""
        base = free_port_run(self.web)
        self.web_ports = [base + i for i in range(self.web)]
        env = self.environment() | {"PORT": str(base)}
        wanted = ",".join(f"{p}={self.web if p == 'web' else 1}" for p in self.processes)
        all_names = procfile_commands()
        unwanted = ",".join(f"{p}=0" for p in all_names if p not in self.processes)
        concurrency = wanted + ("," + unwanted if unwanted else "")
        self.honcho = self._spawn("honcho", f"exec {VENV_BIN}/honcho start --no-colour -f {PROCFILE} -c {concurrency}", env)
        names = [f"{p}.{i + 1}" for p in self.processes for i in range(self.web if p == "web" else 1)]
        deadline = time.monotonic() + timeout
        for name in names:
            pattern = READY_LINES[name.split(".")[0]]
            # honcho prefixes each line with "HH:MM:SS name.N | ".
            line = re.compile(rf"{re.escape(name)}\s*\|.*{pattern.pattern}")
            wait_for(lambda line=line: line.search(self.honcho.output()) or self._died(self.honcho),
                     timeout=max(1.0, deadline - time.monotonic()), what=f"{name} under honcho")
            if self.honcho.popen.poll() is not None:
                raise RuntimeError(f"honcho stopped:\n{self.honcho.output()[-4000:]}")
        self._wait_http(timeout=max(5.0, deadline - time.monotonic()))
        return self

    def _died(self, proc: Proc) -> bool:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.output()[-4000:]}")
        return False

    def wait_ready(self, names: Iterable[str], *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            proc = self.procs[name]
            pattern = READY_LINES[name.split(".")[0]]
            wait_for(lambda proc=proc, pattern=pattern: pattern.search(proc.output()) or self._died(proc),
                     timeout=max(1.0, deadline - time.monotonic()), what=f"{name} to be ready")
        if any(n.startswith("web") for n in names):
            self._wait_http(timeout=max(5.0, deadline - time.monotonic()))

    def _wait_http(self, *, timeout: float) -> None:
        for url in self.urls:
            def up(url: str = url) -> bool:
                try:
                    return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(up, timeout=timeout, what=f"{url}/healthz")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Sends `sig` to one process and everything it started (its session), then reaps it."""
        proc = self.procs[name]
        try:
            os.killpg(proc.popen.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(timeout=10)

    def stop(self) -> None:
        everything = [*self.procs.values(), *([self.honcho] if self.honcho else [])]
        for proc in everything:
            if proc.popen.poll() is None:
                try:
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for proc in everything:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # whatever is left in the session (pool children, a stuck worker)
                os.killpg(proc.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.popen.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        parts = []
        for proc in [*self.procs.values(), *([self.honcho] if self.honcho else [])]:
            text = proc.output().splitlines()[-lines:]
            parts.append(f"--- {proc.name} (exit {proc.popen.poll()})\n" + "\n".join(text))
        return "\n".join(parts)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- signing in over HTTP --------------------------------------------------------------------


def _cookie(response: httpx.Response, name: str) -> str | None:
    # Production cookies are Secure; on this plain-HTTP loopback httpx would not send them back,
    # so they are read from Set-Cookie and sent by hand.
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    return None


def sign_in(base_url: str, username: str, password: str) -> str:
    """Signs in through the sign-in form; returns the Cookie header value for later requests."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        page = client.get("/account/signin/")
        csrf = _cookie(page, "csrftoken")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert csrf and token, "sign-in form without a CSRF token"
        response = client.post("/account/signin/", data={"username": username, "password": password,
                                                         "csrfmiddlewaretoken": token.group(1)},
                               headers={"Cookie": f"csrftoken={csrf}", "Referer": f"{base_url}/account/signin/"})
        session = _cookie(response, "sessionid")
        if response.status_code != 302 or not session:
            raise RuntimeError(f"sign-in as {username} failed: {response.status_code}")
        return f"sessionid={session}; csrftoken={csrf}"


# --- private Redis and PostgreSQL servers (fault tests restart these, never the shared ones) ---------


class PrivateRedis:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.popen = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(self.ping, timeout=10, what="private redis")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)

    def restart(self, *, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on an ephemeral port, run as the `postgres` OS user when root."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="resync-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/resync"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        return self

    def ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30",
                  action, *extra)

    def start(self) -> PrivatePostgres:
        self.ctl("start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self.ctl("stop", "-m", mode)

    def create_database(self, name: str = "resync") -> None:
        subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
                       check=True, capture_output=True, timeout=30)

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
