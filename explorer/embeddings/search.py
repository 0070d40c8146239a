"""Semantic search over the vector store: a query -> MiniLM vector -> top-k chunks, for one or all metrics,
and recall@k of the labelled queries for each chunk size (too small loses context, too large dilutes it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int, check_text
from explorer.embeddings.corpus import CHUNK_SIZES, load_queries, recall_at_k
from explorer.embeddings.store import MAX_K, METRICS, Hit, SessionPassages, check_metric, get_store


@dataclass(frozen=True)
class SearchResult:
    """Top-k hits of one query.

    Attributes:
        query, metric, k, chunk_size (words; ``None`` = passages as written), hits (list of :class:`Hit`, best first),
        ms: wall time of embedding + search, ms; notices: caps and store rebuilds; provenance.
    """

    query: str
    metric: str
    k: int
    chunk_size: int | None
    hits: list
    ms: float
    notices: list = field(default_factory=list)
    provenance: Provenance | None = None

    def to_api(self) -> dict:
        """JSON of ``/search``: ``{"hits": [{"text", "score", "rank"}], "metric", "k", "chunk_size", "notices", "provenance"}``."""
        return {"hits": [h.to_api() for h in self.hits], "metric": self.metric, "k": self.k,
                "chunk_size": self.chunk_size, "ms": round(self.ms, 2), "notices": list(self.notices),
                "provenance": self.provenance.to_api() if self.provenance else None}


def check_chunk_size(value) -> int | None:
    """``None``/0 (passages as written) or a chunk size in words, at least 1 and at most 512.

    Raises:
        ValueError: not an integer, or out of range.
    """
    if value is None or value == 0:
        return None
    size = check_int(value, "chunk_size", minimum=1)
    if size > 512:
        raise ValueError(f"chunk_size must be at most 512 words (got {size}).")
    return size


def search(query: str, k: int = 5, metric: str = "cosine", documents: list[str] | None = None,
           chunk_size: int | None = None, session: SessionPassages | None = None) -> SearchResult:
    """Embed ``query`` with MiniLM and return the ``k`` most similar chunks.

    Args:
        documents: ``None`` searches the built-in corpus (plus ``session``'s passages); a list builds an ad-hoc
            collection for this call.
        chunk_size: words per chunk (``None``: passages as written).
    Raises:
        ValueError: empty query, k < 1 or above :data:`MAX_K` or the collection, unknown metric, bad documents.
    """
    query = check_text(query, "query")
    k = check_int(k, "k", minimum=1)
    if k > MAX_K:
        raise ValueError(f"k must be at most {MAX_K} (got {k}).")
    metric = check_metric(metric)
    chunk_size = check_chunk_size(chunk_size)
    store = get_store()
    seen = len(store.notices)
    start = time.perf_counter()
    vector = store.embed_fn([query])
    if documents is None:
        hits = store.query_corpus(vector, k, metric, chunk_size, session)[0]
    else:
        hits = store.query_documents(documents, vector, k, metric, chunk_size)[0]
    ms = (time.perf_counter() - start) * 1000
    return SearchResult(query, metric, k, chunk_size, hits, ms, list(store.notices[seen:]),
                        measured(f"all-MiniLM-L6-v2 + Chroma HNSW ({METRICS[metric]})", model="all-minilm-l6-v2"))


def search_all_metrics(query: str, k: int = 5, chunk_size: int | None = None,
                       session: SessionPassages | None = None) -> dict[str, SearchResult]:
    """:func:`search` with each metric, side by side: ``{metric: SearchResult}``."""
    return {metric: search(query, k, metric, None, chunk_size, session) for metric in METRICS}


@dataclass(frozen=True)
class RecallResult:
    """recall@k of the labelled queries per chunk size.

    Attributes:
        chunk_sizes: list of sizes (words; 0 = passages as written); ks: list of k;
        recall: ``np.ndarray`` (len(chunk_sizes), len(ks)) in [0, 1]; n_chunks: chunks per size;
        n_queries; metric; provenance.
    """

    chunk_sizes: list
    ks: list
    recall: np.ndarray
    n_chunks: list
    n_queries: int
    metric: str
    provenance: Provenance

    def to_api(self) -> dict:
        """``{"chunk_sizes", "ks", "recall": [[...]], "n_chunks", "n_queries", "metric"}``."""
        return {"chunk_sizes": self.chunk_sizes, "ks": self.ks, "recall": self.recall.round(4).tolist(),
                "n_chunks": self.n_chunks, "n_queries": self.n_queries, "metric": self.metric,
                "provenance": self.provenance.to_api()}


def recall_by_chunk_size(chunk_sizes=(0,) + CHUNK_SIZES, ks=(1, 3, 5), metric: str = "cosine",
                         progress=None) -> RecallResult:
    """recall@k of ``queries.json`` against the corpus chunked each way (Chroma search, MiniLM vectors).

    ``progress(i, n, label)`` is called before each chunk size when given.
    """
    store = get_store()
    queries = load_queries()
    vectors = store.embed_fn([q["query"] for q in queries])
    table, counts = [], []
    for i, size in enumerate(chunk_sizes):
        if progress:
            progress(i, len(chunk_sizes), f"chunk size {size or 'passage'}")
        hits = store.query_corpus(vectors, max(ks), metric, size or None)
        counts.append(len(store.corpus_chunks(size or None)))
        ranked = [[(h.doc, h.text) for h in per_query] for per_query in hits]
        table.append([recall_at_k(ranked, queries, k) for k in ks])
    return RecallResult(list(chunk_sizes), list(ks), np.array(table), counts, len(queries), metric,
                        measured("queries.json against Chroma collections per chunk size", model="all-minilm-l6-v2"))
