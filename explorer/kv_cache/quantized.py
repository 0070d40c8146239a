"""Quantised KV cache: bytes and next-token logit drift against the full-precision cache.

Uses ``transformers.QuantizedCache`` with maintained backends only, never a hand-rolled quantiser:
- ``quanto-int4`` / ``quanto-int2``: optimum-quanto group-wise integer quantisation (KIVI-style
  per-channel groups with a full-precision residual window; Liu et al. 2024, "KIVI: A Tuning-Free
  Asymmetric 2bit Quantization for KV Cache", arXiv:2402.02750);
- ``fp8``: transformers' own FP8 (e4m3) cache with one frozen scale per tensor.

:func:`run` prefills the prompt into a ``DynamicCache`` and into each quantised cache, then feeds the
same greedy tokens (chosen by the full-precision run) to all of them, and at every step compares the
next-token logits: largest absolute difference, KL(full || quantised) in nats, and top-1 agreement.
Bytes are read from the cache objects: packed quantised data, scales and shifts, plus the residual
tokens still kept in full precision.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from explorer.core.engine import Engine, get_engine
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int
from explorer.kv_cache.growth import (cache_shape, cap_new_tokens, check_room, measure_cache_bytes, prompt_ids,
                               tensor_bytes)


@dataclass(frozen=True)
class QuantBackend:
    """One quantised-cache configuration: its ``QuantizedCache`` arguments and the package it needs."""

    label: str
    backend: str
    kwargs: dict
    package: str | None
    description: str


BACKENDS: dict[str, QuantBackend] = {
    "quanto-int4": QuantBackend("quanto int4", "quanto", {"nbits": 4, "q_group_size": 64}, "optimum.quanto",
                                "optimum-quanto, 4-bit integers in groups of 64 (at most the head dim), "
                                "each group with a scale and shift"),
    "quanto-int2": QuantBackend("quanto int2", "quanto", {"nbits": 2, "q_group_size": 64}, "optimum.quanto",
                                "optimum-quanto, 2-bit integers in groups of 64 (at most the head dim), "
                                "each group with a scale and shift"),
    "fp8": QuantBackend("fp8 (e4m3)", "fp8", {}, None,
                        "transformers' FP8 cache: 8-bit floats, one scale per tensor frozen at the prefill"),
}


def backend_status() -> dict[str, str | None]:
    """For each backend, ``None`` when it can run here, else the reason it cannot (package missing)."""
    status = {}
    for key, spec in BACKENDS.items():
        missing = spec.package and importlib.util.find_spec(spec.package.split(".")[0]) is None
        if not missing and spec.package:
            missing = importlib.util.find_spec(spec.package) is None
        status[key] = f"{spec.package} is not installed (pip install optimum-quanto)" if missing else None
    return status


@dataclass(frozen=True)
class QuantCacheRun:
    """One backend's result.

    Attributes:
        key: backend key in :data:`BACKENDS`.
        cache_bytes: bytes of the quantised cache after the last step.
        quantized_bytes, residual_bytes: of which packed quantised data (+ scales) and full-precision residual.
        max_abs_diff, kl_nats: per step (prefill first), shape (n_steps,).
        top1_agree: per step, bool, shape (n_steps,).
    """

    key: str
    cache_bytes: int
    quantized_bytes: int
    residual_bytes: int
    max_abs_diff: np.ndarray
    kl_nats: np.ndarray
    top1_agree: np.ndarray


@dataclass(frozen=True)
class QuantCacheResult:
    """Full-precision cache vs quantised caches on the same tokens.

    Attributes:
        tokens: cached tokens after each step, shape (n_steps,).
        reference_bytes: bytes of the full-precision ``DynamicCache`` after the last step.
        formula_bytes: the formula's bytes at the last step (equals ``reference_bytes``).
        residual_length: tokens the integer backends keep in full precision before quantising them.
        runs: one :class:`QuantCacheRun` per backend that ran.
        unavailable: backend key -> reason it could not run.
        provenance: measured on the model.
    """

    tokens: np.ndarray
    reference_bytes: int
    formula_bytes: int
    residual_length: int
    runs: tuple[QuantCacheRun, ...]
    unavailable: dict
    provenance: Provenance | None = None


def _make_cache(engine: Engine, spec: QuantBackend, residual_length: int):
    from transformers import QuantizedCache

    kwargs = dict(spec.kwargs)
    if spec.backend != "fp8":
        kwargs["residual_length"] = residual_length
        # quanto groups the flattened (heads, tokens, head_dim) states: a group must divide the head dim.
        kwargs["q_group_size"] = math.gcd(kwargs["q_group_size"], cache_shape(engine).head_dim)
    return QuantizedCache(backend=spec.backend, config=engine.config, **kwargs)


def _drift(ref, other) -> tuple[float, float, bool]:
    import torch

    ref, other = ref.float(), other.float()
    log_p, log_q = torch.log_softmax(ref, -1), torch.log_softmax(other, -1)
    kl = float((log_p.exp() * (log_p - log_q)).sum())
    return float((ref - other).abs().max()), max(kl, 0.0), bool(ref.argmax() == other.argmax())


def run(text: str, model: str | None = None, max_new_tokens: int = 8, backends: list[str] | None = None,
        residual_length: int = 16, engine: Engine | None = None) -> QuantCacheResult:
    """Compare quantised KV caches with the full-precision one on the same greedy tokens.

    Args:
        backends: keys of :data:`BACKENDS` (default: all); ones that cannot run are listed in ``unavailable``.
        residual_length: full-precision window of the integer backends (tokens, 1-1024).
    Raises:
        ValueError: see :func:`iter_run`.
    """
    return run_to_end(iter_run(text, model, max_new_tokens, backends, residual_length, engine))


def iter_run(text: str, model: str | None = None, max_new_tokens: int = 8, backends: list[str] | None = None,
             residual_length: int = 16, engine: Engine | None = None) -> Iterator[Progress | QuantCacheResult]:
    """:func:`run` step by step (the lens contract): yields a :class:`Progress` per forward pass, then the
    :class:`QuantCacheResult`. The full-precision run goes first through ``Engine.steps`` and chooses the greedy
    tokens; each quantised cache is then stepped through ``Engine.steps`` with those same tokens.

    Raises:
        ValueError: unknown backend, bad residual length, or the prompt errors of ``explorer.kv_cache.run``.
    """
    engine = engine or get_engine(model)
    keys = list(backends or BACKENDS)
    unknown = [k for k in keys if k not in BACKENDS]
    if unknown:
        raise ValueError(f"Unknown quantised-cache backend(s) {unknown}; choose from {', '.join(BACKENDS)}.")
    residual_length = check_int(residual_length, "Residual length", minimum=1)
    if residual_length > 1024:
        raise ValueError(f"Residual length must be between 1 and 1,024 tokens, got {residual_length}.")
    new_tokens, _ = cap_new_tokens(max_new_tokens)
    ids = prompt_ids(engine, text)
    check_room(engine, len(ids), new_tokens)
    status = backend_status()
    unavailable = {k: status[k] for k in keys if status[k]}
    ready = [k for k in keys if not status[k]]
    total = len(ready) + 1
    # The full-precision run chooses the tokens; every quantised cache is then fed the same ones.
    chosen, ref_logits, tokens, reference = [], [], [], None
    for step in engine.steps(ids, new_tokens):
        chosen.append(step.token)
        ref_logits.append(step.logits)
        tokens.append(step.cache.get_seq_length())
        reference = step.cache
        yield Progress(len(chosen) / new_tokens / total, f"full precision: token {len(chosen)} of {new_tokens}")
    runs = []
    for number, key in enumerate(ready, start=1):
        cache, drift = _make_cache(engine, BACKENDS[key], residual_length), []
        forced = engine.steps(ids, len(chosen), cache=cache, select=lambda logits, i: chosen[i], stop_at_eos=False)
        for step in forced:
            drift.append(_drift(ref_logits[step.index], step.logits))
            yield Progress((number + len(drift) / len(chosen)) / total, f"{key}: token {len(drift)} of {len(chosen)}")
        quantized = sum(tensor_bytes(layer._quantized_keys) + tensor_bytes(layer._quantized_values)
                        for layer in cache.layers)
        cache_total = measure_cache_bytes(cache)
        rows = np.array(drift, dtype=np.float64)
        runs.append(QuantCacheRun(key, cache_total, quantized, cache_total - quantized, rows[:, 0], rows[:, 1],
                                  rows[:, 2].astype(bool)))
    yield QuantCacheResult(np.array(tokens, dtype=np.int64), measure_cache_bytes(reference),
                           cache_shape(engine).formula_bytes(tokens[-1]), residual_length, tuple(runs),
                           unavailable, provenance=measured(
                               "Engine.steps with transformers.QuantizedCache fed the full-precision run's tokens",
                               model=engine.name))
