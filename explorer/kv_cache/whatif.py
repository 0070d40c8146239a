"""What-if KV cache calculator for well-known model shapes (no model is loaded).

KV cache bytes = 2 x num_layers x num_kv_heads x head_dim x bits_per_element / 8 x context x batch
(Pope et al. 2022, "Efficiently Scaling Transformer Inference", arXiv:2211.05102); weight bytes =
parameters x bits_per_weight / 8. Everything is computed in Python integers of bits, so a 10M-token
context x batch 1,000 gives an exact byte count, never an overflow or NaN; :func:`format_bytes`
then picks the unit (B ... EB, powers of 1,000, with GiB-style 1,024 powers also available).

The same model is also sized as if it used MHA (KV heads = query heads), GQA (its own KV heads, or
8 groups when the model itself is MHA, as in Llama-2 70B; Ainslie et al. 2023, arXiv:2305.13245)
and MQA (one KV head; Shazeer 2019, arXiv:1911.02150).

Shapes with sliding-window layers (``ModelShape.sliding_window`` / ``local_layers``: Mistral 7B v0.1,
Gemma 2/3) are sized layer by layer: a local layer holds at most ``sliding_window - 1`` tokens per sequence,
as transformers' ``DynamicCache`` keeps them (:func:`windowed_kv_cache_bytes`), a global layer every token.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from explorer.core.provenance import Provenance, formula
from models.shapes import MODEL_SHAPES, ModelShape, get_shape

# Cache / weight dtype name -> bits per element.
DTYPE_BITS: dict[str, int] = {"fp32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4}

# Largest context and batch the calculator accepts: far beyond any real deployment, small enough
# that the exact integer result still converts to a float for the figures.
MAX_CONTEXT = 10**12
MAX_BATCH = 10**9

_UNITS_SI = ["B", "KB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
_UNITS_IEC = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def format_bytes(n_bytes: int | float, binary: bool = False) -> str:
    """Human-readable size: ``format_bytes(42_949_672_960) == "42.9 GB"``, with ``binary=True`` "40.0 GiB"."""
    base, units = (1024, _UNITS_IEC) if binary else (1000, _UNITS_SI)
    value = float(n_bytes)
    if not math.isfinite(value):
        return "too large to show"
    index = 0
    while abs(value) >= base and index < len(units) - 1:
        value /= base
        index += 1
    return f"{int(value):,} {units[index]}" if index == 0 else f"{value:,.1f} {units[index]}"


def _bits(dtype: str) -> int:
    if dtype not in DTYPE_BITS:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BITS)}.")
    return DTYPE_BITS[dtype]


def _whole(value, name: str, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    number = int(number)
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low:,} and {high:,}, got {number:,}.")
    return number


def kv_cache_bytes(num_layers: int, num_kv_heads: int, head_dim: int, dtype: str, context: int, batch: int = 1) -> int:
    """Exact KV cache bytes: ``2 x layers x kv_heads x head_dim x bits/8 x context x batch`` (int, bytes).

    Raises:
        ValueError: unknown dtype.
    """
    total_bits = 2 * num_layers * num_kv_heads * head_dim * _bits(dtype) * int(context) * int(batch)
    return total_bits // 8


def windowed_kv_cache_bytes(shape: ModelShape, num_kv_heads: int, dtype: str, context: int, batch: int = 1) -> int:
    """Exact KV cache bytes of a shape with sliding-window layers (int, bytes).

    ``local_layers`` layers hold ``min(context, sliding_window - 1)`` tokens, the other layers ``context``:
    ``2 x kv_heads x head_dim x bits/8 x batch x (local x min(context, window - 1) + global x context)``.
    Equals :func:`kv_cache_bytes` for a shape without local layers.

    Raises:
        ValueError: unknown dtype.
    """
    local = shape.local_layers if shape.sliding_window else 0
    tokens = local * min(int(context), shape.sliding_window - 1) + (shape.num_layers - local) * int(context)
    return 2 * num_kv_heads * shape.head_dim * _bits(dtype) * tokens * int(batch) // 8


def weight_bytes(num_params: int, dtype: str) -> int:
    """Bytes of ``num_params`` weights stored in ``dtype`` (int, bytes; no quantisation scales counted)."""
    return num_params * _bits(dtype) // 8


@dataclass(frozen=True)
class AttentionVariant:
    """One attention layout of the same model: ``label`` (``"MHA"``, ``"GQA"``, ``"MQA"``), KV heads and bytes."""

    label: str
    num_kv_heads: int
    kv_bytes: int
    is_actual: bool


@dataclass(frozen=True)
class WhatIfResult:
    """KV cache and weight memory for one model shape at one context, batch and dtype.

    Attributes:
        shape: the :class:`models.shapes.ModelShape`.
        context, batch: tokens per sequence and sequences.
        cache_dtype, weight_dtype: dtype names (keys of :data:`DTYPE_BITS`).
        bytes_per_token: KV bytes one token adds (batch 1).
        kv_bytes: KV cache bytes for ``context x batch`` tokens.
        weight_bytes: bytes of the weights.
        variants: MHA / GQA / MQA layouts of the same model (the actual one flagged).
        notes: readable caveats (context beyond the model's, sliding windows ...).
        provenance: ``formula`` (the KV formula on the model's published config).
    """

    shape: ModelShape
    context: int
    batch: int
    cache_dtype: str
    weight_dtype: str
    bytes_per_token: int
    kv_bytes: int
    weight_bytes: int
    variants: tuple[AttentionVariant, ...]
    notes: tuple[str, ...]
    provenance: Provenance = field(default_factory=lambda: formula(
        "2 x layers x KV heads x head_dim x bytes x tokens (Pope et al. 2022) on the published config"))

    @property
    def kv_to_weights(self) -> float:
        """KV cache bytes / weight bytes."""
        return self.kv_bytes / self.weight_bytes if self.weight_bytes else float("inf")

    def summary(self) -> str:
        """Markdown lines with the figures in readable units."""
        s = self.shape
        lines = [
            f"**{s.name}** ({s.attention_kind}: {s.num_heads} query heads, {s.num_kv_heads} KV heads, "
            f"{s.num_layers} layers, head dim {s.head_dim}; config `{s.hub_id}`)",
            f"- per token: 2 x {s.num_layers} x {s.num_kv_heads} x {s.head_dim} x {DTYPE_BITS[self.cache_dtype]}/8 "
            f"= **{self.bytes_per_token:,} bytes** ({format_bytes(self.bytes_per_token)})",
            f"- KV cache at {self.context:,} tokens x batch {self.batch:,} in {self.cache_dtype}: "
            f"**{format_bytes(self.kv_bytes)}** ({format_bytes(self.kv_bytes, binary=True)}; {self.kv_bytes:,} bytes)",
            f"- weights ({s.num_params / 1e9:.2f}B parameters in {self.weight_dtype}): "
            f"**{format_bytes(self.weight_bytes)}**; KV cache / weights = {self.kv_to_weights:,.2f}x",
        ]
        lines += [f"- {v.label} ({v.num_kv_heads} KV head{'s' if v.num_kv_heads != 1 else ''}"
                  f"{', this model' if v.is_actual else ''}): "
                  f"{format_bytes(v.kv_bytes)}" for v in self.variants]
        lines += [f"- note: {note}" for note in self.notes]
        return "\n".join(lines)


def attention_variants(shape: ModelShape, cache_dtype: str, context: int, batch: int) -> tuple[AttentionVariant, ...]:
    """The model sized as MHA, GQA and MQA (see module docstring for the GQA group choice)."""
    gqa = shape.num_kv_heads if shape.attention_kind == "GQA" else min(8, shape.num_heads)
    layouts = [("MHA", shape.num_heads), ("GQA", gqa), ("MQA", 1)]
    return tuple(AttentionVariant(label, kv, windowed_kv_cache_bytes(shape, kv, cache_dtype, context, batch),
                                  kv == shape.num_kv_heads and label == shape.attention_kind)
                 for label, kv in layouts)


def calculate(model: str, context, batch=1, cache_dtype: str = "bf16", weight_dtype: str = "bf16",
              num_kv_heads: int | None = None) -> WhatIfResult:
    """Size the KV cache and the weights of a catalogued model.

    Args:
        model: a name from :data:`models.shapes.MODEL_SHAPES`.
        context: tokens per sequence (1 .. :data:`MAX_CONTEXT`).
        batch: concurrent sequences (1 .. :data:`MAX_BATCH`).
        cache_dtype, weight_dtype: keys of :data:`DTYPE_BITS`.
        num_kv_heads: override the KV heads (e.g. the MHA assumption of the handbook preset).
    Raises:
        ValueError: unknown model or dtype; context/batch not a whole number in range (NaN, inf, negative).
    """
    shape = get_shape(model)
    context = _whole(context, "Context length", 1, MAX_CONTEXT)
    batch = _whole(batch, "Batch size", 1, MAX_BATCH)
    _bits(weight_dtype)
    kv_heads = shape.num_kv_heads if num_kv_heads is None else _whole(num_kv_heads, "KV heads", 1, shape.num_heads)
    notes = []
    if kv_heads != shape.num_kv_heads:
        notes.append(f"assumes {kv_heads} KV heads instead of the model's {shape.num_kv_heads}")
    if context > shape.context_length:
        notes.append(f"{context:,} tokens is beyond the model's configured context of {shape.context_length:,}")
    if shape.note:
        notes.append(shape.note)
    if shape.local_layers and context >= shape.sliding_window:
        full = kv_cache_bytes(shape.num_layers, kv_heads, shape.head_dim, cache_dtype, context, batch)
        notes.append(f"sliding window: {shape.local_layers} of {shape.num_layers} layers keep only "
                     f"{shape.sliding_window - 1:,} tokens, so the cache is "
                     f"{format_bytes(windowed_kv_cache_bytes(shape, kv_heads, cache_dtype, context, batch))} instead of "
                     f"{format_bytes(full)} if every layer kept all {context:,} tokens")
    per_token = kv_cache_bytes(shape.num_layers, kv_heads, shape.head_dim, cache_dtype, 1, 1)
    return WhatIfResult(shape, context, batch, cache_dtype, weight_dtype, per_token,
                        windowed_kv_cache_bytes(shape, kv_heads, cache_dtype, context, batch),
                        weight_bytes(shape.num_params, weight_dtype),
                        attention_variants(shape, cache_dtype, context, batch), tuple(notes))


@dataclass(frozen=True)
class Preset:
    """A named set of calculator inputs with the assumptions that produce a quoted figure."""

    model: str
    context: int
    batch: int
    cache_dtype: str
    weight_dtype: str
    num_kv_heads: int | None
    explanation: str


HANDBOOK_70B = Preset(
    "Llama-3 70B", 8192, 1, "fp32", "fp16", 64,
    "The handbook says a 70B model at 8K context needs ~140 GB of weights and up to ~40 GB of KV cache at "
    "batch 1. Take Llama-3 70B (80 layers, 64 query heads of dim 128, an 8K context). The weights: 70.6B "
    "parameters x 2 bytes (fp16) = 141 GB. The ~40 GB cache follows only if every one of the 64 query heads "
    "keeps its own keys and values (MHA, no GQA) and the cache is stored in fp32: 2 x 80 layers x 64 heads x "
    "128 x 4 bytes x 8,192 tokens = 42.9 GB = exactly 40 GiB (an fp16 cache at batch 2 gives the same). "
    "The real model uses GQA with 8 KV heads, which divides it by 8: 5 GiB in fp32, 2.5 GiB in fp16 "
    "(Llama-2 70B has the same layer shape).")

PRESETS: dict[str, Preset] = {"Handbook: 70B at 8K context (~40 GB)": HANDBOOK_70B}


def shape_names() -> list[str]:
    """Names of the catalogued model shapes, in catalogue order."""
    return list(MODEL_SHAPES)
