"""Greedy generation for many users at once: batched across requests when ``Limits.batching`` is 1.

This is the path for adapter-free greedy text (the ``/generate`` API, the load bench): no per-step records,
so transformers' continuous batching can run it (:mod:`explorer.serving.batching`). With ``batching=0`` the
same request runs alone on ``Engine.steps``; both give the same tokens (tests check it token for token).
Seeded sampling, adapters and step records stay on ``Engine.steps`` (the Decoding and LoRA lenses).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from explorer.core.config import get_limits
from explorer.core.provenance import Provenance, measured


@dataclass(frozen=True)
class GenerateResult:
    """A greedy continuation: ``token_ids`` generated (the end-of-sequence token included when reached),
    ``text`` (special tokens skipped), ``prompt_tokens``, ``batched`` (ran through continuous batching),
    ``seconds`` wall time, ``notices`` (caps applied), ``provenance``."""

    text: str
    token_ids: tuple[int, ...]
    prompt_tokens: int
    batched: bool
    seconds: float
    notices: tuple[str, ...]
    provenance: Provenance

    def to_api(self) -> dict:
        """``{"text", "token_ids", "prompt_tokens", "batched", "seconds", "notices", "provenance"}``."""
        return {"text": self.text, "token_ids": list(self.token_ids), "prompt_tokens": self.prompt_tokens,
                "batched": self.batched, "seconds": self.seconds, "notices": list(self.notices),
                "provenance": self.provenance.to_api()}


def generate(text: str, model: str | None = None, max_new_tokens: int = 32, engine=None,
             batching: bool | None = None) -> GenerateResult:
    """Greedy continuation of ``text`` (wrapped in the chat template) on the shared model.

    Args:
        max_new_tokens: tokens to generate; above ``Limits.max_new_tokens`` it is capped with a notice.
        batching: ``None`` follows ``Limits.batching``.
    Raises:
        ValueError: empty text, ``max_new_tokens`` below 1 or not a number, an encoder model, a too long prompt.
    """
    from explorer.core.engine import get_engine

    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string.")
    try:
        n = int(max_new_tokens)
    except (TypeError, ValueError):
        raise ValueError(f"max_new_tokens must be a whole number (got {max_new_tokens!r}).") from None
    if n < 1:
        raise ValueError(f"max_new_tokens must be at least 1 (got {n}).")
    limits = get_limits()
    notices = []
    if n > limits.max_new_tokens:
        notices.append(f"max_new_tokens {n:,} is above the cap; using {limits.max_new_tokens:,}.")
        n = limits.max_new_tokens
    engine = engine or get_engine(model)
    if not engine.is_causal:
        raise ValueError(f"{engine.name} is an encoder and cannot generate text; pick a causal language model.")
    ids = engine.chat_ids(text)
    batched = bool(limits.batching) if batching is None else bool(batching)
    start = time.perf_counter()
    if batched:
        from explorer.serving.batching import batcher_for

        tokens = batcher_for(engine).generate([ids], n)[0]
    else:
        tokens = list(engine.greedy_continuation(ids, n).tokens)
    seconds = time.perf_counter() - start
    how = ("transformers continuous batching (paged|sdpa shadow)" if batched
           else "Engine.greedy_continuation, one sequence")
    return GenerateResult(engine.tokenizer.decode(tokens, skip_special_tokens=True), tuple(int(t) for t in tokens),
                          len(ids), batched, seconds, tuple(notices), measured(f"greedy generation, {how}", engine.name))
