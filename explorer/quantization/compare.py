"""The Quantisation lens: the same prompt through the reference and its int8 / NF4 / FP4 / 16-bit copies.

For each method (registry in :mod:`explorer.quantization.methods`) it measures the bytes of the
weights, the time to build the copy, greedy decode speed, the greedy text, and how far its next-token
distributions move from the reference's on the prompt followed by the reference's own continuation
(llama.cpp ``perplexity --kl-divergence`` statistics, :mod:`explorer.quantization.quality`).
Methods that fail on this device (missing kernel) report why and the others still run.

Entry points: :func:`run` / :func:`iter_run` (prompt side by side), :func:`run_passage` (quality on the
shipped reference passage), :meth:`QuantizeResult.to_api` (the ``/quantize`` JSON shape). Every pass goes through
``Engine.steps`` (greedy text and speed) or ``Engine.forward`` (the scored sequence).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_max_new_tokens, check_text, require_causal
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))

from explorer.quantization.methods import METHODS, QuantOptions, check_fits, check_methods, get_variant
from explorer.quantization.quality import QualityStats, compare_logits, reference_passage, score_text, summarize

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class MethodRun:
    """One method's results on the prompt.

    Attributes:
        name, label, key: registry name, display label, cache key (options included).
        error: why the method could not run here (``None`` when it ran); note: caveat to show.
        weight_bytes, linear_weight_bytes: measured storage (bytes); ``bits_per_param`` = 8·bytes/params.
        prepare_s: seconds to build the copy (0 for the reference or a cache hit's original build time).
        tokens_per_s: greedy decode speed (tokens/s, prefill excluded); prefill_ms: prompt pass (ms).
        generated_ids: ``(n_new,)`` greedy continuation; text: its decoded text.
        stats: :class:`QualityStats` on the scored sequence; kld: ``(n_scored,)`` KL per position (nats);
        same_top: ``(n_scored,)`` bool, the method's top-1 equals the reference's at that position.
        topk_ids, topk_probs: ``(n_pos, k)`` the method's own top-k next tokens per position.
        ref_topk_probs: ``(n_pos, k)`` the method's probabilities of the *reference's* top-k ids.
        generated_tokens: display strings of ``generated_ids``; topk_tokens: display strings of ``topk_ids``.
    """

    name: str
    label: str
    key: str
    error: str | None = None
    note: str | None = None
    weight_bytes: int = 0
    linear_weight_bytes: int = 0
    bits_per_param: float = float("nan")
    prepare_s: float = 0.0
    tokens_per_s: float = float("nan")
    prefill_ms: float = float("nan")
    generated_ids: np.ndarray | None = None
    text: str = ""
    stats: QualityStats | None = None
    kld: np.ndarray | None = None
    same_top: np.ndarray | None = None
    topk_ids: np.ndarray | None = None
    topk_probs: np.ndarray | None = None
    ref_topk_probs: np.ndarray | None = None
    generated_tokens: tuple[str, ...] = ()
    topk_tokens: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class QuantizeResult:
    """Everything the tab shows for one prompt.

    Attributes:
        model, device, reference_dtype: what ran where.
        n_params: parameters of the reference (count, tied weights once); n_layers: transformer layers.
        sequence_ids: ``(n_pos,)`` prompt ids followed by the reference's greedy continuation: the text
            every method is scored on; n_prompt: how many of them are the prompt.
        tokens: display strings of ``sequence_ids``.
        methods: one :class:`MethodRun` per requested method, reference first.
        provenance: measured on the model and its quantised copies.
    """

    model: str
    device: str
    reference_dtype: str
    n_params: int
    n_layers: int
    sequence_ids: np.ndarray
    n_prompt: int
    tokens: tuple[str, ...]
    methods: tuple[MethodRun, ...]
    provenance: Provenance | None = None

    def method(self, name: str) -> MethodRun:
        """The run of method ``name``. Raises ``KeyError`` if it was not requested."""
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_api(self, decimals: int = 6) -> dict:
        """The ``/quantize`` JSON: ``{"model", "methods": {name: {"weight_bytes", "kld_mean", "kld_p99",
        "same_top_pct", "ppl", "ppl_ratio", "text", "error", "kld", "same_top"}}, "positions", "provenance"}``
        (``error`` says why a method could not run, ``None`` numbers then).

        Per position: ``positions`` is ``{"ids", "tokens", "n_prompt"}`` of the scored sequence (the prompt, then
        the reference's greedy continuation); a method's ``kld[i]`` (nats, rounded to ``decimals``) and
        ``same_top[i]`` are its KL from the reference and whether its top-1 matches, at position ``i`` (predicting
        token ``i + 1``).
        """
        out = {}
        for m in self.methods:
            s = m.stats
            out[m.name] = {"weight_bytes": int(m.weight_bytes) if m.error is None else None,
                           "kld_mean": s.kld_mean if s else None, "kld_p99": s.kld_p99 if s else None,
                           "same_top_pct": s.same_top_pct if s else None, "ppl": s.ppl if s else None,
                           "ppl_ratio": s.ppl_ratio if s else None, "text": m.text, "error": m.error,
                           "kld": None if m.kld is None else np.round(m.kld.astype(np.float64), decimals).tolist(),
                           "same_top": None if m.same_top is None else [bool(v) for v in m.same_top]}
        return {"model": self.model, "methods": out,
                "positions": {"ids": [int(i) for i in self.sequence_ids], "tokens": list(self.tokens),
                              "n_prompt": int(self.n_prompt)},
                "provenance": self.provenance.to_api() if self.provenance else None}


def token_strings(tokenizer, ids) -> tuple[str, ...]:
    """Readable text of each token id (decoded, so byte-level pieces such as ``Ã©`` show as ``é``)."""
    return tuple(tokenizer.decode([int(i)]) for i in ids)

def greedy_generate(engine, ids: list[int], max_new_tokens: int) -> tuple[list[int], float, float]:
    """Greedy decoding through ``Engine.steps`` (one locked, synchronised forward pass per generated token).

    Returns:
        ``(new_ids, decode_tokens_per_s, prefill_ms)``: ``max_new_tokens`` tokens at most (stops after an
        end-of-sequence token); the speed counts the decode passes after the prefill (the prefill's own
        token excluded), ``prefill_ms`` is the first pass.
    """
    new: list[int] = []
    prefill_ms, decode_ms = float("nan"), 0.0
    for step in engine.steps(ids, max_new_tokens):
        new.append(step.token)
        if step.index == 0:
            prefill_ms = step.ms
        else:
            decode_ms += step.ms
    steps = len(new) - 1
    if steps < 1:  # one token: only the prefill ran, so its pass is the only speed measured
        return new, (1000.0 / prefill_ms if prefill_ms > 0 else float("nan")), prefill_ms
    return new, (1000.0 * steps / decode_ms if decode_ms > 0 else float("nan")), prefill_ms


def _topk(logits, ref_ids, k: int):
    import torch

    probs = torch.softmax(logits.float(), dim=-1)
    top = probs.topk(k, dim=-1)
    ref_probs = probs.gather(1, ref_ids) if ref_ids is not None else top.values
    return top.indices.numpy(), top.values.numpy(), ref_probs.numpy()


def _run_method(name, reference, variant, prompt_ids, sequence, ref_logits, ref_top_ids, max_new_tokens, k, n_params,
                ref_generation):
    from explorer.quantization.quality import forward_logits
    import torch

    engine = variant.engine
    if engine is reference:
        new_ids, tps, prefill_ms = ref_generation
    else:
        new_ids, tps, prefill_ms = greedy_generate(engine, prompt_ids, max_new_tokens)
    logits = ref_logits if engine is reference else forward_logits(engine, sequence)
    targets = torch.tensor(sequence[1:])
    cmp = compare_logits(ref_logits[:-1], logits[:-1], targets)
    ids, probs, ref_probs = _topk(logits, ref_top_ids, k)
    return MethodRun(name=name, label=METHODS[name].label, key=variant.key, note=getattr(variant, "note", None),
                     weight_bytes=variant.weight_bytes, linear_weight_bytes=variant.linear_weight_bytes,
                     bits_per_param=8.0 * variant.weight_bytes / n_params, prepare_s=variant.prepare_s,
                     tokens_per_s=tps, prefill_ms=prefill_ms, generated_ids=np.array(new_ids, dtype=np.int64),
                     text=engine.tokenizer.decode(new_ids, skip_special_tokens=True), stats=summarize(cmp),
                     kld=cmp.kld, same_top=cmp.same_top, topk_ids=ids, topk_probs=probs, ref_topk_probs=ref_probs,
                     generated_tokens=token_strings(engine.tokenizer, new_ids),
                     topk_tokens=tuple(token_strings(engine.tokenizer, row) for row in ids.tolist()))


def _resolve(model, engine):
    from explorer.core.engine import get_engine

    engine = engine or get_engine(model)
    require_causal(engine, "Quantisation quality")
    return engine


def iter_run(prompt: str, model: str | None = None, methods=("reference", "int8", "nf4"),
             options: QuantOptions | None = None, max_new_tokens: int = 24, top_k: int = 10,
             engine=None, chat: bool = True) -> Iterator[Progress | QuantizeResult]:
    """The lens contract of :func:`run`: a :class:`Progress` before building and before running each method,
    then the :class:`QuantizeResult`.

    Raises:
        ValueError: see :func:`run`.
    """
    from explorer.core.config import get_limits
    from explorer.quantization.quality import forward_logits
    import torch

    check_text(prompt, "prompt")
    names = check_methods(methods)
    options = (options or QuantOptions()).validate()
    max_new_tokens = check_max_new_tokens(max_new_tokens, get_limits().max_new_tokens)
    reference = _resolve(model, engine)
    check_fits(reference, names)
    prompt_ids = reference.chat_ids(prompt) if chat else reference.encode(prompt)
    yield Progress(0.0, "reference: greedy continuation")
    ref_generation = greedy_generate(reference, prompt_ids, max_new_tokens)
    sequence = prompt_ids + ref_generation[0]
    ref_logits = forward_logits(reference, sequence)
    ref_top_ids = torch.softmax(ref_logits, -1).topk(top_k, -1).indices
    n_params = sum(p.numel() for p in reference.model.parameters())
    runs = []
    for i, name in enumerate(names):
        yield Progress(i / len(names), f"preparing {name}")
        try:
            variant = get_variant(reference, name, options)
            yield Progress((i + 0.5) / len(names), f"running {name}")
            runs.append(_run_method(name, reference, variant, prompt_ids, sequence, ref_logits,
                                    None if name == "reference" else ref_top_ids, max_new_tokens, top_k, n_params,
                                    ref_generation))
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 - a missing kernel etc. is shown in that method's column
            runs.append(MethodRun(name=name, label=METHODS[name].label, key=METHODS[name].key(options),
                                  error=f"{type(exc).__name__}: {exc}"[:400]))
    yield Progress(1.0, "done")
    tokens = token_strings(reference.tokenizer, sequence)
    yield QuantizeResult(model=reference.name, device=str(reference.device),
                         reference_dtype=str(reference.dtype).replace("torch.", ""), n_params=n_params,
                         n_layers=int(getattr(reference.config, "num_hidden_layers", 0) or 0),
                         sequence_ids=np.array(sequence, dtype=np.int64), n_prompt=len(prompt_ids),
                         tokens=tokens, methods=tuple(runs),
                         provenance=measured("Engine.steps / Engine.forward on each cached quantised copy",
                                             model=reference.name))


def run(prompt: str, model: str | None = None, methods=("reference", "int8", "nf4"), options: QuantOptions | None = None,
        max_new_tokens: int = 24, top_k: int = 10, progress: ProgressFn | None = None, engine=None,
        chat: bool = True) -> QuantizeResult:
    """Run the prompt through every method and compare with the reference.

    Args:
        prompt: user text (wrapped by the chat template); model: embedded name or Hub id.
        methods: names from :data:`explorer.quantization.methods.METHODS`; ``reference`` is always added.
        options: int8 threshold, 4-bit block size, double quantisation, compute dtype.
        max_new_tokens: tokens generated greedily per method (capped by the configured ``max_new_tokens``).
        top_k: next-token candidates kept per position for the distribution view.
        progress: optional ``(fraction, message)`` callback.
        engine: an explicit reference engine (tests); default ``get_engine(model)``.
        chat: wrap the prompt in the chat template (default); False scores the plain text's tokens.
    Raises:
        ValueError: empty prompt, unknown method, bad options, prompt too long, an encoder model, or a
            model whose quantised copy would not fit in memory (refused before anything runs).
    """
    def report(items):
        for item in items:
            if isinstance(item, Progress) and progress is not None:
                progress(item.fraction, item.message)
            yield item

    return run_to_end(report(iter_run(prompt, model, methods, options, max_new_tokens, top_k, engine, chat)))


api_dict = to_api  # older name (tests and bench)


@dataclass(frozen=True)
class PassageQuality:
    """Quality on the reference passage: per-method stats and KL per position.

    Attributes:
        model, device, window: what ran, where, and the scoring window (tokens).
        n_tokens: tokens in the passage; stats: name -> :class:`QualityStats` (or error string);
        kld: name -> ``(n_scored,)`` KL per scored position (nats); weight_bytes: name -> bytes.
        provenance: measured on the model and its quantised copies.
    """

    model: str
    device: str
    window: int
    n_tokens: int
    stats: dict
    kld: dict
    weight_bytes: dict
    provenance: Provenance | None = None

    def to_api(self, decimals: int = 5) -> dict:
        """JSON-ready form of a :class:`PassageQuality` (the shape of ``data/quantization/quality_smollm2.json``):
        ``{"model", "device", "window", "n_tokens", "methods": {name: {stats..., "weight_bytes", "kld": [...]}
        or {"error": why}}}``; KL values rounded to ``decimals``."""
        methods = {}
        for name, s in self.stats.items():
            if isinstance(s, str):
                methods[name] = {"error": s}
                continue
            methods[name] = {**s.as_dict(), "weight_bytes": int(self.weight_bytes.get(name, 0)),
                             "kld": [round(float(v), decimals) for v in self.kld[name]]}
        return {"model": self.model, "device": self.device, "window": self.window, "n_tokens": self.n_tokens,
                "methods": methods}


def run_passage(model: str | None = None, methods=("reference", "int8", "nf4"), options: QuantOptions | None = None,
                text: str | None = None, window: int = 512, max_tokens: int | None = None,
                progress: ProgressFn | None = None, engine=None) -> PassageQuality:
    """Score the shipped reference passage (or ``text``) with every method (llama.cpp KL report).

    Args:
        max_tokens: score only the first ``max_tokens`` tokens (tests use a short slice).
    Raises:
        ValueError: as :func:`run`; also a text of fewer than two tokens.
    """
    names = check_methods(methods)
    options = (options or QuantOptions()).validate()
    reference = _resolve(model, engine)
    check_fits(reference, names)
    ids = reference.encode(text if text is not None else reference_passage(), max_tokens=reference.context_length())
    ids = ids[:max_tokens] if max_tokens else ids
    engines, stats, weight_bytes = {}, {}, {}
    for i, name in enumerate(names):
        if progress:
            progress(0.2 * i / len(names), f"preparing {name}")
        try:
            variant = get_variant(reference, name, options)
            engines[name], weight_bytes[name] = variant.engine, variant.weight_bytes
        except Exception as exc:  # noqa: BLE001 - reported in that method's row
            stats[name] = f"{type(exc).__name__}: {exc}"[:400]
    scaled = (lambda f, m: progress(0.2 + 0.8 * f, m)) if progress else None
    comparisons = score_text(reference, engines, ids, window=window, progress=scaled)
    stats.update({name: summarize(cmp) for name, cmp in comparisons.items()})
    return PassageQuality(model=reference.name, device=str(reference.device), window=window, n_tokens=len(ids),
                          stats={n: stats[n] for n in names}, kld={n: c.kld for n, c in comparisons.items()},
                          weight_bytes=weight_bytes,
                          provenance=measured("Engine.forward windows on the reference passage", model=reference.name))
