"""Head detectors: previous-token, duplicate-token and induction scores from attention patterns and tokens.

Pure functions of an attention tensor and the token ids it was computed on (numpy only, no model), so any
lens or training run that has attention patterns can score its heads.

Definitions (Olsson et al. 2022, "In-context Learning and Induction Heads"; the detection patterns follow
TransformerLens's ``head_detector``: ``get_previous_token_head_detection_pattern``,
``get_duplicate_token_head_detection_pattern``, ``get_induction_head_detection_pattern``):

- a *detection pattern* ``P`` is a 0/1 matrix ``(q_len, k_len)``, lower triangular, marking the keys a head of
  that kind attends to from each query:
  previous-token ``P[q, q-1] = 1``; duplicate-token ``P[q, k] = 1`` when ``k < q`` and ``token[k] == token[q]``;
  induction = the duplicate-token pattern shifted one key to the right (``P[q, k+1] = 1`` for those ``k``);
- a head's *score* is the mean, over the query positions that have a target (at least one 1 in their row of
  ``P``), of the attention weight the head puts on the targets: ``mean_q Σ_k A[q, k] · P[q, k]``.

On the detector sequence (the first token, then ``n`` distinct random tokens, then the same ``n`` again) the
duplicate and induction targets exist exactly for the repeated half, so the induction score is the mean over the
repeated half of the attention on "the position right after the query token's earlier occurrence": 1 for a
perfect induction head, about ``1 / position`` for uniform attention. TransformerLens's ``"mul"`` similarity
divides the same sum by every row instead (``Σ A·P / Σ A``); on that sequence it equals our score times the
share of rows that have a target.
"""
from __future__ import annotations

import numpy as np

KINDS: tuple[str, ...] = ("previous_token", "duplicate_token", "induction")


def check_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`KINDS`.

    Raises:
        ValueError: an unknown kind (the message names ``kind`` and lists the known ones).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)} (got {kind!r}).")
    return kind


def detection_pattern(tokens, kind: str) -> np.ndarray:
    """The 0/1 detection pattern of a head ``kind`` on ``tokens``.

    Args:
        tokens: token ids, shape ``(seq_len,)``.
        kind: one of :data:`KINDS`.
    Returns:
        ``np.ndarray`` ``(seq_len, seq_len)``, float32, 0 or 1, lower triangular (strictly below the diagonal
        except induction, whose target may be the query itself when the token repeats back to back).
    Raises:
        ValueError: unknown ``kind``; ``tokens`` not one-dimensional or empty.
    """
    check_kind(kind)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or tokens.size == 0:
        raise ValueError(f"tokens must be a non-empty 1-D sequence of ids (got shape {tokens.shape}).")
    n = tokens.size
    if kind == "previous_token":
        return np.eye(n, k=-1, dtype=np.float32)
    duplicate = np.tril((tokens[:, None] == tokens[None, :]).astype(np.float32), k=-1)
    if kind == "duplicate_token":
        return duplicate
    induction = np.zeros_like(duplicate)
    induction[:, 1:] = duplicate[:, :-1]
    return np.tril(induction)  # the diagonal stays (a token right after its own repeat), as in TransformerLens


def head_scores(attn, tokens, kind: str, pattern: np.ndarray | None = None) -> np.ndarray:
    """Score every head: mean over query positions with a target of the attention on the targets.

    Args:
        attn: attention probabilities, ``(num_layers, num_heads, q_len, k_len)`` (or ``(num_heads, q_len, k_len)``
            or ``(q_len, k_len)``), rows summing to 1; ``q_len == k_len == len(tokens)``.
        tokens: the token ids the attention was computed on, ``(seq_len,)``.
        kind: one of :data:`KINDS`.
        pattern: a detection pattern to use instead of :func:`detection_pattern` (``(seq_len, seq_len)``).
    Returns:
        ``np.ndarray`` of ``attn``'s leading shape (``(num_layers, num_heads)`` for a full tensor), float64, in
        [0, 1] for probability rows.
    Raises:
        ValueError: unknown ``kind``; shapes that do not match the tokens; no query position has a target
            (e.g. duplicate-token on a sequence without repeats).
    """
    attn = np.asarray(attn)
    pattern = detection_pattern(tokens, kind) if pattern is None else np.asarray(pattern, dtype=np.float32)
    seq_len = pattern.shape[0]
    if attn.ndim < 2 or attn.shape[-2:] != (seq_len, seq_len):
        raise ValueError(f"attn must end in (q_len, k_len) = ({seq_len}, {seq_len}) to match the tokens "
                         f"(got shape {attn.shape}).")
    rows = pattern.sum(axis=1) > 0
    if not rows.any():
        raise ValueError(f"tokens has no query position with a {kind} target (no repeated token).")
    on_target = (attn.astype(np.float64) * pattern).sum(axis=-1)  # (..., q_len)
    return on_target[..., rows].mean(axis=-1)


def repeated_random_tokens(n: int, vocab_size: int, first_token: int, seed: int = 0,
                           exclude: set[int] | frozenset[int] = frozenset()) -> np.ndarray:
    """The detector sequence: ``first_token``, then ``n`` distinct random ids, then the same ``n`` again.

    Drawn with a private ``np.random.Generator(seed)`` (the global RNG is untouched), without replacement, so a
    token of the repeated half has exactly one earlier occurrence; ``first_token`` and ``exclude`` (special ids)
    are never drawn.

    Args:
        n: random tokens per half (>= 2).
        vocab_size: ids are drawn from ``[0, vocab_size)``.
        first_token: the sequence's first id (the beginning-of-sequence token, when the model has one).
        seed: the generator's seed.
        exclude: ids never drawn.
    Returns:
        ``np.ndarray`` ``(2 * n + 1,)``, int64.
    Raises:
        ValueError: ``n`` below 2, or more than the vocabulary allows.
    """
    n = int(n)
    banned = set(int(i) for i in exclude) | {int(first_token)}
    available = int(vocab_size) - len([i for i in banned if 0 <= i < int(vocab_size)])
    if n < 2 or n > available:
        raise ValueError(f"n must be between 2 and {available} (got {n}).")
    rng = np.random.default_rng(int(seed))
    pool = np.setdiff1d(np.arange(int(vocab_size), dtype=np.int64), np.fromiter(banned, dtype=np.int64))
    half = rng.choice(pool, size=n, replace=False)
    return np.concatenate([[int(first_token)], half, half]).astype(np.int64)


def top_heads(scores: np.ndarray, k: int = 5) -> list[dict]:
    """The ``k`` highest-scoring heads, highest first (ties keep layer-major order).

    Args:
        scores: ``(num_layers, num_heads)``.
        k: how many (capped at the number of heads).
    Returns:
        ``[{"layer": int, "head": int, "score": float}, ...]``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    flat = np.argsort(-scores.ravel(), kind="stable")[: max(0, int(k))]
    return [{"layer": int(i // scores.shape[1]), "head": int(i % scores.shape[1]), "score": float(scores.ravel()[i])}
            for i in flat]
