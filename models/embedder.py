"""The shared sentence embedder: all-MiniLM-L6-v2 through sentence-transformers, loaded once.

Used to compare short texts by meaning (for example clustering sampled answers for semantic entropy).
Embeddings are L2-normalised, so a dot product is the cosine similarity (Reimers & Gurevych 2019,
Sentence-BERT).
"""
from __future__ import annotations

import threading

from models.registry import minilm_path

_LOCK = threading.Lock()
_EMBEDDER = None


def get_embedder():
    """Return the shared ``sentence_transformers.SentenceTransformer`` (CPU), loading it on first use.

    Raises:
        FileNotFoundError: the package shipping the MiniLM weights is not installed.
    """
    global _EMBEDDER
    with _LOCK:
        if _EMBEDDER is None:
            from sentence_transformers import SentenceTransformer

            _EMBEDDER = SentenceTransformer(str(minilm_path()), device="cpu")
        return _EMBEDDER


def embed(texts: list[str]):
    """Unit-length embeddings of ``texts``.

    Returns:
        ``np.ndarray`` of shape ``(len(texts), 384)``, float32, rows of L2 norm 1.
    """
    import numpy as np

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = get_embedder()
    with _LOCK:
        vectors = model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
