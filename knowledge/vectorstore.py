"""The one Qdrant client of this process.

Qdrant's local (embedded) mode admits a single client per folder, even within one process, so
every caller shares the client made here. With QDRANT_URL set the same code talks to a server.
"""

from __future__ import annotations

import atexit
import threading

from django.conf import settings
from qdrant_client import QdrantClient

_lock = threading.Lock()
_client: QdrantClient | None = None


def get_client() -> QdrantClient:
    global _client
    with _lock:
        if _client is None:
            if settings.QDRANT_URL:
                _client = QdrantClient(url=settings.QDRANT_URL, api_key=settings.QDRANT_API_KEY or None, timeout=10)
            else:
                settings.QDRANT_PATH.mkdir(parents=True, exist_ok=True)
                _client = QdrantClient(path=str(settings.QDRANT_PATH))
            # Closed while the interpreter still works: local mode's own __del__ fails at shutdown.
            atexit.register(close_client)
        return _client


def close_client() -> None:
    global _client
    with _lock:
        if _client is not None:
            _client.close()
            _client = None
