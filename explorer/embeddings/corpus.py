"""The labelled files of the Embeddings & RAG lens and how the corpus is cut into chunks.

Files (all under ``data/embeddings/``, written for this project; ``build_corpus.py`` says how):
- ``pairs.tsv``: sentence pairs labelled ``paraphrase`` / ``related`` / ``unrelated``.
- ``corpus.json``: short passages, most about invented places (so the model cannot know them), grouped by ``doc``.
- ``queries.json``: search queries, each with the ``doc`` and the ``answer`` text a relevant chunk must contain.
- ``questions.json``: RAG questions with accepted answers, including unanswerable ones (``answerable: false``).

Chunking reads the corpus as one stream of words (as if it were one long handbook) and cuts it into
consecutive windows of ``chunk_size`` words (no overlap), the fixed-size strategy of LangChain's
``CharacterTextSplitter`` counted in words; a chunk may span documents (its ``doc`` lists them, ``|``-joined).
``None`` keeps the passages as written.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from explorer.core.config import data_path

CHUNK_SIZES: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
DOC_SEPARATOR = "|"
PAIR_LABELS = ("paraphrase", "related", "unrelated")


@dataclass(frozen=True)
class Chunk:
    """One searchable piece of text.

    Attributes:
        id: unique id (``"<doc>-<i>"``); doc: the document it was cut from; text: its words.
    """

    id: str
    doc: str
    text: str


@functools.lru_cache(maxsize=None)
def _load(name: str):
    with open(data_path("embeddings", name), encoding="utf-8") as handle:
        return json.load(handle)


def load_passages() -> list[dict]:
    """Rows ``{"id", "doc", "text", "invented"}`` of ``corpus.json``."""
    return list(_load("corpus.json")["passages"])


def load_queries() -> list[dict]:
    """Rows ``{"query", "doc", "answer"}`` of ``queries.json``."""
    return list(_load("queries.json")["queries"])


def load_questions() -> list[dict]:
    """Rows ``{"question", "answers", "answerable", "source"}`` of ``questions.json`` (source: invented/real/unanswerable)."""
    return list(_load("questions.json")["questions"])


@functools.lru_cache(maxsize=None)
def load_pairs() -> tuple[tuple[str, str, str], ...]:
    """``(label, sentence_a, sentence_b)`` rows of ``pairs.tsv`` (comment lines skipped)."""
    rows = []
    with open(data_path("embeddings", "pairs.tsv"), encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            label, a, b = line.rstrip("\n").split("\t")
            if label not in PAIR_LABELS:
                raise ValueError(f"pairs.tsv: unknown label {label!r}")
            rows.append((label, a, b))
    return tuple(rows)


def chunk_passages(passages: list[dict], chunk_size: int | None) -> list[Chunk]:
    """Cut ``passages`` (rows with ``doc`` and ``text``, in order) into consecutive chunks of ``chunk_size`` words.

    ``None`` (or 0) keeps one chunk per passage. The last chunk may be shorter.
    Raises:
        ValueError: ``chunk_size`` below 1.
    """
    if not chunk_size:
        return [Chunk(str(p.get("id", f"p{i}")), str(p.get("doc", f"p{i}")), p["text"]) for i, p in enumerate(passages)]
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1 word (got {chunk_size}).")
    words = [(w, str(p["doc"])) for p in passages for w in p["text"].split()]
    chunks = []
    for i in range(0, len(words), chunk_size):
        window = words[i:i + chunk_size]
        docs = list(dict.fromkeys(d for _, d in window))
        chunks.append(Chunk(f"c{chunk_size}-{i // chunk_size}", DOC_SEPARATOR.join(docs), " ".join(w for w, _ in window)))
    return chunks


def is_relevant(chunk_doc: str, chunk_text: str, query: dict) -> bool:
    """A chunk answers ``query`` when it covers the query's document and contains its answer (case-insensitive)."""
    return query["doc"] in chunk_doc.split(DOC_SEPARATOR) and query["answer"].lower() in chunk_text.lower()


def recall_at_k(ranked: list[list[tuple[str, str]]], queries: list[dict], k: int) -> float:
    """Share of queries with a relevant chunk among their first ``k`` hits.

    Args:
        ranked: per query, the hits as ``(doc, text)`` best first.
    Returns:
        recall@k in [0, 1] (Manning et al., Introduction to Information Retrieval, ch. 8).
    """
    if not queries:
        raise ValueError("recall@k needs at least one query.")
    found = sum(any(is_relevant(d, t, q) for d, t in hits[:k]) for hits, q in zip(ranked, queries))
    return found / len(queries)
