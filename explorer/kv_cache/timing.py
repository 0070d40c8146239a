"""Why the KV cache matters: decode time per token with the cache vs recomputing the whole prefix.

With a cache, a decode step runs one token through the model and attends to the stored keys and
values, so its cost barely grows with position; without one, every step runs the whole sequence again
and grows linearly (its attention quadratically) with position (Pope et al. 2022, "Efficiently Scaling
Transformer Inference", arXiv:2211.05102). :func:`iter_compare` times both on the same greedy tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from explorer.core.engine import Engine, get_engine
from explorer.kv_cache.growth import cap_new_tokens, iter_growth, prompt_ids, timed_forward


@dataclass(frozen=True)
class CacheComparison:
    """Decode timing with and without the KV cache, on the same greedy tokens.

    Attributes:
        positions: position (tokens already in context) of each decode step, shape (n_steps,).
        cached_ms, uncached_ms: wall time per decode step (ms), shape (n_steps,).
        cached_ids, uncached_ids: greedy tokens from each run, shape (n_steps,).
        cached_tokens_per_s, uncached_tokens_per_s: decode steps / total decode time (tokens/s).
    """

    positions: np.ndarray
    cached_ms: np.ndarray
    uncached_ms: np.ndarray
    cached_ids: np.ndarray
    uncached_ids: np.ndarray
    cached_tokens_per_s: float
    uncached_tokens_per_s: float

    @property
    def identical_tokens(self) -> bool:
        """True when both runs chose the same tokens."""
        return bool(np.array_equal(self.cached_ids, self.uncached_ids))


def iter_no_cache(engine: Engine, ids: list[int], max_new_tokens: int) -> Iterator[tuple[int, float, int]]:
    """Greedy decoding without a cache: every step runs the whole sequence again.

    Yields ``(position, ms, token_id)`` for each decode step (position = tokens fed this step); the
    first forward pass (the prefill) is not yielded, as it is the same work with or without a cache.
    """
    seq = list(ids)
    eos = engine.eos_token_ids()
    for step in range(max_new_tokens + 1):
        logits, ms = timed_forward(engine, seq, None)
        token = int(logits.argmax())
        if step:
            yield len(seq), ms, token
        if token in eos:
            break
        seq.append(token)


def iter_compare(engine: Engine, ids: list[int], max_new_tokens: int
                 ) -> Iterator[tuple[str, int, int] | CacheComparison]:
    """Time greedy decode steps with the cache (one new token per pass) and without (whole prefix per pass).

    Yields ``("cached" | "uncached", step, total)`` after each timed step (progress), then the
    :class:`CacheComparison` as the last item. ``max_new_tokens`` must already be capped.
    """
    cached = []
    for step in iter_growth(engine, ids, max_new_tokens):
        if step.phase == "decode":
            cached.append((step.tokens, step.ms, step.token_id))
            yield "cached", len(cached), max_new_tokens
    uncached = []
    for item in iter_no_cache(engine, ids, max_new_tokens):
        uncached.append(item)
        yield "uncached", len(uncached), max_new_tokens
    n = min(len(cached), len(uncached))
    c_ms = np.array([c[1] for c in cached[:n]])
    u_ms = np.array([u[1] for u in uncached[:n]])
    # Both runs' decode step k has prompt + k tokens in context (cached: in the cache; uncached: fed again).
    yield CacheComparison(
        positions=np.array([u[0] for u in uncached[:n]], dtype=np.int64), cached_ms=c_ms, uncached_ms=u_ms,
        cached_ids=np.array([c[2] for c in cached[:n]], dtype=np.int64),
        uncached_ids=np.array([u[2] for u in uncached[:n]], dtype=np.int64),
        cached_tokens_per_s=float(n / (c_ms.sum() / 1000.0)) if n else 0.0,
        uncached_tokens_per_s=float(n / (u_ms.sum() / 1000.0)) if n else 0.0)


def compare_no_cache(text: str, model: str | None = None, max_new_tokens: int = 8, engine: Engine | None = None,
                     ids: list[int] | None = None) -> CacheComparison:
    """Run :func:`iter_compare` to the end and return its :class:`CacheComparison`.

    Args:
        ids: token ids to start from (default: the chat-template ids of ``text``); the bench passes long ones.
    Raises:
        ValueError: as :func:`run`.
    """
    engine = engine or get_engine(model)
    new_tokens, _ = cap_new_tokens(max_new_tokens)
    ids = list(ids) if ids is not None else prompt_ids(engine, text)
    *_, result = iter_compare(engine, ids, new_tokens)
    return result
