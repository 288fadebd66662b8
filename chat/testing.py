"""A local OpenAI-compatible chat-completions server, for tests and `bench/chat.py`.

It speaks the streaming protocol litellm uses for `openai/<model>` with `api_base`: server-sent
events of `chat.completion.chunk` objects, text deltas and tool-call deltas, then `[DONE]`. Each
request takes the next scripted `Reply` (or the default one): text, tool calls, an HTTP error, or
a delay before the first byte. Requests are recorded so tests can check what the model was sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    first_token_delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_chars: int = 12


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        fake = self.server.fake
        reply = fake.next_reply(body)
        with fake.lock:
            fake.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        if reply.first_token_delay:
            time.sleep(reply.first_token_delay)
        if reply.status != 200:
            payload = json.dumps({"error": {"message": "scripted failure", "type": "server_error", "code": reply.status}}).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        model = body.get("model", "fake-model")
        if not body.get("stream"):
            self._whole(reply, model)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        try:
            self._stream(reply, model)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _chunk(self, model: str, delta: dict[str, Any], finish: str | None = None) -> None:
        data = {
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

    def _stream(self, reply: Reply, model: str) -> None:
        self._chunk(model, {"role": "assistant", "content": ""})
        text = reply.text
        step = max(1, reply.chunk_chars)
        for start in range(0, len(text), step):
            self._chunk(model, {"content": text[start:start + step]})
            if reply.chunk_delay:
                time.sleep(reply.chunk_delay)
        for index, (name, arguments) in enumerate(reply.tool_calls):
            raw = json.dumps(arguments)
            self._chunk(model, {"tool_calls": [{"index": index, "id": f"call_{index}", "type": "function",
                                                "function": {"name": name, "arguments": ""}}]})
            half = len(raw) // 2
            for part in (raw[:half], raw[half:]):
                self._chunk(model, {"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        self._chunk(model, {}, "tool_calls" if reply.tool_calls else "stop")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _whole(self, reply: Reply, model: str) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for i, (n, a) in enumerate(reply.tool_calls)
            ]
        payload = json.dumps({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    fake: FakeLlmServer


class FakeLlmServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, default: Reply | None = None) -> None:
        self.default = default or Reply(text="OK.")
        self.script: list[Reply | Callable[[dict[str, Any]], Reply]] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.httpd = _Server((host, port), _Handler)
        self.httpd.fake = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def next_reply(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            item = self.script.pop(0) if self.script else self.default
        return item(body) if callable(item) else item

    def start(self) -> FakeLlmServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeLlmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """`python -m chat.testing --port P --delay S`: serve until killed (bench/chat.py runs it apart)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--text", default="OK.")
    args = parser.parse_args()
    server = FakeLlmServer(port=args.port, default=Reply(text=args.text, first_token_delay=args.delay, chunk_chars=16))
    print(server.url, flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
