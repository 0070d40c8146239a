"""Where the quantisation error is: dequantised weights against the reference, per matrix and per layer.

- 4-bit (NF4/FP4, QLoRA arXiv:2305.14314): each stored byte holds two 4-bit codes (high nibble
  first); a code indexes a 16-entry code book; each block of ``blocksize`` weights is multiplied by its
  absmax scale. With double quantisation the scales are themselves 8-bit codes (dynamic code book,
  blocks of 256) plus a shared offset. :func:`dequantize_4bit` does this by hand from bitsandbytes'
  stored state, so the tab shows the mechanism; the tests check it against ``bitsandbytes.functional``.
- int8 (LLM.int8, arXiv:2208.07339): row-wise absmax, ``W ≈ int8 * SCB / 127``. Activation feature
  columns whose magnitude exceeds the threshold run in 16 bit; :func:`int8_outliers` counts them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from explorer.core.patches import PreForwardHook
from explorer.core.provenance import Provenance, measured
from explorer.quantization.layers import quantizable_linear_names

_LAYER_RE = re.compile(r"^(?:.*\.)?layers\.(\d+)\.(.+)$")


def dequantize_4bit(weight):
    """Dequantise a bitsandbytes ``Params4bit`` by hand (code book lookup × block absmax).

    Args:
        weight: a quantised ``bitsandbytes.nn.Params4bit`` in bitsandbytes' canonical storage.
    Returns:
        fp32 tensor of the original weight shape ``(out_features, in_features)``.
    Raises:
        ValueError: the weight is not 4-bit quantised or is in the repacked CPU layout.
    """
    import torch

    state = getattr(weight, "quant_state", None)
    if state is None or getattr(state, "packing_format_for_cpu", False):
        raise ValueError("This weight is not in bitsandbytes' canonical 4-bit storage.")
    packed = weight.data.reshape(-1).view(torch.uint8).to(torch.int64)
    codes = torch.stack([packed >> 4, packed & 0xF], dim=1).reshape(-1)  # high nibble first
    n = int(np.prod(tuple(state.shape)))
    values = state.code.float()[codes[:n]]
    absmax = state.absmax
    if getattr(state, "nested", False) and state.state2 is not None:
        inner = state.state2
        scale = inner.absmax.float().repeat_interleave(inner.blocksize)[:absmax.numel()]
        absmax = inner.code.float()[absmax.to(torch.int64)] * scale + state.offset.float()
    scales = absmax.float().repeat_interleave(state.blocksize)[:n]
    return (values * scales).reshape(tuple(state.shape)).to(state.dtype).float()


def kernel_check(model, rtol: float = 0.01) -> str | None:
    """Compare bitsandbytes' own 4-bit dequantisation with :func:`dequantize_4bit` on one layer per width.

    bitsandbytes 0.50's AVX-512 CPU kernel mis-reads blocks that cross a row (``in_features`` not a
    multiple of ``blocksize``), so the forward pass then uses different weights from the stored ones.
    Returns:
        ``None`` when they agree (or the model has no 4-bit layers), else a sentence for the UI.
    """
    import bitsandbytes.functional as bnbf

    by_width = {}
    for name in quantizable_linear_names(model):
        module = model.get_submodule(name)
        if type(module.weight).__name__ == "Params4bit":
            by_width.setdefault(module.in_features, module)
    bad = []
    for width, module in by_width.items():
        ours = dequantize_4bit(module.weight)
        theirs = bnbf.dequantize_4bit(module.weight.data, module.weight.quant_state).float()
        # a tolerance of 1 % of the largest weight absorbs 16-bit rounding; the row bug is off by ~100 %
        if not bool((ours - theirs).abs().max() <= rtol * float(ours.abs().max())):
            bad.append(width)
    if not bad:
        return None
    block = next(iter(by_width.values())).weight.quant_state.blocksize
    return (f"bitsandbytes' kernel on this device dequantises layers of width {sorted(bad)} differently from the "
            f"stored block-{block} values (blocks that cross a row); the measured quality includes that kernel error. "
            "Block size 64 avoids it.")


def dequantize_int8(module):
    """Dequantise a bitsandbytes ``Linear8bitLt`` weight: ``int8 * SCB[:, None] / 127`` (fp32 ``(out, in)``)."""
    import torch

    weight = module.weight
    scb = getattr(weight, "SCB", None)
    if scb is None:
        scb = module.state.SCB
    return weight.data.to(torch.float32) * scb.float().view(-1, 1) / 127.0


def dequantized_weight(module):
    """The weight a layer effectively multiplies by, as fp32 ``(out_features, in_features)``.

    Handles bitsandbytes 4-bit layers (through ``bitsandbytes.functional.dequantize_4bit``, the same
    kernel the forward pass uses, so a kernel error shows up here too), int8 layers and plain (cast)
    ``nn.Linear``.
    """
    cls = type(module.weight).__name__
    if cls == "Params4bit":
        import bitsandbytes.functional as bnbf

        return bnbf.dequantize_4bit(module.weight.data, module.weight.quant_state).float()
    if cls == "Int8Params":
        return dequantize_int8(module)
    return module.weight.detach().float()


def split_name(name: str) -> tuple[int, str]:
    """``model.layers.3.self_attn.q_proj`` -> ``(3, "self_attn.q_proj")``; ``(-1, name)`` outside the layers."""
    match = _LAYER_RE.match(name)
    return (int(match.group(1)), match.group(2)) if match else (-1, name)


@dataclass(frozen=True)
class MatrixError:
    """Error of one dequantised weight matrix against the reference.

    Attributes:
        name: module name; shape: ``(out_features, in_features)``.
        rel_error: ``||W_q - W||_F / ||W||_F``; max_abs_error: ``max |W_q - W|``.
        hist_edges ``(bins + 1,)`` and hist_counts ``(bins,)``: histogram of ``W_q - W``.
        sample_original, sample_dequantized: ``(n_sample,)`` matching weights for a scatter plot.
        distinct_values: number of distinct dequantised values in the whole matrix.
        provenance: measured (the quantised copy's weights dequantised and compared).
    """

    name: str
    shape: tuple[int, int]
    rel_error: float
    max_abs_error: float
    hist_edges: np.ndarray
    hist_counts: np.ndarray
    sample_original: np.ndarray
    sample_dequantized: np.ndarray
    distinct_values: int
    provenance: Provenance = field(default_factory=lambda: measured("dequantised weights vs the reference weights"))


def matrix_error(reference_model, variant_model, name: str, bins: int = 80, n_sample: int = 4000,
                 seed: int = 0) -> MatrixError:
    """Compare one weight matrix of a variant with the reference's.

    Raises:
        ValueError: ``name`` is not a quantisable linear layer of the model.
    """
    import torch

    names = quantizable_linear_names(reference_model)
    if name not in names:
        raise ValueError(f"{name!r} is not a linear layer of this model; for example {names[:3]}.")
    original = reference_model.get_submodule(name).weight.detach().float().cpu()
    deq = dequantized_weight(variant_model.get_submodule(name)).cpu()
    err = (deq - original).reshape(-1).numpy()
    counts, edges = np.histogram(err, bins=bins)
    rng = np.random.default_rng(seed)
    flat_o, flat_d = original.reshape(-1).numpy(), deq.reshape(-1).numpy()
    pick = rng.choice(flat_o.size, size=min(n_sample, flat_o.size), replace=False)
    rel = float(torch.linalg.vector_norm(deq - original) / torch.linalg.vector_norm(original).clamp_min(1e-30))
    return MatrixError(name=name, shape=tuple(original.shape), rel_error=rel, max_abs_error=float(np.abs(err).max()),
                       hist_edges=edges, hist_counts=counts, sample_original=flat_o[pick],
                       sample_dequantized=flat_d[pick], distinct_values=int(np.unique(flat_d).size))


@dataclass(frozen=True)
class ErrorMap:
    """Relative error of every quantised matrix, as a grid.

    Attributes:
        layers: ``(n_layers,)`` layer indices; projections: projection names (columns).
        rel_error: ``(n_layers, n_projections)`` ``||W_q - W||_F / ||W||_F`` (NaN where absent).
        provenance: measured (every quantised matrix dequantised and compared).
    """

    layers: np.ndarray
    projections: tuple[str, ...]
    rel_error: np.ndarray
    provenance: Provenance = field(default_factory=lambda: measured("dequantised weights vs the reference weights"))


def _grid(names: list[str]):
    parts = [split_name(n) for n in names]
    layers = sorted({layer for layer, _ in parts})
    projections = tuple(dict.fromkeys(proj for _, proj in parts))
    return parts, layers, projections


def error_map(reference_model, variant_model) -> ErrorMap:
    """Relative Frobenius error of every quantisable linear layer, arranged layers × projections."""
    import torch

    names = quantizable_linear_names(reference_model)
    parts, layers, projections = _grid(names)
    grid = np.full((len(layers), len(projections)), np.nan)
    for name, (layer, proj) in zip(names, parts):
        w = reference_model.get_submodule(name).weight.detach().float().cpu()
        dq = dequantized_weight(variant_model.get_submodule(name)).cpu()
        grid[layers.index(layer), projections.index(proj)] = float(
            torch.linalg.vector_norm(dq - w) / torch.linalg.vector_norm(w).clamp_min(1e-30))
    return ErrorMap(np.array(layers), projections, grid)


@dataclass(frozen=True)
class OutlierCounts:
    """LLM.int8 outlier features on one input.

    Attributes:
        threshold: activation magnitude above which a feature column runs in 16 bit.
        layers, projections: grid axes as in :class:`ErrorMap`.
        counts: ``(n_layers, n_projections)`` input features with ``max |x| > threshold``.
        in_features: ``(n_projections,)`` input width of each projection.
        max_abs: ``(n_layers, n_projections)`` largest input magnitude seen.
        provenance: measured (forward hooks on the projections' inputs, one pass of the engine).
    """

    threshold: float
    layers: np.ndarray
    projections: tuple[str, ...]
    counts: np.ndarray
    in_features: np.ndarray
    max_abs: np.ndarray
    provenance: Provenance = field(default_factory=lambda: measured("forward hooks on the projections' inputs"))


def _input_hooks(names: list[str], store: dict) -> list:
    """Per-pass patches recording, per named layer, the running max of |input| over positions:
    ``store[name]`` ``(in_features,)``."""
    import torch

    patches = []
    for name in names:
        def hook(module, args, _name=name):
            x = args[0].detach().float().abs().reshape(-1, args[0].shape[-1]).amax(0)
            store[_name] = x if _name not in store else torch.maximum(store[_name], x)
        patches.append(PreForwardHook(name, hook))
    return patches


def int8_outliers(engine, ids: list[int], threshold: float = 6.0) -> OutlierCounts:
    """Count the activation features above the LLM.int8 threshold at every linear layer's input.

    Runs one ``Engine.forward`` pass of ``ids`` on the reference model with input hooks as per-pass patches
    (:class:`explorer.core.patches.PreForwardHook`), installed and removed inside that locked pass, so no other
    user's pass sees them.
    """
    names = quantizable_linear_names(engine.model)
    parts, layers, projections = _grid(names)
    store: dict = {}
    engine.forward(ids, logits_to_keep=1, patches=_input_hooks(names, store))
    counts = np.zeros((len(layers), len(projections)), dtype=np.int64)
    max_abs = np.zeros((len(layers), len(projections)))
    widths = np.zeros(len(projections), dtype=np.int64)
    for name, (layer, proj) in zip(names, parts):
        feat = store[name].cpu().numpy()
        i, j = layers.index(layer), projections.index(proj)
        counts[i, j] = int((feat > threshold).sum())
        max_abs[i, j] = float(feat.max())
        widths[j] = feat.size
    return OutlierCounts(float(threshold), np.array(layers), projections, counts, widths, max_abs,
                         measured("Engine.forward with hooks on the projections' inputs", model=engine.name))
