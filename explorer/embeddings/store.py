"""A real local vector database: Chroma's embedded persistent client, fed our own MiniLM vectors.

Chroma fixes the distance per collection (HNSW ``space``), so every corpus chunking has one collection per
metric: ``cosine`` (distance ``1 - cos``), ``ip`` (``1 - a.b``) and ``l2`` (squared Euclidean). Results are
reported as a similarity, higher is better: ``1 - d`` for cosine and dot product, ``-sqrt(d)`` for Euclidean.
Vectors always come from us (:func:`models.embedder.embed`); Chroma's default embedding function, which would
download a model, is never used (``embedding_function=None``), and telemetry is off.

HNSW is approximate; the corpus here is small, so the index is built with ``ef_construction`` and
``ef_search`` above the collection size, which makes the search visit every vector (exact, checked against
a brute-force numpy search in the tests). The store lives under ``<cache dir>/chroma/``; a store that cannot
be opened or read (corrupted, locked) is moved aside and rebuilt from ``data/embeddings/`` with a notice.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from explorer.core.config import cache_dir, data_path
from explorer.embeddings.corpus import Chunk, chunk_passages, load_passages

METRICS: dict[str, str] = {"cosine": "cosine", "dot": "ip", "euclidean": "l2"}
HNSW = {"ef_construction": 1024, "ef_search": 1024, "max_neighbors": 64}
MAX_K = 50
MAX_PASSAGE_CHARS = 1000
MAX_USER_PASSAGES = 50
MAX_ADHOC_DOCUMENTS = 200
STORE_VERSION = "v1"
CHUNKING_RULE = "stream-of-words-v1"


def check_metric(metric) -> str:
    """Return ``metric`` if it is one of :data:`METRICS`.

    Raises:
        ValueError: unknown metric (the message lists the choices).
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; choose from {', '.join(METRICS)}.")
    return metric


def to_similarity(metric: str, distance: float) -> float:
    """Chroma's distance for ``metric`` as a similarity (higher is better).

    cosine: ``1 - d`` (= cos); dot: ``1 - d`` (= a.b, Chroma's ``ip`` distance is ``1 - a.b``);
    euclidean: ``-sqrt(d)`` (Chroma's ``l2`` is the squared distance).
    """
    if metric == "euclidean":
        return -float(np.sqrt(max(float(distance), 0.0)))
    return 1.0 - float(distance)


def brute_force(vectors: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """Similarity of ``query`` (d,) to every row of ``vectors`` (n, d) by numpy, same convention as :func:`to_similarity`."""
    if metric == "euclidean":
        return -np.linalg.norm(vectors - query[None, :], axis=1)
    dots = vectors @ query
    if metric == "cosine":
        dots = dots / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query) + 1e-12)
    return dots


@dataclass(frozen=True)
class Hit:
    """One search result: ``text``, ``score`` (similarity, higher is better), ``rank`` (1 = best), ``doc``, ``source``."""

    text: str
    score: float
    rank: int
    doc: str = ""
    source: str = "corpus"

    def to_api(self) -> dict:
        """``{"text", "score", "rank"}`` (the /search hit shape)."""
        return {"text": self.text, "score": round(self.score, 6), "rank": self.rank}


_VECTORS: dict[str, np.ndarray] = {}
_VECTORS_CAP = 50_000


def _embed(texts: list[str]) -> np.ndarray:
    """MiniLM vectors ``(n, 384)`` of ``texts``, remembered per text (rebuilding a collection re-embeds nothing)."""
    from models.embedder import embed

    missing = list(dict.fromkeys(t for t in texts if t not in _VECTORS))
    if missing:
        if len(_VECTORS) + len(missing) > _VECTORS_CAP:
            _VECTORS.clear()
        _VECTORS.update(zip(missing, embed(missing)))
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.stack([_VECTORS[t] for t in texts]).astype(np.float32)


def _corpus_fingerprint() -> str:
    """Hash of corpus.json and the chunking rule: a stored collection with another fingerprint is rebuilt."""
    with open(data_path("embeddings", "corpus.json"), "rb") as handle:
        return hashlib.sha256(handle.read() + CHUNKING_RULE.encode()).hexdigest()[:16]


def check_passages(texts, name: str = "documents", cap: int = MAX_ADHOC_DOCUMENTS) -> list[str]:
    """``texts`` as a non-empty list of non-blank strings, each at most :data:`MAX_PASSAGE_CHARS` characters.

    Raises:
        ValueError: not a list of strings, empty, a blank entry, a passage over the cap, or more than ``cap`` entries.
    """
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{name} must be a list of strings (got {type(texts).__name__}).")
    texts = [t.strip() for t in texts if t.strip()]
    if not texts:
        raise ValueError(f"The {name} list is empty: give at least one passage to search.")
    if len(texts) > cap:
        raise ValueError(f"Too many {name}: {len(texts)} given, at most {cap} allowed.")
    too_long = [i + 1 for i, t in enumerate(texts) if len(t) > MAX_PASSAGE_CHARS]
    if too_long:
        raise ValueError(f"Passage {too_long[0]} of {name} is over the cap of {MAX_PASSAGE_CHARS:,} characters; "
                         "split it into shorter passages.")
    return texts


class VectorStore:
    """The Chroma persistent store of the corpus (one collection per chunking and metric) and of user passages.

    Attributes:
        path: the folder of the Chroma database.
        notices: messages about rebuilds (a corrupted or locked store), newest last.
    """

    def __init__(self, path: str | None = None, embed_fn=None):
        self.path = path or os.path.join(cache_dir(), "chroma", STORE_VERSION)
        self.embed_fn = embed_fn or _embed
        self.notices: list[str] = []
        self._client = None
        self._lock = threading.RLock()

    # -- the client, with a rebuild when the database cannot be used --------------------------------------------
    def client(self):
        """The ``chromadb.PersistentClient`` (opened on first use, telemetry off)."""
        with self._lock:
            if self._client is None:
                os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
                import chromadb
                from chromadb.config import Settings

                os.makedirs(self.path, exist_ok=True)
                self._client = chromadb.PersistentClient(
                    path=self.path, settings=Settings(anonymized_telemetry=False, allow_reset=True))
            return self._client

    def _discard(self, exc: BaseException) -> None:
        """Forget the client, move the broken database aside (or to a fresh folder) and record a notice."""
        from chromadb.api.shared_system_client import SharedSystemClient

        self._client = None
        SharedSystemClient.clear_system_cache()
        broken = f"{self.path}.broken-{int(time.time())}-{os.getpid()}"
        try:
            os.replace(self.path, broken)
            shutil.rmtree(broken, ignore_errors=True)
        except OSError:
            self.path = f"{self.path}-{uuid.uuid4().hex[:8]}"  # locked by someone else: use a fresh folder
        self.notices.append(f"The vector store could not be used ({type(exc).__name__}: {str(exc)[:120]}); "
                            "it was rebuilt from data/embeddings/corpus.json.")

    def _guarded(self, fn):
        """Run ``fn()``; on a database error rebuild once and retry (``ValueError`` from our checks passes through)."""
        with self._lock:
            try:
                return fn()
            except ValueError:
                raise
            except Exception as exc:  # noqa: BLE001 - any storage failure means: rebuild from data/
                self._discard(exc)
                return fn()

    # -- corpus collections ---------------------------------------------------------------------------------
    def _collection_name(self, chunk_size: int | None, metric: str) -> str:
        return f"corpus-c{chunk_size or 0}-{METRICS[metric]}"

    def corpus_chunks(self, chunk_size: int | None) -> list[Chunk]:
        """The corpus cut into chunks of ``chunk_size`` words (``None``: the passages as written)."""
        return chunk_passages(load_passages(), chunk_size)

    def corpus_collection(self, chunk_size: int | None, metric: str):
        """The Chroma collection of the corpus for this chunking and metric, built (embedded + indexed) if missing or stale."""
        check_metric(metric)
        name = self._collection_name(chunk_size, metric)
        fingerprint = _corpus_fingerprint()
        client = self.client()
        try:
            col = client.get_collection(name, embedding_function=None)
            if (col.metadata or {}).get("fingerprint") == fingerprint and col.count() == len(self.corpus_chunks(chunk_size)):
                return col
            client.delete_collection(name)
        except Exception as exc:  # noqa: BLE001 - missing collection: build it; other errors re-raised below
            if "does not exist" not in str(exc) and type(exc).__name__ != "NotFoundError":
                raise
        chunks = self.corpus_chunks(chunk_size)
        return self._create(name, chunks, self.embed_fn([c.text for c in chunks]), metric,
                            {"fingerprint": fingerprint, "chunk_size": chunk_size or 0})

    def _create(self, name: str, chunks: list[Chunk], vectors: np.ndarray, metric: str, metadata: dict,
                hnsw: dict | None = None):
        """A new collection of ``chunks`` with their ``vectors`` (n, d); ``hnsw`` overrides :data:`HNSW`."""
        col = self.client().create_collection(
            name, configuration={"hnsw": {"space": METRICS[metric], **(hnsw or HNSW)}}, metadata=metadata,
            embedding_function=None)
        for start in range(0, len(chunks), 1000):
            part = chunks[start:start + 1000]
            col.add(ids=[c.id for c in part], embeddings=np.asarray(vectors[start:start + 1000], dtype=np.float32),
                    documents=[c.text for c in part], metadatas=[{"doc": c.doc} for c in part])
        return col

    def build(self, chunk_size: int | None = None, metrics=tuple(METRICS)) -> float:
        """Make sure the corpus collections exist; returns the wall time in seconds."""
        start = time.perf_counter()
        for metric in metrics:
            self._guarded(lambda m=metric: self.corpus_collection(chunk_size, m))
        return time.perf_counter() - start

    # -- queries --------------------------------------------------------------------------------------------
    @staticmethod
    def _hits(result: dict, metric: str, source: str) -> list[list[Hit]]:
        out = []
        for docs, dists, metas in zip(result["documents"], result["distances"], result["metadatas"]):
            out.append([Hit(text, to_similarity(metric, d), 0, (meta or {}).get("doc", ""), source)
                        for text, d, meta in zip(docs, dists, metas)])
        return out

    @staticmethod
    def _ranked(hits: list[Hit], k: int) -> list[Hit]:
        hits = sorted(hits, key=lambda h: -h.score)[:k]
        return [Hit(h.text, h.score, i + 1, h.doc, h.source) for i, h in enumerate(hits)]

    def query_corpus(self, query_vectors: np.ndarray, k: int, metric: str, chunk_size: int | None = None,
                     session: "SessionPassages | None" = None) -> list[list[Hit]]:
        """Top-``k`` hits per query vector ``(q, 384)`` from the corpus (and the session's own passages).

        Raises:
            ValueError: unknown metric, or ``k`` larger than the collection.
        """
        check_metric(metric)

        def run():
            col = self.corpus_collection(chunk_size, metric)
            size = col.count() + (session.count() if session else 0)
            if k > size:
                raise ValueError(f"k = {k} is larger than the collection ({size} chunks); choose k <= {size}.")
            q = np.asarray(query_vectors, dtype=np.float32)
            res = col.query(query_embeddings=q, n_results=min(k, col.count()),
                            include=["documents", "distances", "metadatas"])
            per_query = self._hits(res, metric, "corpus")
            if session and session.count():
                user = session.query(q, min(k, session.count()), metric)
                per_query = [a + b for a, b in zip(per_query, user)]
            return [self._ranked(h, k) for h in per_query]

        return self._guarded(run)

    def query_documents(self, documents: list[str], query_vectors: np.ndarray, k: int, metric: str,
                        chunk_size: int | None = None) -> list[list[Hit]]:
        """Search an ad-hoc collection made of ``documents`` for this call only (deleted afterwards).

        Raises:
            ValueError: empty list, a passage over the cap, too many documents, ``k`` above the number of chunks.
        """
        check_metric(metric)
        documents = check_passages(documents)
        passages = [{"id": f"d{i}", "doc": f"d{i}", "text": t} for i, t in enumerate(documents)]
        chunks = chunk_passages(passages, chunk_size)
        if k > len(chunks):
            raise ValueError(f"k = {k} is larger than the collection ({len(chunks)} chunks); choose k <= {len(chunks)}.")
        vectors = self.embed_fn([c.text for c in chunks])
        name = f"adhoc-{uuid.uuid4().hex}"

        def run():
            col = self._create(name, chunks, vectors, metric, {"adhoc": True})
            try:
                res = col.query(query_embeddings=np.asarray(query_vectors, dtype=np.float32), n_results=k,
                                include=["documents", "distances", "metadatas"])
            finally:
                self.client().delete_collection(name)
            return [self._ranked(h, k) for h in self._hits(res, metric, "documents")]

        return self._guarded(run)


@dataclass
class SessionPassages:
    """A user's own passages, in Chroma collections named after a random session id (one per metric).

    Only the session that made it holds the id, so nothing added here can reach another session; the tab drops
    it when the session ends (``gr.State`` delete callback).

    Attributes:
        session_id: random hex; texts: the passages added, in order; store_override: a :class:`VectorStore` to use
        instead of :func:`get_store` (tests). Holds no lock or client, so Gradio can copy it.
    """

    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    texts: list = field(default_factory=list)
    store_override: "VectorStore | None" = None

    @property
    def store(self) -> VectorStore:
        """The store the collections live in (the process-wide one unless a test passes its own)."""
        return self.store_override or get_store()

    def _name(self, metric: str) -> str:
        return f"user-{self.session_id}-{METRICS[metric]}"

    def count(self) -> int:
        """Number of passages added."""
        return len(self.texts)

    def add(self, texts: list[str]) -> int:
        """Embed and store ``texts`` in every metric's collection; returns the new total.

        Raises:
            ValueError: empty list, a passage over :data:`MAX_PASSAGE_CHARS`, or more than :data:`MAX_USER_PASSAGES` in all.
        """
        texts = check_passages(texts, "passages", cap=MAX_USER_PASSAGES)
        if len(self.texts) + len(texts) > MAX_USER_PASSAGES:
            raise ValueError(f"Too many passages: this session holds {len(self.texts)} and at most "
                             f"{MAX_USER_PASSAGES} are allowed; remove some first.")
        vectors = self.store.embed_fn(texts)
        start = len(self.texts)
        chunks = [Chunk(f"u{start + i}", "your passages", t) for i, t in enumerate(texts)]

        def run():
            client = self.store.client()
            for metric, space in METRICS.items():
                col = client.get_or_create_collection(self._name(metric), configuration={"hnsw": {"space": space, **HNSW}},
                                                      embedding_function=None)
                col.add(ids=[c.id for c in chunks], embeddings=np.asarray(vectors, dtype=np.float32),
                        documents=texts, metadatas=[{"doc": c.doc} for c in chunks])

        self.store._guarded(run)
        self.texts.extend(texts)
        return len(self.texts)

    def query(self, query_vectors: np.ndarray, k: int, metric: str) -> list[list[Hit]]:
        """Top-``k`` of the user's passages per query vector (empty lists when none were added)."""
        if not self.texts:
            return [[] for _ in range(len(query_vectors))]
        try:
            col = self.store.client().get_collection(self._name(metric), embedding_function=None)
        except Exception:  # noqa: BLE001 - lost in a store rebuild: put this session's passages back
            texts, self.texts = list(self.texts), []
            self.add(texts)
            col = self.store.client().get_collection(self._name(metric), embedding_function=None)
        res = col.query(query_embeddings=np.asarray(query_vectors, dtype=np.float32), n_results=min(k, self.count()),
                        include=["documents", "distances", "metadatas"])
        return self.store._hits(res, metric, "session")

    def drop(self) -> None:
        """Delete this session's collections (called when the session ends); safe to call twice."""
        self.texts = []
        try:
            client = self.store.client()
            for metric in METRICS:
                try:
                    client.delete_collection(self._name(metric))
                except Exception:  # noqa: BLE001 - already gone
                    pass
        except Exception:  # noqa: BLE001 - the store itself is gone
            pass


_STORE: VectorStore | None = None
_STORE_LOCK = threading.Lock()


def get_store() -> VectorStore:
    """The process-wide :class:`VectorStore` under the cache folder."""
    global _STORE
    with _STORE_LOCK:
        if _STORE is None:
            _STORE = VectorStore()
        return _STORE
