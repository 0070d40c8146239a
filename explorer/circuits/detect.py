"""The head detector on a model: one eager-attention pass over a repeated random sequence, every head scored.

``run_heads(model, n=50)`` builds the detector sequence (:func:`explorer.circuits.heads.repeated_random_tokens`:
the first token, ``n`` random tokens, the same ``n`` again), captures every layer × head's attention in one
forward pass (``explorer.attention.capture``: eager attention under the model's lock, restored after it) and
scores the three kinds of head (:mod:`explorer.circuits.heads`). ``/heads`` returns one kind.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from explorer.circuits.heads import KINDS, check_kind, head_scores, repeated_random_tokens, top_heads
from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int, require_causal

DEFAULT_N = 50


@dataclass(frozen=True)
class HeadsResult:
    """Every head's detector scores on one repeated random sequence.

    Attributes:
        model: model name.
        scores: kind -> ``np.ndarray`` ``(num_layers, num_heads)``, float64 in [0, 1] (see :mod:`heads`).
        token_ids: the detector sequence, ``(2 * n + 1,)``.
        n: random tokens per half.
        seed: the private generator's seed.
        kv_head_of_head: ``(num_heads,)`` int, the key/value head each query head reads (for grouping).
        notices: caps applied.
        provenance: measured on the model.
    """

    model: str
    scores: dict[str, np.ndarray]
    token_ids: tuple[int, ...]
    n: int
    seed: int
    kv_head_of_head: np.ndarray
    notices: tuple[str, ...] = ()
    provenance: Provenance | None = field(default=None)

    def to_api(self, kind: str = "induction", top: int = 10, decimals: int = 5) -> dict:
        """The ``/heads`` JSON for one ``kind`` (see :func:`heads_to_api`).

        Raises:
            ValueError: unknown ``kind``.
        """
        return heads_to_api(self, kind, top, decimals)

    @property
    def sequence_length(self) -> int:
        """Tokens in the detector sequence (``2 n + 1``)."""
        return len(self.token_ids)


def detector_ids(engine: Engine, n: int, seed: int = 0) -> np.ndarray:
    """The detector sequence for ``engine``'s tokenizer: its BOS (else EOS) id, then ``n`` random ids twice.

    Special ids are never drawn. Returns ``(2 n + 1,)`` int64 (see :func:`repeated_random_tokens`).
    """
    tokenizer = engine.tokenizer
    first = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    vocab = min(len(tokenizer), int(engine.config.vocab_size))
    return repeated_random_tokens(n, vocab, int(first or 0), seed=seed, exclude=set(tokenizer.all_special_ids))


def run_heads(model: str | None = None, n: int = DEFAULT_N, seed: int = 0, engine: Engine | None = None,
              attn: np.ndarray | None = None) -> HeadsResult:
    """Score every head of ``model`` as previous-token, duplicate-token and induction head.

    Args:
        model: model name (default the embedded SmolLM2); ignored when ``engine`` is given.
        n: random tokens per half (2 .. ``Limits.max_detector_tokens``; above the cap it is capped, with a notice).
        seed: seed of the private generator that draws the tokens.
        engine: an explicit engine (tests pass tiny models).
        attn: precomputed attention ``(num_layers, num_heads, 2n+1, 2n+1)`` for the same sequence (tests).
    Returns:
        :class:`HeadsResult`.
    Raises:
        ValueError: an encoder model; ``n`` below 2 or not an integer.
    """
    from explorer.attention.capture import capture, kv_head_mapping

    engine = engine or get_engine(model)
    require_causal(engine, "The head detector")
    notices: list[str] = []
    n = check_int(n, "n", minimum=2, cap=get_limits().max_detector_tokens, notices=notices)
    ids = detector_ids(engine, n, seed)
    if attn is None:
        attn, _ = capture(engine, ids.tolist(), last_logits_only=True)
    scores = {kind: head_scores(attn, ids, kind) for kind in KINDS}
    return HeadsResult(model=engine.name, scores=scores, token_ids=tuple(int(i) for i in ids), n=n, seed=int(seed),
                       kv_head_of_head=kv_head_mapping(engine.config), notices=tuple(notices),
                       provenance=measured(f"head detector: eager attention on the first token + {n} random tokens "
                                           f"repeated once (seed {seed})", model=engine.name))


def heads_to_api(result: HeadsResult, kind: str, top: int = 10, decimals: int = 5) -> dict:
    """The ``/heads`` JSON for one ``kind``.

    Returns:
        ``{"scores": [[...]] (num_layers × num_heads), "kind", "sequence_length", "n", "top": [{"layer", "head",
        "score"}] (highest first), "kv_head_of_head", "notices", "model", "provenance"}``.
    Raises:
        ValueError: unknown ``kind``.
    """
    check_kind(kind)
    scores = result.scores[kind]
    return {"scores": np.round(scores, decimals).tolist(), "kind": kind, "sequence_length": result.sequence_length,
            "n": result.n, "top": [dict(t, score=round(t["score"], decimals)) for t in top_heads(scores, top)],
            "kv_head_of_head": [int(k) for k in result.kv_head_of_head], "notices": list(result.notices),
            "model": result.model, "provenance": result.provenance.to_api() if result.provenance else None}
