"""Token embeddings: the real embedding matrix of a model, its share of the parameters, whether the output
layer reuses it (weight tying, Press & Wolf 2017), nearest tokens by cosine and a 2-D PCA map.

Tying is checked on the weights themselves: the input embedding and the output projection are tied when they
are the same storage (``data_ptr`` equal and same shape), not merely equal values or ``tie_word_embeddings``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int, check_text

MAX_MAP_TOKENS = 60
MAX_NEIGHBOURS = 50
_NORMED: dict = {}
_NORMED_LOCK = threading.Lock()


@dataclass(frozen=True)
class EmbeddingFacts:
    """The embedding matrix of one model.

    Attributes:
        model: model name; vocab_size, hidden_size: the matrix shape ``(vocab, hidden)``;
        embedding_params: ``vocab x hidden``; total_params: unique parameters of the model (tied ones once);
        share: ``embedding_params / total_params`` in [0, 1]; tied: True when the output layer IS the embedding
        (same storage); config_tied: the config's ``tie_word_embeddings``; output_params: parameters of a separate
        output layer (0 when tied or absent); provenance.
    """

    model: str
    vocab_size: int
    hidden_size: int
    embedding_params: int
    total_params: int
    share: float
    tied: bool
    config_tied: bool
    output_params: int
    provenance: Provenance

    def to_api(self) -> dict:
        """JSON form of every field."""
        out = {k: getattr(self, k) for k in ("model", "vocab_size", "hidden_size", "embedding_params", "total_params",
                                            "share", "tied", "config_tied", "output_params")}
        out["provenance"] = self.provenance.to_api()
        return out


def embedding_facts(engine) -> EmbeddingFacts:
    """Size, share and tying of ``engine``'s input embedding (read from the loaded weights, no forward pass)."""
    model = engine.model
    emb = model.get_input_embeddings().weight
    out_layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    out_weight = getattr(out_layer, "weight", None)
    tied = bool(out_weight is not None and out_weight.data_ptr() == emb.data_ptr() and out_weight.shape == emb.shape)
    total = sum(p.numel() for p in model.parameters())  # parameters() yields a tied tensor once
    output_params = 0 if (tied or out_weight is None) else int(out_weight.numel())
    config_tied = bool(getattr(engine.config, "tie_word_embeddings", False))
    return EmbeddingFacts(engine.name, int(emb.shape[0]), int(emb.shape[1]), int(emb.numel()), int(total),
                          float(emb.numel() / total), tied, config_tied, output_params,
                          measured("model.get_input_embeddings() / get_output_embeddings() weights", engine.name))


def normalised_embeddings(engine) -> np.ndarray:
    """The input embedding matrix as float32 rows of unit L2 norm, ``(vocab, hidden)`` (cached per model object)."""
    key = id(engine.model)
    with _NORMED_LOCK:
        if key not in _NORMED:
            with engine.session():
                weights = engine.model.get_input_embeddings().weight.detach().float().cpu().numpy()
            norms = np.linalg.norm(weights, axis=1, keepdims=True)
            _NORMED[key] = weights / np.maximum(norms, 1e-12)
        return _NORMED[key]


def token_id(engine, token: str, notices: list[str] | None = None) -> int:
    """The id of ``token``; a text that is several tokens uses its first one (with a notice).

    Raises:
        ValueError: empty text.
    """
    token = check_text(token, "token")
    ids = engine.tokenizer(token, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"The token {token!r} produced no token ids.")
    if len(ids) > 1 and notices is not None:
        pieces = [engine.tokenizer.decode([i]) for i in ids]
        notices.append(f"{token!r} is {len(ids)} tokens ({' | '.join(pieces)}); using the first, {pieces[0]!r}.")
    return int(ids[0])


@dataclass(frozen=True)
class Neighbours:
    """Nearest tokens of one token by cosine similarity of input embeddings.

    Attributes:
        token: the query token's text; token_id; neighbours: list of ``(text, id, cosine)`` best first (itself excluded);
        notices; provenance.
    """

    token: str
    token_id: int
    neighbours: list
    notices: list
    provenance: Provenance

    def to_api(self) -> dict:
        """``{"token", "token_id", "neighbours": [{"token", "id", "cosine"}], "notices"}``."""
        return {"token": self.token, "token_id": self.token_id, "notices": self.notices,
                "neighbours": [{"token": t, "id": i, "cosine": round(c, 6)} for t, i, c in self.neighbours]}


def nearest_tokens(engine, token: str, k: int = 10) -> Neighbours:
    """The ``k`` tokens whose input embeddings have the highest cosine similarity to ``token``'s.

    Raises:
        ValueError: empty token, k below 1 (k above :data:`MAX_NEIGHBOURS` is capped with a notice).
    """
    notices: list[str] = []
    k = check_int(k, "k", minimum=1, cap=MAX_NEIGHBOURS, notices=notices)
    tid = token_id(engine, token, notices)
    normed = normalised_embeddings(engine)
    sims = normed @ normed[tid]
    sims[tid] = -np.inf
    top = np.argpartition(-sims, k)[:k]
    top = top[np.argsort(-sims[top])]
    return Neighbours(engine.tokenizer.decode([tid]), tid,
                      [(engine.tokenizer.decode([int(i)]), int(i), float(sims[i])) for i in top], notices,
                      measured("cosine of input-embedding rows", engine.name))


@dataclass(frozen=True)
class TokenMap:
    """A 2-D PCA map of chosen tokens' input embeddings.

    Attributes:
        tokens: list of n token texts; ids: list of n ids; coords: ``np.ndarray`` (n, 2);
        explained: ``np.ndarray`` (2,) explained-variance ratio of the two components; notices; provenance.
    """

    tokens: list
    ids: list
    coords: np.ndarray
    explained: np.ndarray
    notices: list
    provenance: Provenance

    def to_api(self) -> dict:
        """``{"tokens", "ids", "coords": [[x, y]], "explained_variance_ratio", "notices"}``."""
        return {"tokens": self.tokens, "ids": self.ids, "coords": self.coords.round(5).tolist(),
                "explained_variance_ratio": self.explained.round(5).tolist(), "notices": self.notices}


def token_map(engine, tokens: list[str]) -> TokenMap:
    """Project the chosen words' (unit-normalised) input embeddings to 2-D with scikit-learn's PCA.

    Each word is looked up with a leading space, as it appears in the middle of a sentence (`` queen`` is one
    SmolLM2 token, ``queen`` two); a word that is several tokens uses its first (with a notice).

    Raises:
        ValueError: fewer than 3 distinct tokens (more than :data:`MAX_MAP_TOKENS` are cut with a notice).
    """
    from sklearn.decomposition import PCA

    notices: list[str] = []
    words = [" " + t.strip() for t in (tokens or []) if isinstance(t, str) and t.strip()]  # as mid-sentence words
    if len(words) > MAX_MAP_TOKENS:
        notices.append(f"Only the first {MAX_MAP_TOKENS} of {len(words)} tokens are mapped.")
        words = words[:MAX_MAP_TOKENS]
    ids = list(dict.fromkeys(token_id(engine, w, notices) for w in words))
    if len(ids) < 3:
        raise ValueError("Give at least 3 different tokens to map (for example: king, queen, man, woman, Paris).")
    vectors = normalised_embeddings(engine)[ids]
    pca = PCA(n_components=2, random_state=0)
    coords = pca.fit_transform(vectors)
    return TokenMap([engine.tokenizer.decode([i]) for i in ids], ids, coords, pca.explained_variance_ratio_, notices,
                    measured("scikit-learn PCA of input-embedding rows", engine.name))
