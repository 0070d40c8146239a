"""Sentence embeddings vs decoder hidden states: which separates paraphrases from unrelated pairs?

MiniLM (all-MiniLM-L6-v2, sentence-transformers, Reimers & Gurevych 2019) is trained for sentence similarity; a
decoder's hidden states are not. For the labelled pairs in ``data/embeddings/pairs.tsv`` we compute the cosine
similarity of each pair from MiniLM and from SmolLM2's hidden states (mean over tokens, or the last token, at a
chosen layer) and measure AUROC (scikit-learn ``roc_auc_score``) of paraphrase (positive) vs unrelated
(negative), with a 95 % percentile bootstrap interval (``scipy.stats.bootstrap``, pairs resampled together).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_text
from explorer.embeddings.corpus import load_pairs

POOLINGS = ("mean", "last")
MAX_TEXTS = 64
MAX_TEXT_CHARS = 2000
N_BOOT = 1000


def check_pooling(pooling) -> str:
    """Return ``pooling`` if it is ``"mean"`` or ``"last"``; raises ``ValueError`` otherwise."""
    if pooling not in POOLINGS:
        raise ValueError(f"Unknown pooling {pooling!r}; choose from {', '.join(POOLINGS)}.")
    return pooling


def check_layer(engine, layer) -> int:
    """``layer`` as an index into ``hidden_states`` (0 = token embeddings, L = last layer); ``None`` -> L.

    Raises:
        ValueError: not an integer or outside ``[0, L]``.
    """
    n_layers = int(engine.config.num_hidden_layers)
    if layer is None:
        return n_layers
    if isinstance(layer, bool) or not isinstance(layer, (int, float)) or float(layer) != int(layer):
        raise ValueError(f"layer must be an integer from 0 to {n_layers} (got {layer!r}).")
    layer = int(layer)
    if not 0 <= layer <= n_layers:
        raise ValueError(f"layer must be from 0 (embeddings) to {n_layers} (last layer) (got {layer}).")
    return layer


def decoder_states(engine, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean-pooled and last-token hidden states of every text at every layer.

    One forward pass per text (``engine.forward(output_hidden_states=True)``), lock held per pass.
    Returns:
        ``(mean, last)``, each ``np.ndarray`` of shape ``(len(texts), num_layers + 1, hidden)``, float32.
    """
    means, lasts = [], []
    for text in texts:
        out = engine.forward(engine.encode(text), output_hidden_states=True)
        states = np.stack([h[0].float().cpu().numpy() for h in out.hidden_states])  # (L+1, n, hidden)
        means.append(states.mean(axis=1))
        lasts.append(states[:, -1])
    return np.stack(means).astype(np.float32), np.stack(lasts).astype(np.float32)


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity of the rows of ``vectors`` (n, d) -> (n, n)."""
    normed = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return normed @ normed.T


@dataclass(frozen=True)
class EmbedResult:
    """Vectors of some texts and their cosine similarities.

    Attributes:
        model; layer (``None`` for MiniLM); pooling; vectors: ``np.ndarray`` (n, d); similarity: (n, n); provenance.
    """

    model: str
    layer: int | None
    pooling: str
    vectors: np.ndarray
    similarity: np.ndarray
    provenance: Provenance

    def to_api(self) -> dict:
        """JSON of ``/embed``: ``{"vectors_dim", "similarity": [[cosine]], "model", "layer", "pooling", "provenance"}``."""
        return {"vectors_dim": int(self.vectors.shape[1]), "similarity": self.similarity.round(6).tolist(),
                "model": self.model, "layer": self.layer, "pooling": self.pooling,
                "provenance": self.provenance.to_api()}


def embed_texts(texts, model: str | None = None, layer: int | None = None, pooling: str = "mean") -> EmbedResult:
    """Embed ``texts`` with MiniLM (its own mean pooling + normalisation) or a decoder's hidden states.

    Args:
        model: ``all-minilm-l6-v2`` or a decoder name (default SmolLM2); layer, pooling: decoders only.
    Raises:
        ValueError: not a list of strings, empty list, a blank or over-long text, too many texts, bad layer/pooling.
    """
    from explorer.core.engine import get_engine
    from models.registry import EMBEDDER, resolve

    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"texts must be a list of strings (got {type(texts).__name__}).")
    if not texts:
        raise ValueError("texts is empty: give at least one text to embed.")
    if len(texts) > MAX_TEXTS:
        raise ValueError(f"Too many texts: {len(texts)} given, at most {MAX_TEXTS}.")
    for t in texts:
        check_text(t, "text")
        if len(t) > MAX_TEXT_CHARS:
            raise ValueError(f"A text is over the cap of {MAX_TEXT_CHARS:,} characters; shorten it.")
    pooling = check_pooling(pooling)
    spec = resolve(model or "smollm2-135m-instruct")
    if spec.name == EMBEDDER:
        from models.embedder import embed

        vectors = embed(list(texts))
        return EmbedResult(spec.name, None, "mean (sentence-transformers)", vectors, cosine_matrix(vectors),
                           measured("sentence-transformers encode, normalised", spec.name))
    engine = get_engine(spec.name)
    layer = check_layer(engine, layer)
    mean, last = decoder_states(engine, list(texts))
    vectors = (mean if pooling == "mean" else last)[:, layer]
    return EmbedResult(engine.name, layer, pooling, vectors, cosine_matrix(vectors),
                       measured(f"engine.forward hidden_states[{layer}], {pooling} pooling", engine.name))


def auroc_interval(labels: np.ndarray, scores: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """AUROC of ``scores`` for binary ``labels`` and its 95 % percentile bootstrap interval.

    Returns:
        ``(auroc, low, high)`` (scikit-learn ``roc_auc_score``; ``scipy.stats.bootstrap``, paired, percentile).
    """
    from scipy.stats import bootstrap
    from sklearn.metrics import roc_auc_score

    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    value = float(roc_auc_score(labels, scores))

    def stat(y, s):
        return roc_auc_score(y, s) if 0 < y.sum() < len(y) else np.nan

    res = bootstrap((labels, scores), stat, paired=True, vectorized=False, n_resamples=n_boot, method="percentile",
                    random_state=np.random.default_rng(seed))
    return value, float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class PairsResult:
    """Similarity of every labelled pair by MiniLM and by the decoder's hidden states at every layer.

    Attributes:
        labels: list of P pair labels; minilm: ``np.ndarray`` (P,) cosine; mean, last: ``np.ndarray`` (L+1, P)
        cosine from mean-pooled / last-token hidden states per layer; auroc: ``{method: (L+1,) or (1,)}``
        paraphrase-vs-unrelated AUROC per layer; model; elapsed_ms; provenance.
    """

    labels: list
    minilm: np.ndarray
    mean: np.ndarray
    last: np.ndarray
    auroc: dict
    model: str
    elapsed_ms: float
    provenance: Provenance

    def scores(self, method: str, layer: int) -> np.ndarray:
        """(P,) similarities of ``method`` (``minilm``, ``mean``, ``last``) at ``layer`` (ignored for MiniLM)."""
        return self.minilm if method == "minilm" else getattr(self, method)[layer]

    def interval(self, method: str, layer: int) -> tuple[float, float, float]:
        """``(auroc, low, high)`` of paraphrase vs unrelated for ``method`` at ``layer``."""
        y, s = self.binary(method, layer)
        return auroc_interval(y, s)

    def binary(self, method: str, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels (1 paraphrase, 0 unrelated) and scores, related pairs left out."""
        keep = np.array([lab != "related" for lab in self.labels])
        y = np.array([lab == "paraphrase" for lab in self.labels], dtype=int)[keep]
        return y, self.scores(method, layer)[keep]

    def to_api(self, layer: int) -> dict:
        """``{"pairs", "layer", "methods": {name: {"auroc", "low", "high", "mean_similarity": {label: value}}}}``."""
        out = {}
        for method in ("minilm", "mean", "last"):
            value, low, high = self.interval(method, layer)
            s = self.scores(method, layer)
            means = {lab: float(np.mean([v for v, l in zip(s, self.labels) if l == lab])) for lab in ("paraphrase", "related", "unrelated")}
            out[method] = {"auroc": value, "low": low, "high": high, "mean_similarity": means}
        return {"pairs": len(self.labels), "layer": layer, "model": self.model, "methods": out,
                "provenance": self.provenance.to_api()}


def compare_pairs(model: str | None = None, progress=None) -> PairsResult:
    """Similarities of every pair in ``pairs.tsv`` by MiniLM and by the decoder at every layer.

    ``progress(i, n, label)`` is called every few sentences when given.
    Raises:
        ValueError: an encoder was given as ``model`` (hidden states need a decoder).
    """
    from sklearn.metrics import roc_auc_score

    from explorer.core.engine import get_engine
    from explorer.core.validation import require_causal
    from models.embedder import embed

    start = time.perf_counter()
    engine = get_engine(model)
    require_causal(engine, "Comparing hidden states")
    pairs = load_pairs()
    sentences = list(dict.fromkeys(s for _, a, b in pairs for s in (a, b)))
    index = {s: i for i, s in enumerate(sentences)}
    a_idx = np.array([index[a] for _, a, _ in pairs])
    b_idx = np.array([index[b] for _, _, b in pairs])
    mini = embed(sentences)
    minilm = np.sum(mini[a_idx] * mini[b_idx], axis=1)
    means, lasts = [], []
    for i in range(0, len(sentences), 16):
        if progress:
            progress(i, len(sentences), "hidden states")
        m, l = decoder_states(engine, sentences[i:i + 16])
        means.append(m)
        lasts.append(l)
    pooled = {"mean": np.concatenate(means), "last": np.concatenate(lasts)}

    def pair_cos(v):  # v: (S, L+1, H) -> (L+1, P)
        a, b = v[a_idx], v[b_idx]
        num = np.sum(a * b, axis=2)
        den = np.linalg.norm(a, axis=2) * np.linalg.norm(b, axis=2)
        return (num / np.maximum(den, 1e-12)).T

    sims = {k: pair_cos(v) for k, v in pooled.items()}
    labels = [lab for lab, _, _ in pairs]
    keep = np.array([lab != "related" for lab in labels])
    y = np.array([lab == "paraphrase" for lab in labels], dtype=int)[keep]
    auroc = {"minilm": np.array([roc_auc_score(y, minilm[keep])])}
    for k, s in sims.items():
        auroc[k] = np.array([roc_auc_score(y, row[keep]) for row in s])
    return PairsResult(labels, minilm, sims["mean"], sims["last"], auroc, engine.name,
                       (time.perf_counter() - start) * 1000,
                       measured("MiniLM encode + engine.forward(output_hidden_states=True) on pairs.tsv", engine.name))
