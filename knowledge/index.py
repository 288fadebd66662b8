"""The Qdrant collection of knowledge entries: one dense vector and one BM25-style sparse vector each.

Each point carries the entry's external id, status, language, codes and jobs, and the embedding
model's name and version; the collection's metadata names the model too, so a search against an
index built by another model fails loudly (run `manage.py kb_reindex`) instead of comparing
vectors from two different spaces.

Local (embedded) mode stores the points on disk but scores them in pure Python: about 17 ms for a
dense query over 2,000 points and 100 ms with a payload filter, far from the 25 ms p95 target at
10,000 entries. So in local mode searches run on `LocalMirror`, a NumPy copy of the collection
kept in this process (local mode admits a single process, so nothing else can change the folder
behind its back): loaded once from Qdrant, updated on every write made through this module.
With QDRANT_URL the server answers the same queries itself.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from knowledge.embeddings import EmbeddingProvider, get_provider
from knowledge.models import EntryStatus, KnowledgeEntry
from knowledge.text import bm25_document, bm25_query
from knowledge.vectorstore import get_client
from resync_site.lib.errors import UnavailableError

logger = logging.getLogger(__name__)

DENSE = "dense"
LEXICAL = "lexical"
_POINT_NAMESPACE = uuid.UUID("6f1d3c2e-6a43-4d36-9e55-0d1d7e0a9b11")
BATCH_SIZE = 64


class IndexOutdated(UnavailableError):
    code = "kb_index_outdated"


def point_id(external_id: str) -> str:
    # Stable per external id, so re-indexing an entry overwrites its point instead of adding one.
    return str(uuid.uuid5(_POINT_NAMESPACE, external_id))


def entry_text(entry: KnowledgeEntry) -> str:
    """What the embedding and the lexical signal see: the symptom first, then codes, jobs, cause, fix."""
    parts = [entry.title if entry.title not in entry.symptom else "", entry.symptom,
             " ".join(entry.error_codes), " ".join(entry.job_patterns), entry.cause, entry.solution]
    return "\n".join(p for p in parts if p)


@dataclass(frozen=True)
class SignalHit:
    external_id: str
    score: float


_blas_controller: Any = None


def _one_blas_thread() -> Any:
    """One BLAS thread for the scoring matmul: on 2 busy cores, two threads wait on each other
    (measured at 10,000 x 512: p95 12 ms with the default threads, 6 ms with one)."""
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


class LocalMirror:
    """The collection's vectors in NumPy, for fast scoring in local mode (see the module notes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.row_of: dict[str, int] = {}
        self.external_ids: list[str] = []
        self.approved: list[bool] = []
        self.vectors: list[np.ndarray] = []
        self.postings: dict[int, dict[int, float]] = {}
        self.terms_of: list[list[int]] = []
        # Per-term NumPy copies of the postings, made on first use and dropped when a term changes.
        self._arrays_of: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._matrix: np.ndarray | None = None
        self._mask: np.ndarray | None = None

    def put(self, external_id: str, approved: bool, vector: Sequence[float], indices: Sequence[int],
            values: Sequence[float]) -> None:
        row = self.row_of.get(external_id)
        if row is None:
            row = self.row_of[external_id] = len(self.external_ids)
            self.external_ids.append(external_id)
            self.approved.append(approved)
            self.vectors.append(np.asarray(vector, dtype=np.float32))
            self.terms_of.append([])
        else:
            self.approved[row] = approved
            self.vectors[row] = np.asarray(vector, dtype=np.float32)
            for term in self.terms_of[row]:
                self.postings[term].pop(row, None)
                self._arrays_of.pop(term, None)
        for term, weight in zip(indices, values, strict=True):
            self.postings.setdefault(int(term), {})[row] = float(weight)
            self._arrays_of.pop(int(term), None)
        self.terms_of[row] = [int(t) for t in indices]
        self._matrix = self._mask = None

    def remove(self, external_id: str) -> None:
        row = self.row_of.get(external_id)
        if row is not None:
            self.approved[row] = False
            self._mask = None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._matrix is None:
            self._matrix = np.stack(self.vectors) if self.vectors else np.zeros((0, 1), dtype=np.float32)
        if self._mask is None:
            self._mask = np.array(self.approved, dtype=bool)
        return self._matrix, self._mask

    def query(self, vector: np.ndarray, indices: Sequence[int], limit: int) -> tuple[list[SignalHit], list[SignalHit]]:
        with self.lock:
            matrix, mask = self._arrays()
            if not len(self.external_ids) or not mask.any():
                return [], []
            with _one_blas_thread():
                products = matrix @ vector.astype(np.float32)
            dense_scores = np.where(mask, products, -np.inf)
            dense = self._top(dense_scores, limit)
            lexical_scores = np.zeros(len(self.external_ids), dtype=np.float32)
            total = len(self.external_ids)
            for term in set(indices):
                arrays = self._posting(int(term))
                if arrays is None:
                    continue
                # Qdrant's IDF modifier: ln(1 + (N - df + 0.5) / (df + 0.5)).
                df = len(arrays[0])
                idf = float(np.log(1 + (total - df + 0.5) / (df + 0.5)))
                lexical_scores[arrays[0]] += idf * arrays[1]
            lexical_scores = np.where(mask & (lexical_scores > 0), lexical_scores, -np.inf)
            lexical = self._top(lexical_scores, limit)
            return dense, lexical

    def _posting(self, term: int) -> tuple[np.ndarray, np.ndarray] | None:
        """A term's rows and weights as NumPy arrays (made on first use); None when no entry has it."""
        arrays = self._arrays_of.get(term)
        if arrays is None:
            posting = self.postings.get(term)
            if not posting:
                return None
            arrays = self._arrays_of[term] = (
                np.fromiter(posting.keys(), dtype=np.int64, count=len(posting)),
                np.fromiter(posting.values(), dtype=np.float32, count=len(posting)),
            )
        return arrays

    def document_frequencies(self, terms: Iterable[int]) -> tuple[int, dict[int, int]]:
        """How many approved entries there are, and how many of them contain each term."""
        with self.lock:
            _matrix, mask = self._arrays()
            counts = {}
            for term in terms:
                arrays = self._posting(int(term))
                counts[int(term)] = int(mask[arrays[0]].sum()) if arrays is not None else 0
            return int(mask.sum()), counts

    def _top(self, scores: np.ndarray, limit: int) -> list[SignalHit]:
        finite = int(np.isfinite(scores).sum())
        count = min(limit, finite)
        if count <= 0:
            return []
        best = np.argpartition(-scores, count - 1)[:count]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [SignalHit(self.external_ids[i], float(scores[i])) for i in best]


_mirrors: dict[str, LocalMirror] = {}
_mirror_loaded_at: dict[str, float] = {}
SERVER_MIRROR_SECONDS = 300.0
_mirrors_lock = threading.Lock()


def _load_mirror(client: QdrantClient, collection: str) -> LocalMirror:
    mirror = LocalMirror()
    offset = None
    while True:
        points, offset = client.scroll(collection, limit=1000, offset=offset, with_payload=True, with_vectors=True)
        for point in points:
            vectors = point.vector if isinstance(point.vector, dict) else {}
            sparse = vectors.get(LEXICAL)
            payload = point.payload or {}
            mirror.put(payload.get("external_id", str(point.id)), payload.get("status") == EntryStatus.APPROVED,
                       vectors.get(DENSE, []), getattr(sparse, "indices", []), getattr(sparse, "values", []))
        if offset is None:
            return mirror


def _forget_mirror(collection: str) -> None:
    with _mirrors_lock:
        _mirrors.pop(collection, None)


def drop_collection(collection: str) -> None:
    """Deletes a collection and everything this process remembers about it (any embedding model)."""
    client = get_client()
    if client.collection_exists(collection):
        client.delete_collection(collection)
    _forget_mirror(collection)
    with _checked_lock:
        for key in [k for k in _checked if k[0] == collection]:
            del _checked[key]



_checked: dict[tuple[str, str], bool] = {}
_checked_lock = threading.Lock()
_create_lock = threading.Lock()


@dataclass
class KnowledgeIndex:
    collection: str
    provider: EmbeddingProvider

    @property
    def client(self) -> QdrantClient:
        return get_client()

    @property
    def local(self) -> bool:
        return not settings.QDRANT_URL

    def mirror(self) -> LocalMirror:
        with _mirrors_lock:
            mirror = _mirrors.get(self.collection)
            # With a server other processes write too: this process's copy (used there only for term
            # statistics) is reloaded when it is older than SERVER_MIRROR_SECONDS.
            stale = not self.local and time.monotonic() - _mirror_loaded_at.get(self.collection, 0.0) > SERVER_MIRROR_SECONDS
            if mirror is None or stale:
                mirror = _mirrors[self.collection] = _load_mirror(self.client, self.collection)
                _mirror_loaded_at[self.collection] = time.monotonic()
            return mirror

    def document_frequencies(self, terms: Iterable[int]) -> tuple[int, dict[int, int]]:
        """Approved entries in the collection, and how many contain each (lexical) term id."""
        self.ensure()
        return self.mirror().document_frequencies(terms)

    @property
    def model_label(self) -> str:
        return f"{self.provider.name}@{self.provider.version}"

    # --- collection -------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.client.collection_exists(self.collection)

    def create(self) -> None:
        try:
            self.client.create_collection(
                self.collection,
                vectors_config={DENSE: qm.VectorParams(size=self.provider.dim, distance=qm.Distance.COSINE)},
                sparse_vectors_config={LEXICAL: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
                metadata={"embedding_model": self.provider.name, "embedding_version": self.provider.version},
            )
        except Exception:
            # Another process (a server shared by several workers) created it first: that is fine.
            if not self.exists():
                raise
        _forget_mirror(self.collection)
        if settings.QDRANT_URL:  # payload indexes exist only on a server; local mode scans anyway
            for name in ("status", "language", "codes", "jobs"):
                self.client.create_payload_index(self.collection, name, qm.PayloadSchemaType.KEYWORD)
        with _checked_lock:
            _checked[(self.collection, self.model_label)] = True

    def drop(self) -> None:
        drop_collection(self.collection)

    def built_with(self) -> str | None:
        """`name@version` of the model that built the collection, or None when there is none."""
        if not self.exists():
            return None
        metadata = self.client.get_collection(self.collection).config.metadata or {}
        return f"{metadata.get('embedding_model')}@{metadata.get('embedding_version')}"

    def ensure(self) -> None:
        """Creates the collection if missing; refuses one built by another embedding model."""
        key = (self.collection, self.model_label)
        with _checked_lock:
            if _checked.get(key):
                return
        # One thread at a time checks and creates: concurrent chat turns meeting a missing collection
        # must not all create it (local mode's metadata file is replaced, not locked).
        with _create_lock:
            with _checked_lock:
                if _checked.get(key):
                    return
            built = self.built_with()
            if built is None:
                self.create()
                return
        if built != self.model_label:
            raise IndexOutdated(
                f"the knowledge index '{self.collection}' was built with {built}, but EMBEDDING_MODEL is "
                f"{self.model_label}: run `manage.py kb_reindex`"
            )
        with _checked_lock:
            _checked[key] = True

    # --- writes -----------------------------------------------------------------------------
    def upsert(self, entries: Sequence[KnowledgeEntry], progress: Callable[[int], None] | None = None) -> int:
        self.ensure()
        done = 0
        for start in range(0, len(entries), BATCH_SIZE):
            batch = entries[start : start + BATCH_SIZE]
            texts = [entry_text(e) for e in batch]
            dense = self.provider.embed_passages(texts)
            points = []
            for entry, text, vector in zip(batch, texts, dense, strict=True):
                indices, values = bm25_document(text)
                points.append(
                    qm.PointStruct(
                        id=point_id(entry.external_id),
                        vector={DENSE: vector.tolist(), LEXICAL: qm.SparseVector(indices=indices, values=values)},
                        payload={
                            "external_id": entry.external_id,
                            "entry_pk": entry.pk,
                            "status": entry.status,
                            "language": entry.language,
                            "codes": list(entry.error_codes),
                            "jobs": list(entry.job_patterns),
                            "embedding_model": self.provider.name,
                            "embedding_version": self.provider.version,
                        },
                    )
                )
            self.client.upsert(self.collection, points=points, wait=True)
            if self.local:
                mirror = self.mirror()
                with mirror.lock:
                    for entry, point in zip(batch, points, strict=True):
                        vectors = point.vector
                        assert isinstance(vectors, dict)
                        sparse = vectors[LEXICAL]
                        assert isinstance(sparse, qm.SparseVector)
                        mirror.put(entry.external_id, entry.status == EntryStatus.APPROVED, vectors[DENSE],
                                   sparse.indices, sparse.values)
            done += len(batch)
            if progress is not None:
                progress(done)
        return done

    def delete(self, external_ids: Iterable[str]) -> None:
        external_ids = list(external_ids)
        ids = [point_id(e) for e in external_ids]
        if ids and self.exists():
            self.client.delete(self.collection, points_selector=qm.PointIdsList(points=ids), wait=True)
            if self.local:
                mirror = self.mirror()
                with mirror.lock:
                    for external_id in external_ids:
                        mirror.remove(external_id)

    def count(self) -> int:
        return self.client.count(self.collection, exact=True).count if self.exists() else 0

    # --- reads ------------------------------------------------------------------------------
    def query(self, question: str, *, limit: int = 50) -> tuple[list[SignalHit], list[SignalHit]]:
        """Dense and lexical candidates among approved entries, each ranked by its own score."""
        self.ensure()
        vector = self.provider.embed_query(question)
        indices, values = bm25_query(question)
        if self.local:
            return self.mirror().query(vector, indices, limit)
        approved = qm.Filter(must=[qm.FieldCondition(key="status", match=qm.MatchValue(value=EntryStatus.APPROVED))])
        requests = [
            qm.QueryRequest(query=vector.tolist(), using=DENSE, filter=approved, limit=limit, with_payload=["external_id"])
        ]
        if indices:
            requests.append(
                qm.QueryRequest(
                    query=qm.SparseVector(indices=indices, values=values),
                    using=LEXICAL,
                    filter=approved,
                    limit=limit,
                    with_payload=["external_id"],
                )
            )
        responses = self.client.query_batch_points(self.collection, requests=requests)
        dense = [SignalHit(p.payload["external_id"], float(p.score)) for p in responses[0].points if p.payload]
        lexical = (
            [SignalHit(p.payload["external_id"], float(p.score)) for p in responses[1].points if p.payload and p.score > 0]
            if len(responses) > 1
            else []
        )
        return dense, lexical


def get_index(*, collection: str | None = None, model: str | None = None) -> KnowledgeIndex:
    return KnowledgeIndex(collection or settings.QDRANT_COLLECTION, get_provider(model))
