"""KV cache lens: bytes measured from the real cache object while generating, beside the formula.

During autoregressive decoding every attention layer keeps the keys and values of all earlier tokens
(Vaswani et al. 2017, "Attention Is All You Need"; Pope et al. 2022, "Efficiently Scaling Transformer
Inference", arXiv:2211.05102, section 2). Their size is

    kv_bytes = 2 (key and value) x num_layers x num_kv_heads x head_dim x bytes_per_element x tokens

(``num_kv_heads`` < query heads for GQA, Ainslie et al. 2023, arXiv:2305.13245; 1 for MQA, Shazeer 2019).
On a model with sliding-window layers (Gemma 3) a local layer holds at most ``sliding_window - 1`` tokens,
so the formula is summed layer by layer (``windowed.py``).

:func:`iter_growth` runs greedy decoding through ``Engine.steps`` (one locked forward pass per token,
a ``transformers`` ``DynamicCache``) and after the prefill and after every decode step sums
``numel x element_size`` over every layer's key and value tensors (``cache.layers[i].keys/.values``).
:func:`run` collects it into a :class:`KVGrowthResult`; :func:`iter_run` is the lens contract (progress,
then the result). Timing with vs without the cache is in ``timing.py``.

The prompt-caching, paged-attention, quantised-cache and what-if parts live in ``prefix.py``,
``paged.py``, ``quantized.py`` and ``whatif.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.kv_cache.windowed import windowed_kv_bytes
from models.shapes import layer_windows
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_max_new_tokens, check_text
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))


@dataclass(frozen=True)
class CacheShape:
    """What sizes one model's KV cache.

    Attributes:
        num_layers, num_heads, num_kv_heads, head_dim: from the model config.
        bytes_per_element: bytes of one cached number (4 for fp32, 2 for bf16/fp16).
        dtype: name of the cache dtype (``"float32"`` ...).
        windows: per layer, its sliding window in tokens (0 = global); empty or all 0 when no layer is local.
    """

    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    bytes_per_element: int
    dtype: str
    windows: tuple[int, ...] = ()

    @property
    def bytes_per_token(self) -> int:
        """``2 x num_layers x num_kv_heads x head_dim x bytes_per_element`` (bytes per token, batch 1)."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.bytes_per_element

    def formula_bytes(self, tokens: int) -> int:
        """KV cache bytes after ``tokens`` positions (batch 1); local layers hold at most their window - 1
        (:func:`explorer.kv_cache.windowed.windowed_kv_bytes`)."""
        if any(self.windows):
            return windowed_kv_bytes(self.windows, self.num_kv_heads, self.head_dim, self.bytes_per_element, tokens)
        return self.bytes_per_token * int(tokens)


def cache_shape(engine: Engine) -> CacheShape:
    """Read the :class:`CacheShape` of ``engine``'s model from its config and dtype.

    Raises:
        ValueError: the model is not a decoder (encoders keep no KV cache).
    """
    if not engine.is_causal:
        raise ValueError(f"{engine.name} is an encoder: it reads the whole text at once and keeps no KV cache. "
                         "Pick a decoder model such as smollm2-135m-instruct.")
    cfg = engine.config.get_text_config(decoder=True)
    heads = int(cfg.num_attention_heads)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    element = engine.dtype.itemsize if hasattr(engine.dtype, "itemsize") else 4
    return CacheShape(int(cfg.num_hidden_layers), heads, kv_heads, head_dim, int(element),
                      str(engine.dtype).replace("torch.", ""), layer_windows(cfg))


def tensor_bytes(obj) -> int:
    """Bytes held by a tensor, a quantised tensor subclass, or a tuple/list of them (recursively).

    Tensor subclasses that pack their data (optimum-quanto's ``WeightQBitsTensor``) are unpacked through
    ``__tensor_flatten__`` so their packed storage, scales and shifts are counted, not the logical size.
    """
    import torch

    if obj is None:
        return 0
    if isinstance(obj, (tuple, list)):
        return sum(tensor_bytes(item) for item in obj)
    if isinstance(obj, dict):
        return sum(tensor_bytes(item) for item in obj.values())
    if isinstance(obj, torch.Tensor):
        if type(obj) is not torch.Tensor and hasattr(obj, "__tensor_flatten__"):
            names, _ = obj.__tensor_flatten__()
            return sum(tensor_bytes(getattr(obj, name)) for name in names)
        return obj.numel() * obj.element_size()
    return 0


def measure_cache_bytes(cache) -> int:
    """Sum the bytes of every layer's cached key and value tensors in a ``transformers`` cache object.

    Counts ``layer.keys`` and ``layer.values`` (the full-precision part) and, for quantised layers,
    ``layer._quantized_keys`` / ``layer._quantized_values`` (bytes of the stored quantised data).
    Returns bytes (int).
    """
    total = 0
    for layer in cache.layers:
        total += tensor_bytes(getattr(layer, "keys", None)) + tensor_bytes(getattr(layer, "values", None))
        total += tensor_bytes(getattr(layer, "_quantized_keys", None))
        total += tensor_bytes(getattr(layer, "_quantized_values", None))
    return total


def measured_bytes_per_token(engine: Engine) -> int:
    """KV bytes one token occupies, measured: prefill one token into a fresh ``DynamicCache`` and sum its tensors.

    Raises:
        ValueError: encoder model (no KV cache).
    """
    from transformers import DynamicCache

    cache_shape(engine)
    cache = DynamicCache(config=engine.config)
    token = engine.tokenizer.bos_token_id if engine.tokenizer.bos_token_id is not None else 0
    engine.forward([token], past_key_values=cache, use_cache=True, logits_to_keep=1)
    return measure_cache_bytes(cache)


@dataclass(frozen=True)
class GrowthStep:
    """One measurement: after the prefill (``phase == "prefill"``) or after one decode step.

    Attributes:
        tokens: tokens in the cache after this step.
        measured_bytes: bytes summed over the real cache tensors.
        formula_bytes: ``CacheShape.formula_bytes(tokens)``.
        ms: wall time of this step's forward pass (milliseconds).
        phase: ``"prefill"`` or ``"decode"``.
        token_id: the token chosen greedily after this step.
    """

    tokens: int
    measured_bytes: int
    formula_bytes: int
    ms: float
    phase: str
    token_id: int


@dataclass(frozen=True)
class KVGrowthResult:
    """Cache growth over one greedy generation.

    Attributes:
        model: model name.
        shape: the :class:`CacheShape` used by the formula.
        prompt_tokens: tokens in the prompt (the prefill).
        steps: one :class:`GrowthStep` per forward pass (prefill first).
        tokens, measured_bytes, formula_bytes (np.ndarray int64, shape (n_steps,)); ms (float64, (n_steps,)).
        generated_ids: greedy tokens, shape (n_steps,).
        text: decoded generated text.
        capped_from: the requested ``max_new_tokens`` if it was capped, else ``None``.
        provenance: measured on the model (bytes from the cache tensors; the formula column is beside them).
    """

    model: str
    shape: CacheShape
    prompt_tokens: int
    steps: tuple[GrowthStep, ...]
    tokens: np.ndarray
    measured_bytes: np.ndarray
    formula_bytes: np.ndarray
    ms: np.ndarray
    generated_ids: np.ndarray
    text: str
    capped_from: int | None = None
    provenance: Provenance | None = None

    @property
    def matches_formula(self) -> bool:
        """True when every measured value equals the formula exactly."""
        return bool(np.array_equal(self.measured_bytes, self.formula_bytes))

    def to_api(self) -> dict:
        """The ``/kv_cache`` JSON: ``bytes_per_token_formula``, ``steps``, ``phase`` (one label per step) and
        ``provenance``."""
        return {
            "provenance": self.provenance.to_api() if self.provenance else None,
            "bytes_per_token_formula": self.shape.bytes_per_token,
            "steps": [{"tokens": s.tokens, "measured_bytes": s.measured_bytes, "formula_bytes": s.formula_bytes,
                       "ms": round(s.ms, 3)} for s in self.steps],
            "phase": [s.phase for s in self.steps],
        }


def cap_new_tokens(max_new_tokens) -> tuple[int, int | None]:
    """Check ``max_new_tokens`` (tokens to generate) and cap it at ``Limits.max_new_tokens``.

    Returns:
        ``(value, capped_from)`` where ``capped_from`` is the request if it was lowered, else ``None``.
    Raises:
        ValueError: not an integer, or below 1 (:func:`explorer.core.validation.check_max_new_tokens`).
    """
    notices: list[str] = []
    value = check_max_new_tokens(max_new_tokens, get_limits().max_new_tokens, notices)
    return (value, int(max_new_tokens)) if notices else (value, None)


def prompt_ids(engine: Engine, text: str) -> list[int]:
    """Chat-template token ids of ``text`` (the prompt bar's text), with room left for generation checked later.

    Raises:
        ValueError: empty text, or a prompt longer than the caps / model context.
    """
    check_text(text, "prompt")
    return engine.chat_ids(text)


def iter_growth(engine: Engine, ids: list[int], max_new_tokens: int) -> Iterator[GrowthStep]:
    """Greedy decoding through ``Engine.steps``, yielding a :class:`GrowthStep` after every forward pass.

    Args:
        ids: prompt token ids (already length-checked).
        max_new_tokens: tokens to generate (the caller caps it): the prefill plus ``max_new_tokens - 1``
            decode passes.
    Yields:
        the prefill step, then one step per decode; stops early at the end-of-sequence token.
    Raises:
        ValueError: prompt plus new tokens exceed the model's context.
    """
    shape = cache_shape(engine)
    check_room(engine, len(ids), max_new_tokens)
    for step in engine.steps(ids, max_new_tokens):
        tokens = step.cache.get_seq_length()
        yield GrowthStep(tokens, measure_cache_bytes(step.cache), shape.formula_bytes(tokens), step.ms,
                         "prefill" if step.index == 0 else "decode", step.token)


def check_room(engine: Engine, prompt_tokens: int, new_tokens: int) -> None:
    """Raise ``ValueError`` when the prompt plus the new tokens do not fit in the model's context."""
    context = engine.context_length()
    if prompt_tokens + new_tokens > context:
        raise ValueError(f"The prompt ({prompt_tokens:,} tokens) plus {new_tokens:,} new tokens does not fit in "
                         f"{engine.name}'s context of {context:,} tokens. Shorten the prompt or generate fewer tokens.")


def collect(engine: Engine, ids: list[int], steps: list[GrowthStep], capped_from: int | None = None) -> KVGrowthResult:
    """Build a :class:`KVGrowthResult` from steps gathered by :func:`iter_growth`."""
    gen = [s.token_id for s in steps]
    return KVGrowthResult(
        model=engine.name, shape=cache_shape(engine), prompt_tokens=len(ids), steps=tuple(steps),
        tokens=np.array([s.tokens for s in steps], dtype=np.int64),
        measured_bytes=np.array([s.measured_bytes for s in steps], dtype=np.int64),
        formula_bytes=np.array([s.formula_bytes for s in steps], dtype=np.int64),
        ms=np.array([s.ms for s in steps], dtype=np.float64), generated_ids=np.array(gen, dtype=np.int64),
        text=engine.tokenizer.decode(gen, skip_special_tokens=True), capped_from=capped_from,
        provenance=measured("Engine.steps with a DynamicCache; bytes summed over cache.layers[i].keys/values",
                            model=engine.name))


def iter_run(text: str, model: str | None = None, max_new_tokens: int = 16,
             engine: Engine | None = None) -> Iterator[Progress | KVGrowthResult]:
    """The lens contract: a :class:`Progress` per forward pass (``partial`` = that :class:`GrowthStep`), then the
    :class:`KVGrowthResult`.

    Raises:
        ValueError: empty or too long prompt, encoder model, bad ``max_new_tokens``.
    """
    engine = engine or get_engine(model)
    new_tokens, capped_from = cap_new_tokens(max_new_tokens)
    ids = prompt_ids(engine, text)
    steps = []
    for step in iter_growth(engine, ids, new_tokens):
        steps.append(step)
        yield Progress(len(steps) / new_tokens, f"token {len(steps)} of {new_tokens}", step)
    yield collect(engine, ids, steps, capped_from)


def run(text: str, model: str | None = None, max_new_tokens: int = 16, engine: Engine | None = None,
        on_step: Callable[[GrowthStep], None] | None = None) -> KVGrowthResult:
    """Generate greedily from ``text`` and measure the KV cache after the prefill and every decode step.

    Args:
        text: the user prompt (wrapped by the chat template).
        model: model name (default the embedded SmolLM2); ignored when ``engine`` is given.
        max_new_tokens: tokens to generate (one forward pass each); capped at ``Limits.max_new_tokens``
            (``capped_from`` records it).
        on_step: called with each :class:`GrowthStep` as it is measured (progress).
    Raises:
        ValueError: empty or too long prompt, encoder model, bad ``max_new_tokens``.
    """
    def report(items):
        for item in items:
            if isinstance(item, Progress) and on_step is not None:
                on_step(item.partial)
            yield item

    return run_to_end(report(iter_run(text, model, max_new_tokens, engine)))
