"""Prompt (prefix) caching: reuse the KV cache of a long shared prefix instead of recomputing it.

A long system prompt shared by many requests produces the same keys and values every time, so a
server can keep a copy of that prefix's cache and only run the new tokens (the idea behind prompt
caching in serving stacks; Gim et al. 2024, "Prompt Cache: Modular Attention Reuse for Low-Latency
Inference", arXiv:2311.04934; SGLang's RadixAttention, Zheng et al. 2024, arXiv:2312.07104).

:func:`run` answers the same question twice. The first answer computes the prefix, saves a copy of
its cache, and runs the question's tokens; the second starts from a fresh copy of the saved cache
and runs only the question's tokens. It reports the time to first token (forward passes + argmax,
ms) of each and the largest difference between their next-token logits.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from explorer.core.engine import Engine, get_engine
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int

DEFAULT_SYSTEM_PROMPT = (
    "You are the documentation assistant of a small open-source project that builds a web application "
    "for exploring the internals of large language models. The application has tabs for tokens, attention, "
    "the key-value cache, decoding strategies, quantisation, low-rank adaptation and hallucination checks. "
    "Every figure in it is measured on a real model running on the user's machine, never drawn by hand. "
    "When you answer, follow these rules. First, answer in at most three sentences unless the user asks "
    "for more detail. Second, name the tab where the user can see the effect for themselves, and the "
    "control they should change. Third, when a number depends on the model, say which model and which "
    "data type it was measured with, because the sizes of caches and weights depend on both. Fourth, if "
    "the user asks about something the application does not show, say so plainly and suggest the closest "
    "thing it does show. Fifth, never invent a command line option, an environment variable or a file "
    "name: if you are not sure one exists, say that you are not sure. Sixth, prefer plain words to "
    "jargon, and when a technical term is needed, such as grouped-query attention, paged attention or "
    "perplexity, explain it in one short clause the first time it appears. Seventh, keep a friendly and "
    "patient tone: many users are students seeing these ideas for the first time, and some are teachers "
    "preparing a lesson who will show the application to a room full of people."
)


@dataclass(frozen=True)
class PrefixCacheResult:
    """Time to first token with and without reusing a saved prefix cache.

    Attributes:
        prefix_tokens: tokens in the shared prefix (system prompt part of the chat template).
        total_tokens: tokens in the whole prompt (prefix + question).
        full_ms: time to first token computing the prefix and the question, per repeat (ms), shape (repeats,).
        reuse_ms: time to first token copying the saved prefix cache and running the rest (ms), shape (repeats,).
        copy_ms: of ``reuse_ms``, the time spent copying the saved cache (ms), shape (repeats,).
        max_abs_logit_diff: largest |logit_computed - logit_reuse| over the vocabulary (first repeat).
        one_pass_max_abs_diff: largest |logit_one_pass - logit_reuse|, where one_pass runs the whole prompt in
            a single forward pass (a different float summation order, so not bit-identical).
        same_next_token: both answers pick the same next token.
        next_token: that token's text (from the full computation).
        saved_cache_bytes: bytes of the saved prefix cache.
        provenance: measured on the model.
    """

    prefix_tokens: int
    total_tokens: int
    full_ms: np.ndarray
    reuse_ms: np.ndarray
    copy_ms: np.ndarray
    max_abs_logit_diff: float
    one_pass_max_abs_diff: float
    same_next_token: bool
    next_token: str
    saved_cache_bytes: int
    provenance: Provenance | None = None

    @property
    def speedup(self) -> float:
        """Median full time / median reuse time."""
        return float(np.median(self.full_ms) / np.median(self.reuse_ms))


def copy_cache(cache):
    """An independent copy of a ``transformers`` cache (``copy.deepcopy``, transformers' documented recipe for
    re-using a prompt cache: "Re-use Cache to continue generation"); the saved cache stays intact."""
    return copy.deepcopy(cache)


def split_prefix(engine: Engine, question: str, system: str) -> tuple[list[int], int]:
    """Token ids of the chat prompt and the length of its system-prompt prefix.

    The prefix is the longest common start of the prompt and the template rendered with the system
    message alone, so it is exactly what another question with the same system prompt would share.

    Raises:
        ValueError: empty question or system prompt, a prompt that is too long, or a model without a
            chat template (no system prompt to share).
    """
    if not (question or "").strip():
        raise ValueError("The prompt is empty: type a question in the prompt bar.")
    if not (system or "").strip():
        raise ValueError("The shared prefix (system prompt) is empty: type one to cache.")
    if not getattr(engine.tokenizer, "chat_template", None):
        raise ValueError(f"{engine.name} has no chat template, so there is no system prompt to share.")
    ids = engine.chat_ids(question, system=system)
    alone = engine.tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=True,
                                                 add_generation_prompt=False, return_dict=False)
    alone = list(alone["input_ids"] if hasattr(alone, "keys") else alone)
    n = 0
    while n < min(len(ids), len(alone)) and ids[n] == alone[n]:
        n += 1
    if n == 0 or n >= len(ids):
        raise ValueError("Could not find a shared prefix in the chat prompt.")
    return ids, n


def _timed_next_logits(engine: Engine, ids, cache) -> tuple:
    """One locked forward pass (``Engine.forward``) continuing ``cache``; returns ``(last-position logits
    float32 (vocab,), ms)`` with the device synchronised and the argmax taken, so the span ends at the first token."""
    engine.synchronize()
    start = time.perf_counter()
    logits = engine.forward(ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[0, -1].float()
    int(logits.argmax())
    engine.synchronize()
    return logits, (time.perf_counter() - start) * 1000.0


def run(question: str, system: str = DEFAULT_SYSTEM_PROMPT, model: str | None = None, repeats: int = 1,
        engine: Engine | None = None) -> PrefixCacheResult:
    """Answer ``question`` after ``system`` twice: computing the prefix, then reusing its saved cache.

    The first answer prefills the prefix into a fresh cache, saves a copy (``copy.deepcopy``, not timed),
    and runs the question's tokens; the second copies the saved cache and runs only the question's tokens.
    Their next-token logits are compared, and also against one single forward pass over the whole prompt
    (which differs only by float summation order). Each pass holds the model's lock for that pass only.

    Args:
        repeats: timing repeats of both answers (1-10); the logits compared come from the first.
    Raises:
        ValueError: see :func:`split_prefix`; ``repeats`` out of range.
    """
    from transformers import DynamicCache

    from explorer.kv_cache.growth import measure_cache_bytes

    repeats = check_int(repeats, "Repeats", minimum=1)
    if repeats > 10:
        raise ValueError(f"Repeats must be between 1 and 10, got {repeats}.")
    engine = engine or get_engine(model)
    ids, n_prefix = split_prefix(engine, question, system)
    config = engine.config
    prefix_ids, rest_ids = ids[:n_prefix], ids[n_prefix:]
    full_ms, reuse_ms, copy_ms = [], [], []
    saved = first = None
    for _ in range(repeats):
        cache = DynamicCache(config=config)
        engine.synchronize()
        start = time.perf_counter()
        engine.forward(prefix_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        engine.synchronize()
        prefill_ms = (time.perf_counter() - start) * 1000.0
        if saved is None:
            saved = copy_cache(cache)
        logits_full, rest_ms = _timed_next_logits(engine, rest_ids, cache)
        full_ms.append(prefill_ms + rest_ms)
        start = time.perf_counter()
        working = copy_cache(saved)
        engine.synchronize()
        copied = (time.perf_counter() - start) * 1000.0
        logits_reuse, rest_ms = _timed_next_logits(engine, rest_ids, working)
        reuse_ms.append(copied + rest_ms)
        copy_ms.append(copied)
        if first is None:
            first = (logits_full.clone(), logits_reuse.clone())
    one_pass, _ = _timed_next_logits(engine, ids, DynamicCache(config=config))
    logits_full, logits_reuse = first
    token = int(logits_full.argmax())
    return PrefixCacheResult(
        prefix_tokens=n_prefix, total_tokens=len(ids), full_ms=np.array(full_ms), reuse_ms=np.array(reuse_ms),
        copy_ms=np.array(copy_ms), max_abs_logit_diff=float((logits_full - logits_reuse).abs().max()),
        one_pass_max_abs_diff=float((one_pass - logits_reuse).abs().max()),
        same_next_token=token == int(logits_reuse.argmax()), next_token=engine.tokenizer.decode([token]),
        saved_cache_bytes=measure_cache_bytes(saved),
        provenance=measured("Engine.forward with a saved DynamicCache copied by copy.deepcopy, synchronised ms",
                            model=engine.name))
