"""The mock HWA's HTTP server (stdlib ThreadingHTTPServer on a real socket).

Serves `/twsd/api/v2/...` (the endpoints Resync uses), the v1 calls of HCL's published samples
(`/twsd/plan/current/...`), and a control endpoint `/mock/control/...` (no auth) for tests and
demos: fault injection, clock advance and speed, churn, reset and the action log.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import threading
import time
from dataclasses import asdict, dataclass, fields
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from jobs.tws.folders import folder_canonical
from jobs.tws.mock import auth
from jobs.tws.mock import oql as moql
from jobs.tws.mock.scenario import load_scenario
from jobs.tws.mock.simulator import ActionRefused, SimJob, Simulator, iso

logger = logging.getLogger(__name__)

V2 = "/twsd/api/v2"
JSON = "application/json"


@dataclass
class Faults:
    """Run-time fault injection; `path` (a regex) limits faults to matching API paths."""

    latency_ms: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    fail_next: int = 0  # the next N API requests fail with error_status (deterministic retry tests)
    unauthorized: bool = False
    outage_seconds: float = 0.0  # connections are dropped without an answer until this window ends
    malformed: str = ""  # html | truncated | wrong_types | missing_fields | empty
    path: str = ""
    joblog: str = ""  # truncated | missing
    refusal_status: int = 500  # HTTP status of a state-guard refusal (HWA answers engine rules with 500)
    require_justification: bool = False
    seed: int = 1
    _outage_until: float = 0.0

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name for f in fields(self) if not f.name.startswith("_")}
        for key, value in values.items():
            if key not in known:
                raise ValueError(f"unknown fault {key!r}")
            setattr(self, key, type(getattr(self, key))(value))
        if "outage_seconds" in values:
            self._outage_until = time.monotonic() + float(values["outage_seconds"]) if float(values["outage_seconds"]) > 0 else 0.0

    def public(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        data["outage_remaining"] = max(0.0, self._outage_until - time.monotonic())
        return data

    def in_outage(self) -> bool:
        return self._outage_until > time.monotonic()


class HttpError(Exception):
    def __init__(self, status: int, messages: list[str]) -> None:
        super().__init__(status, messages)
        self.status = status
        self.messages = messages


def _job_fields() -> dict[str, moql.Getter]:
    return {
        "id": lambda j: j.id, "name": lambda j: j.name, "folder": lambda j: j.stream.folder, "workstation": lambda j: j.ws.name,
        "jobStreamName": lambda j: j.stream.name, "jobStreamId": lambda j: j.stream.id, "key": lambda j: j.key,
        "jobruns.compositeStatus.status": lambda j: j.status, "status": lambda j: j.status,
        "lastRunCommonStatus": lambda j: j.common_status, "commonStatus": lambda j: j.common_status,
        "priority": lambda j: j.priority, "dependencies.jobId": lambda j: [p.id for p in j.follows],
        "dependencies.jobStreamId": lambda j: [p.stream.id for p in j.follows] + [s.id for s in j.follows_streams],
    }


def _stream_fields() -> dict[str, moql.Getter]:
    return {
        "id": lambda s: s.id, "name": lambda s: s.name, "folder": lambda s: s.folder, "workstation": lambda s: s.ws.name,
        "key": lambda s: s.key, "commonStatus": _stream_common, "status": lambda s: s.status(),
        "compositeStatus.status": lambda s: s.status(),
    }


def _stream_common(stream: Any) -> str:
    from jobs.tws.mock.simulator import STREAM_COMMON

    return STREAM_COMMON.get(stream.status(), "UNDECIDED")


def _ws_fields() -> dict[str, moql.Getter]:
    return {
        "id": lambda w: w.id, "name": lambda w: w.name, "folder": lambda w: w.folder, "key": lambda w: w.path, "type": lambda w: w.type,
        "activeStates": lambda w: w.states(), "os": lambda w: w.os,
    }


JOB_FIELDS = _job_fields()
STREAM_FIELDS = _stream_fields()
WS_FIELDS = _ws_fields()


def _split_path(text: str) -> tuple[str, str]:
    """`/A/B/NAME` -> (`/A/B/`, `NAME`). A path without a folder is relative to the root folder
    (HWA's `Base-Folder` header, which could change that, is not served)."""
    head, _, name = text.rpartition("/")
    return folder_canonical(head), name


def canonical_key(text: str) -> str:
    """A job, job stream or workstation key with every folder written out: `WS#STREAM.JOB` is
    `/WS#/STREAM.JOB`, `PRD_LNX01#RH/FOLHA.JOB` is `/PRD_LNX01#/RH/FOLHA.JOB`."""
    ws_part, sep, rest = text.strip().partition("#")
    ws_folder, ws_name = _split_path(ws_part)
    if not sep:
        return f"{ws_folder}{ws_name}"
    folder, name = _split_path(rest)
    return f"{ws_folder}{ws_name}#{folder}{name}"


# Literals that name a folder or a key are compared in their one canonical spelling.
NORMALIZERS = {"folder": folder_canonical, "key": canonical_key}


def _folder_matches(pattern: str, folder: str) -> bool:
    if "@" in pattern and not pattern.strip("/@"):
        return True  # `/@/`: every folder, the root one included
    return fnmatchcase(folder, pattern.replace("@", "*"))


def plan_filter_matcher(text: str, *, with_job: bool) -> Any:
    """`/folder/ws#/folder/stream.job` with `@` wildcards; a part without a folder means the root
    folder, and `@` in a folder matches across levels (`/FIN@/` takes `/FINANCEIRO/TESOURARIA/`)."""
    if "#" not in text:
        raise HttpError(400, [f"AWSJPL001E Resync mock: invalid plan_filter {text!r}."])
    ws_part, rest = text.split("#", 1)
    ws_folder_pat, ws_pat = _split_path(ws_part)
    folder_pat, tail = _split_path(rest)
    ws_pat = ws_pat or "@"
    tail = tail or "@"
    stream_pat, job_pat = ([*tail.split(".", 1), "@"])[:2] if with_job else (tail, "@")

    def glob(p: str) -> str:
        return p.replace("@", "*")

    def match(ws: Any, stream: Any, job: str = "") -> bool:
        return (fnmatchcase(ws.name, glob(ws_pat)) and _folder_matches(ws_folder_pat, ws.folder)
                and fnmatchcase(stream.name, glob(stream_pat)) and _folder_matches(folder_pat, stream.folder)
                and (not with_job or fnmatchcase(job, glob(job_pat))))

    return match


GROUPINGS = ("workstation", "status", "folder")


class MockHwaServer:
    def __init__(self, *, scenario: str | dict[str, Any] = "demo", host: str = "127.0.0.1", port: int = 0, speed: float = 0.0,
                 faults: Faults | None = None, verbose: bool = False) -> None:
        self.scenario_source = scenario
        self.sim = Simulator(load_scenario(scenario) if isinstance(scenario, str) else scenario, speed=speed)
        self.lock = threading.RLock()
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.verbose = verbose
        self.request_count = 0
        self.httpd = _Server((host, port), _Handler)
        self.httpd.mock = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.httpd.server_address[0]}:{self.port}"

    def start(self) -> MockHwaServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"mock-hwa-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> MockHwaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self.lock:
            speed = self.sim.speed
            source = self.scenario_source
            self.sim = Simulator(load_scenario(source) if isinstance(source, str) else source, speed=speed)

    def warm(self) -> None:
        """Serializes every job once, so the first full list is served from cache."""
        with self.lock:
            for job in self.sim.jobs:
                self.sim.job_list_bytes(job)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    mock: MockHwaServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "ResyncMockHWA/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.mock.verbose:
            logger.info("mock HWA: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- plumbing -------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str = JSON, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, separators=(",", ":")).encode())

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise HttpError(400, ["AWSJCO005E Resync mock: the request body is not valid JSON."]) from exc

    def _user(self) -> tuple[str, bool] | None:
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            user = auth.API_KEYS.get(header[7:].strip())
            return (user, auth.USERS[user][1]) if user else None
        if header.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except ValueError:
                return None
            known = auth.USERS.get(name)
            if known and known[0] == password:
                return name, known[1]
        return None

    def _dispatch(self, method: str) -> None:
        mock = self.server.mock
        split = urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        try:
            if path.startswith("/mock/control"):
                self._control(method, path, query)
                return
            faults = mock.faults
            applies = not faults.path or re.search(faults.path, path) is not None
            if applies and faults.in_outage():
                # A master that is down: the connection closes without an answer.
                self.close_connection = True
                return
            if applies and faults.latency_ms:
                time.sleep(faults.latency_ms / 1000)
            if applies and faults.unauthorized:
                raise HttpError(401, ["AWSJCS011E Resync mock: the API key has expired or the credentials are not valid."])
            with mock.lock:
                mock.request_count += 1
                failing = applies and faults.error_rate > 0 and mock.rng.random() < faults.error_rate
                if applies and faults.fail_next > 0:
                    faults.fail_next -= 1
                    failing = True
            if failing:
                raise HttpError(faults.error_status, ["AWSJSY404E Resync mock: engine request failed: AWSBIN091E the plan could not be read."])
            user = self._user()
            if user is None:
                raise HttpError(401, ["AWSJCS011E Resync mock: not authorized (missing or wrong credentials)."])
            if method in ("PUT", "POST", "PATCH") and not self.headers.get("Content-Type", "").lower().startswith("application/json"):
                self._body()
                raise HttpError(415, ["Resync mock: Unsupported Media Type: send Content-Type: application/json."])
            if method in ("PUT", "POST", "PATCH", "DELETE") and not user[1]:
                self._body()
                raise HttpError(403, [f"AWSJCS004E Resync mock: user {user[0]} is not allowed to perform this action."])
            if applies and faults.malformed:
                self._malformed(faults.malformed)
                return
            with mock.lock:
                mock.sim.tick()
                self._route(method, path, query, user[0])
        except HttpError as exc:
            self._json(exc.status, {"messages": exc.messages})
        except moql.OqlSyntaxError as exc:
            self._json(400, {"messages": [f"OQL_FILTER_SYNTAX_ERROR Resync mock: {exc}"], "exceptionName": "OQL_FILTER_SYNTAX_ERROR"})
        except ActionRefused as exc:
            self._json(mock.faults.refusal_status, {"messages": [str(exc)]})
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True

    def _malformed(self, mode: str) -> None:
        if mode == "html":
            self._send(200, b"<html><head><title>Proxy Error</title></head><body>502 Bad Gateway</body></html>", "text/html")
        elif mode == "truncated":
            self._send(200, b'{"count":3,"results":[{"id":"a","name":"X"},{"id":"b","na')
        elif mode == "wrong_types":
            self._send(200, b'{"id":17,"name":["x"],"count":"many","results":{"oops":true},"lastRunCompositeStatus":"EXEC"}')
        elif mode == "missing_fields":
            self._send(200, b'{"count":1,"results":[{"priority":10}],"lastRunCommonStatus":"ERROR"}')
        else:
            self._send(200, b"")

    # --- routes ---------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str], user: str) -> None:
        sim = self.server.mock.sim
        if path == "/twsd/WA_API3_v2.json":
            self._json(200, {"openapi": "3.1.0", "info": {"title": "Resync mock HWA (stub)", "version": "10.2.8-mock"}})
            return
        if path.startswith("/twsd/plan/current/"):
            self._v1(method, path[len("/twsd/plan/current"):], user)
            return
        if not path.startswith(V2):
            raise HttpError(404, [f"AWSJCO404E Resync mock: no such resource {path}."])
        route = path[len(V2):]
        if method == "GET":
            self._get(route, query)
            return
        if method != "PUT":
            raise HttpError(404, [f"AWSJCO404E Resync mock: {method} {route} is not served."])
        justification = {k: self._header_text(k) for k in ("Justification-Category", "Justification-Description", "Justification-Ticket-Num") if self.headers.get(k)}
        if self.server.mock.faults.require_justification and "Justification-Description" not in justification:
            self._body()
            raise HttpError(400, ["AWSJCS020E Resync mock: a justification is required for this action."])
        body = self._body()
        m = re.fullmatch(r"/plan/job/run/([^/]+)/action/rerun", route)
        if m:
            found = sim.runs_by_id.get(unquote(m.group(1)))
            if not found:
                raise HttpError(404, [f"AWSBIO006E Resync mock: job run {unquote(m.group(1))} not found in the plan."])
            job = found[0]
            sim.job_action(job, "rerun", justification=justification, user=user)
            self._json(200, {"id": job.last_run.id if job.last_run else job.id, "url": f"{V2}/plan/job/{job.id}"})
            return
        m = re.fullmatch(r"/plan/job/action/([a-z-]+)", route)
        if m:
            self._filter_action(m.group(1), query, justification, user)
            return
        m = re.fullmatch(r"/plan/job/([^/]+)/action/([a-z-]+)", route)
        if m:
            job = self._job(m.group(1))
            action = m.group(2)
            priority = None
            if action == "update-priority":
                try:
                    priority = int(query["priority"])
                except (KeyError, ValueError) as exc:
                    raise HttpError(400, ["AWSJCO010E Resync mock: the query parameter 'priority' is required (0-101)."]) from exc
                if not 0 <= priority <= 101:
                    raise HttpError(400, ["AWSJCO010E Resync mock: priority must be between 0 and 101."])
            if action == "rerun":  # the 10.2.8 per-id rerun (not in the 10.1 spec): served as an extension
                sim.job_action(job, "rerun", justification=justification, user=user)
                self._json(200, {"id": job.id, "url": f"{V2}/plan/job/{job.id}"})
                return
            dependency_ids = [d.get("id") for d in (body.get("dependencies") or []) if isinstance(d, dict)] if isinstance(body, dict) else []
            if action == "release-dependencies" and not dependency_ids:
                raise HttpError(400, ["AWSJCO011E Resync mock: 'dependencies' is required."])
            sim.job_action(job, action, priority=priority, dependency_ids=dependency_ids, justification=justification, user=user)
            if action.endswith("dependencies"):
                self._json(200, {"id": job.id, "url": f"{V2}/plan/job/{job.id}", "message": "", "isError": False, "error": False})
            else:
                self._json(200, {"id": job.id, "url": f"{V2}/plan/job/{job.id}"})
            return
        m = re.fullmatch(r"/plan/workstation/([^/]+)/action/([a-z-]+)", route)
        if m:
            ws = next((w for w in sim.workstations.values() if w.id == unquote(m.group(1))), None)
            if ws is None:
                raise HttpError(404, [f"AWSBIO006E Resync mock: workstation {unquote(m.group(1))} not found."])
            value = query.get("limit") if m.group(2) == "update-limit" else query.get("priority")
            sim.workstation_action(ws, m.group(2), value=int(value) if value not in (None, "") else None)
            self._json(200, {"id": ws.id, "url": f"{V2}/plan/workstation/{ws.id}"})
            return
        m = re.fullmatch(r"/plan/prompt/([^/]+)/action/reply", route)
        if m:
            prompt = next((p for p in sim.prompts.values() if p.id == unquote(m.group(1))), None)
            if prompt is None:
                raise HttpError(404, [f"AWSBIO006E Resync mock: prompt {unquote(m.group(1))} not found."])
            if not isinstance(body, dict) or not isinstance(body.get("answer"), bool):
                raise HttpError(400, ["AWSJCO011E Resync mock: 'answer' (boolean) is required."])
            sim.prompt_reply(prompt, body["answer"])
            self._json(200, {"id": prompt.id, "url": f"{V2}/plan/prompt/{prompt.id}"})
            return
        raise HttpError(404, [f"AWSJCO404E Resync mock: PUT {route} is not served."])

    def _header_text(self, name: str) -> str:
        value = self.headers.get(name, "")
        try:  # clients send UTF-8 bytes; http.server decodes header bytes as latin-1
            return value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return value

    def _job(self, raw_id: str) -> SimJob:
        job_id = unquote(raw_id)
        job = self.server.mock.sim.jobs_by_id.get(job_id)
        if job is None:
            raise HttpError(404, [f"AWSBIO006E Resync mock: job {job_id} not found in the plan."])
        return job

    def _filter_action(self, action: str, query: dict[str, str], justification: dict[str, str], user: str) -> None:
        sim = self.server.mock.sim
        matched = self._select(sim.jobs, query, JOB_FIELDS, with_job=True)
        cap = int(query.get("max_object_affected") or 1)
        if len(matched) > cap:
            raise HttpError(400, [f"AWSJCO030E Resync mock: the filter matches {len(matched)} objects, more than max_object_affected={cap}."])
        ok, failed = [], []
        for job in matched:
            try:
                sim.job_action(job, action, justification=justification, user=user)
                ok.append({"id": job.id, "url": f"{V2}/plan/job/{job.id}", "message": "", "isError": False, "error": False})
            except ActionRefused as exc:
                failed.append({"id": job.id, "url": f"{V2}/plan/job/{job.id}", "message": str(exc), "isError": True, "error": True})
        self._json(200, {"successfulResourceResponses": ok, "failedResourceResponses": failed})

    def _select(self, items: list[Any], query: dict[str, str], fields_: dict[str, moql.Getter], *, with_job: bool, ws_getter: Any = None) -> list[Any]:
        selected = items
        if query.get("plan_filter"):
            match = plan_filter_matcher(query["plan_filter"], with_job=with_job)
            if with_job:
                selected = [j for j in selected if match(j.ws, j.stream, j.name)]
            elif ws_getter:
                raise HttpError(400, ["AWSJCO010E Resync mock: plan_filter is not served for workstations; use oql."])
            else:
                selected = [s for s in selected if match(s.ws, s)]
        if query.get("oql"):
            parsed = moql.parse(query["oql"], fields_, NORMALIZERS)
            if parsed.predicate:
                selected = [o for o in selected if parsed.predicate(o)]
            if parsed.order_field:
                key = parsed.order_field
                selected = sorted(selected, key=lambda o: str(key(o)), reverse=parsed.descending)
        return selected

    def _page(self, route: str, items: list[Any], query: dict[str, str], render: Any) -> None:
        try:
            limit = int(query.get("limit") or 10000)
            offset = int(query.get("offset") or 0)
        except ValueError as exc:
            raise HttpError(400, ["AWSJCO010E Resync mock: limit and offset must be integers."]) from exc
        if limit < 1 or offset < 0:
            raise HttpError(400, ["AWSJCO010E Resync mock: limit must be positive and offset not negative."])
        page = items[offset : offset + limit]
        base = f"http://{self.headers.get('Host', 'localhost')}{V2}{route}"
        extra = "".join(f"&{k}={v}" for k, v in query.items() if k in ("oql", "plan_filter") and v)
        parts = [b'{"count":', str(len(items)).encode(), b',"results":[', b",".join(render(o) for o in page), b"]"]
        if offset + limit < len(items):
            parts += [b',"next":', json.dumps(f"{base}?limit={limit}&offset={offset + limit}{extra}").encode()]
        if offset > 0:
            parts += [b',"previous":', json.dumps(f"{base}?limit={limit}&offset={max(0, offset - limit)}{extra}").encode()]
        parts.append(b"}")
        self._send(200, b"".join(parts))

    def _get(self, route: str, query: dict[str, str]) -> None:
        sim = self.server.mock.sim
        if route == "/engine/info":
            self._json(200, {"displayVersion": "10.2.8 (Resync mock)", "fullVersion": "10.2.8.0-mock", "capabilities": {},
                             "referenceId": sim.plan_id, "licenseType": "PERJOB", "locale": "pt_BR", "timezone": sim.time_zone})
        elif route == "/plan/job":
            self._page(route, self._select(sim.jobs, query, JOB_FIELDS, with_job=True), query, sim.job_list_bytes)
        elif route == "/plan/job/count":
            self._count(sim.jobs, query, with_job=True)
        elif route == "/plan/jobstream":
            self._page(route, self._select(sim.streams, query, STREAM_FIELDS, with_job=False), query,
                       lambda s: json.dumps(sim.stream_json(s), separators=(",", ":")).encode())
        elif route == "/plan/jobstream/count":
            self._count(sim.streams, query, with_job=False)
        elif route == "/plan/workstation":
            self._page(route, self._select(list(sim.workstations.values()), query, WS_FIELDS, with_job=False, ws_getter=True), query,
                       lambda w: json.dumps(w.to_json(sim.time_zone), separators=(",", ":")).encode())
        elif m := re.fullmatch(r"/plan/job/run/([^/]+)/joblog", route):
            self._joblog(unquote(m.group(1)), query)
        elif m := re.fullmatch(r"/plan/job/([^/]+)/(predecessors|successors)", route):
            job = self._job(m.group(1))
            depth = int(query.get("depth") or 1)
            nodes = sim.flow_neighbours(job, successors=m.group(2) == "successors", depth=depth)
            self._json(200, {"count": len(nodes), "results": [sim.job_json(n, with_dependencies=False, with_definition=False) for n in nodes]})
        elif m := re.fullmatch(r"/plan/job/([^/]+)", route):
            self._json(200, sim.job_json(self._job(m.group(1)), with_dependencies=True))
        elif m := re.fullmatch(r"/plan/jobstream/([^/]+)", route):
            stream = sim.streams_by_id.get(unquote(m.group(1)))
            if stream is None:
                raise HttpError(404, [f"AWSBIO006E Resync mock: job stream {unquote(m.group(1))} not found in the plan."])
            self._json(200, sim.stream_json(stream, with_jobs=True))
        elif m := re.fullmatch(r"/plan/workstation/([^/]+)", route):
            ws = next((w for w in sim.workstations.values() if w.id == unquote(m.group(1))), None)
            if ws is None:
                raise HttpError(404, [f"AWSBIO006E Resync mock: workstation {unquote(m.group(1))} not found."])
            self._json(200, ws.to_json(sim.time_zone))
        else:
            raise HttpError(404, [f"AWSJCO404E Resync mock: GET {route} is not served."])

    def _count(self, items: list[Any], query: dict[str, str], *, with_job: bool) -> None:
        if not query.get("plan_filter"):
            raise HttpError(400, ["AWSJCO010E Resync mock: the query parameter 'plan_filter' is required."])
        # `grouping_filters`: ordered, comma-separated fields. A key of several fields joins their
        # values with commas (HWA's spelling of a multi-field key is unverified).
        grouping = [g.strip() for g in (query.get("grouping_filters") or "").split(",") if g.strip()]
        unknown = [g for g in grouping if g not in GROUPINGS]
        if unknown:
            raise HttpError(400, [f"AWSJCO010E Resync mock: grouping_filters takes {', '.join(GROUPINGS)}, not {unknown[0]!r}."])
        selected = self._select(items, query, JOB_FIELDS if with_job else STREAM_FIELDS, with_job=with_job)
        values: dict[str, Any] = {
            "workstation": lambda o: o.ws.name,
            "status": lambda o: o.status if with_job else o.status(),
            "folder": lambda o: o.stream.folder if with_job else o.folder,  # a job is in its stream's folder
        }
        grouped: dict[str, int] = {}
        for item in selected if grouping else ():
            key = ",".join(values[g](item) for g in grouping)
            grouped[key] = grouped.get(key, 0) + 1
        self._json(200, {"count": len(selected), "groupedCount": grouped})

    def _joblog(self, run_id: str, query: dict[str, str]) -> None:
        mock = self.server.mock
        found = mock.sim.job_log(run_id)
        if found is None:
            raise HttpError(404, [f"AWSBIO006E Resync mock: no job log for run {run_id} (unknown run, or the job never started)."])
        job, _run, (header, body, trailer) = found
        if not job.ws.linked or mock.faults.joblog == "missing":
            raise HttpError(500, [f"AWSJSY404E Resync mock: engine request failed: AWSBIN091E the stdlist of {job.name} could not be retrieved from {job.ws.name}."])
        lines = body if query.get("contentOnly") == "true" else header + body + trailer
        start = int(query.get("from_line") or 1)
        end = int(query.get("to_line") or len(lines))
        text = "\n".join(lines[max(0, start - 1) : max(0, end)]) + "\n"
        if mock.faults.joblog == "truncated":
            text = text[: len(text) // 2]
        self._send(200, text.encode("utf-8"), "text/plain; charset=utf-8")

    # --- v1 (HCL's published samples) ------------------------------------------------------------

    def _v1(self, method: str, route: str, user: str) -> None:
        sim = self.server.mock.sim
        how_many = int(self.headers.get("How-Many") or 500)
        if method == "POST" and route == "/job/query":
            body = self._body()
            flt = ((body.get("filters") or {}).get("jobInPlanFilter") or {}) if isinstance(body, dict) else {}
            pats = {k: str(flt.get(k) or "@").replace("*", "@").replace("@", "*") for k in ("jobStreamName", "jobName", "workstationName")}
            found = [j for j in sim.jobs if fnmatchcase(j.stream.name, pats["jobStreamName"]) and fnmatchcase(j.name, pats["jobName"])
                     and fnmatchcase(j.ws.name, pats["workstationName"])]
            self._json(200, [self._v1_job(j) for j in found[:how_many]])
        elif method == "POST" and route == "/jobstream/query":
            body = self._body()
            flt = ((body.get("filters") or {}).get("jobStreamInPlanFilter") or {}) if isinstance(body, dict) else {}
            pat = str(flt.get("jobStreamName") or "@").replace("@", "*")
            found = [s for s in sim.streams if fnmatchcase(s.name, pat)]
            self._json(200, [{"id": f"{s.ws.name};{s.v1_internal_id}", "key": {"name": s.name, "startTime": iso(s.sched),
                              "workstationKey": {"name": s.ws.name}}, "status": s.status()} for s in found[:how_many]])
        elif method == "POST" and route == "/workstation/query":
            body = self._body()
            flt = ((body.get("filters") or {}).get("workstationInPlanFilter") or {}) if isinstance(body, dict) else {}
            pat = str(flt.get("workstationName") or "@").replace("@", "*")
            self._json(200, [{"id": w.name, "name": w.name, "linked": w.linked} for w in sim.workstations.values() if fnmatchcase(w.name, pat)][:how_many])
        elif method == "PUT" and (m := re.fullmatch(r"/job/([^/]+)/action/rerun", route)):
            self._body()
            v1_id = unquote(m.group(1))
            job = next((j for j in sim.jobs if j.v1_id == v1_id), None)
            if job is None:
                raise HttpError(404, [f"AWSBIO006E Resync mock: job {v1_id} not found in the plan."])
            sim.job_action(job, "rerun", user=user)
            self._send(202, b"")
        else:
            raise HttpError(404, [f"AWSJCO404E Resync mock: {method} /twsd/plan/current{route} is not served."])

    @staticmethod
    def _v1_job(job: SimJob) -> dict[str, Any]:
        return {
            "id": job.v1_id, "name": job.name, "status": job.status, "internalStatus": job.status,
            "jobStreamInPlan": {"name": job.stream.name, "startTime": iso(job.stream.sched), "workstationKey": {"name": job.stream.ws.name}},
            "workstationKey": {"name": job.ws.name}, "priority": job.priority,
        }

    # --- control ---------------------------------------------------------------------------------

    def _control(self, method: str, path: str, query: dict[str, str]) -> None:
        mock = self.server.mock
        action = path[len("/mock/control"):].strip("/")
        body = self._body() if method in ("POST", "PUT") else {}
        with mock.lock:
            if action == "faults" and method == "GET":
                self._json(200, mock.faults.public())
            elif action == "faults":
                try:
                    mock.faults.update(body or {})
                except (ValueError, TypeError) as exc:
                    raise HttpError(400, [str(exc)]) from exc
                mock.rng = random.Random(mock.faults.seed)
                self._json(200, mock.faults.public())
            elif action == "faults/clear":
                mock.faults = Faults()
                self._json(200, mock.faults.public())
            elif action == "advance":
                mock.sim.advance(float(body.get("seconds", 60)))
                self._json(200, {"now": iso(mock.sim.now)})
            elif action == "speed":
                mock.sim.set_speed(float(body.get("speed", 1)))
                self._json(200, {"speed": mock.sim.speed})
            elif action == "churn":
                changed = mock.sim.churn(float(body.get("fraction", 0.01)), body.get("seed"))
                self._json(200, {"changed": changed})
            elif action == "reset":
                mock.reset()
                self._json(200, {"now": iso(mock.sim.now)})
            elif action in ("", "state"):
                mock.sim.tick()
                counts: dict[str, int] = {}
                for job in mock.sim.jobs:
                    counts[job.status] = counts.get(job.status, 0) + 1
                self._json(200, {"scenario": mock.sim.name, "now": iso(mock.sim.now), "speed": mock.sim.speed, "jobs": len(mock.sim.jobs),
                                 "status_counts": counts, "requests": mock.request_count, "faults": mock.faults.public(),
                                 "actions": mock.sim.action_log[-50:]})
            else:
                raise HttpError(404, [f"unknown control {action!r}"])
