"""Where a decoder keeps its rotary position embedding, read from the loaded model itself.

RoPE (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding", arXiv:2104.09864)
rotates each pair of query/key dimensions by ``position x inv_freq[pair]`` with
``inv_freq[p] = 1 / base ** (2p / head_dim)``. ``transformers`` builds ``inv_freq`` once, in the rotary module's
constructor (``<Model>RotaryEmbedding``), from the config's ``rope_parameters``. Llama-style models (SmolLM2) have
one module and one base; Gemma 3 keeps one set of frequencies per layer type (``sliding_attention``: local,
base 10,000; ``full_attention``: global, base 1,000,000), either as ``<layer_type>_inv_freq`` buffers of one
module or as separate modules in older releases. This file finds them and checks a model can be used at all.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.core.patches import ModuleSwap

# float32 holds every integer exactly up to 2**24; beyond it neighbouring positions collapse onto one value
# once ``position_ids.float()`` is taken (IEEE 754 single precision, 24-bit significand).
MAX_REPRESENTABLE_POSITION = 2**24


@dataclass(frozen=True)
class RopeBase:
    """One set of rotary frequencies of the loaded model.

    Attributes:
        layer_type: ``None`` when every layer shares it, else the config's layer type (``"full_attention"``,
            ``"sliding_attention"``).
        label: ``"all layers"``, ``"global (full_attention)"`` or ``"local (sliding_attention)"``.
        rope_theta: the base from ``rope_parameters`` (float).
        inv_freq: ``(head_dim // 2,)`` float32 array, radians per position for each dimension pair, read from
            the module's buffer.
        layers: indices of the decoder layers using it.
    """

    layer_type: str | None
    label: str
    rope_theta: float
    inv_freq: np.ndarray
    layers: tuple[int, ...]

    def to_api(self) -> dict:
        """JSON form: ``{"layer_type", "label", "rope_theta", "inv_freq", "layers"}``."""
        return {"layer_type": self.layer_type, "label": self.label, "rope_theta": self.rope_theta,
                "inv_freq": [float(x) for x in self.inv_freq], "layers": list(self.layers)}


def require_rope(engine, what: str = "This view") -> None:
    """Refuse a model without rotary position embeddings (MiniLM: learned absolute positions).

    Raises:
        ValueError: the model has no rotary module; the message says what it uses instead.
    """
    if decoder_core(engine) is None or rotary_module(engine) is None:
        cfg = engine.config
        kind = getattr(cfg, "position_embedding_type", None) or "learned absolute"
        limit = getattr(cfg, "max_position_embeddings", None)
        raise ValueError(f"{what} needs a decoder with rotary position embeddings (RoPE); {engine.name} uses "
                         f"{kind} position embeddings (a table of {limit} learned vectors added to the input), "
                         "so there are no rotation frequencies to read or scale. Pick smollm2-135m-instruct.")


def core_path(engine) -> str | None:
    """Dotted path (from ``engine.model``) of the module holding ``layers`` and ``rotary_emb`` (``"model"`` for
    Llama/Gemma causal LMs), or None."""
    for path in ("model", "model.language_model", "language_model.model"):
        obj: Any = engine.model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None and hasattr(obj, "layers") and hasattr(obj, "rotary_emb"):
            return path
    return None


def decoder_core(engine):
    """The module holding ``layers`` and ``rotary_emb`` (``model.model`` for Llama/Gemma causal LMs), or None."""
    path = core_path(engine)
    return None if path is None else engine.model.get_submodule(path)


def rotary_module(engine):
    """The shared model's rotary embedding module (``decoder_core(engine).rotary_emb``), or None."""
    core = decoder_core(engine)
    return None if core is None else getattr(core, "rotary_emb", None)


def text_config(engine):
    """The decoder's config (``get_text_config(decoder=True)``), where ``rope_parameters`` lives."""
    return engine.config.get_text_config(decoder=True)


def layer_types(engine) -> list[str] | None:
    """Per-layer attention types from the config (Gemma: ``sliding_attention`` / ``full_attention``), or None."""
    types = getattr(text_config(engine), "layer_types", None)
    return list(types) if types else None


def _label(layer_type: str | None) -> str:
    if layer_type is None:
        return "all layers"
    return {"full_attention": "global (full_attention)",
            "sliding_attention": "local (sliding_attention)"}.get(layer_type, layer_type)


def _theta(params: dict | None, layer_type: str | None) -> float:
    params = params or {}
    if layer_type is not None and isinstance(params.get(layer_type), dict):
        params = params[layer_type]
    return float(params.get("rope_theta", float("nan")))


def rope_bases(engine) -> list[RopeBase]:
    """Every set of rotary frequencies of the loaded model, read from its rotary module's buffers.

    Returns:
        one :class:`RopeBase` for Llama-style models; one per layer type for Gemma 3 (local and global).
    Raises:
        ValueError: no rotary module (see :func:`require_rope`).
    """
    require_rope(engine)
    rotary = rotary_module(engine)
    cfg = text_config(engine)
    params = getattr(cfg, "rope_parameters", None)
    types = layer_types(engine)
    n_layers = len(decoder_core(engine).layers)
    bases = []
    per_type = [t for t in sorted(set(types or [])) if getattr(rotary, f"{t}_inv_freq", None) is not None]
    if per_type:
        for t in per_type:
            inv = getattr(rotary, f"{t}_inv_freq").detach().float().cpu().numpy()
            bases.append(RopeBase(t, _label(t), _theta(params, t), inv,
                                  tuple(i for i, lt in enumerate(types) if lt == t)))
    else:
        inv = rotary.inv_freq.detach().float().cpu().numpy()
        bases.append(RopeBase(None, _label(None), _theta(params, None), inv, tuple(range(n_layers))))
    # global first: it is the one context extension scales
    return sorted(bases, key=lambda b: b.layer_type != "full_attention")


def cos_sin(engine, positions, layer_type: str | None = None, rotary=None):
    """``(cos, sin)`` of shape ``(1, len(positions), head_dim)`` from the model's own rotary module (float32).

    Args:
        positions: integer positions (list or 1-D array).
        layer_type: Gemma's layer type; None for single-base models.
        rotary: another rotary module (a scaled copy); default the shared model's.
    """
    import torch

    rotary = rotary if rotary is not None else rotary_module(engine)
    pos = torch.as_tensor(list(positions), dtype=torch.long, device=engine.device).unsqueeze(0)
    x = torch.zeros(1, dtype=torch.float32, device=engine.device)
    with torch.inference_mode():
        if layer_type is None:
            return rotary(x, pos)
        return rotary(x, pos, layer_type)


def apply_rotary_fn(engine):
    """The model's own ``apply_rotary_pos_emb`` (from its ``transformers`` modelling module)."""
    layer = decoder_core(engine).layers[0].self_attn
    return sys.modules[type(layer).__module__].apply_rotary_pos_emb


def check_position(value: int, name: str) -> int:
    """Refuse a position float32 cannot represent exactly (at or beyond 2**24) or below 0.

    Raises:
        ValueError: negative, or at least :data:`MAX_REPRESENTABLE_POSITION` (message names ``name``).
    """
    if value < 0:
        raise ValueError(f"{name} must be at least 0 (got {value:,}).")
    if value >= MAX_REPRESENTABLE_POSITION:
        raise ValueError(f"{name} reaches position {value:,}, beyond what the rotary embedding can represent: "
                         f"positions are turned into float32, which holds whole numbers exactly only below "
                         f"2**24 = {MAX_REPRESENTABLE_POSITION:,}, so neighbouring positions would share one angle.")
    return value


def rotary_swap(engine, replacement) -> ModuleSwap:
    """The per-pass patch that puts ``replacement`` in place of the shared model's rotary module
    (``<decoder core>.rotary_emb``) for one :meth:`Engine.forward` pass; the original is put back in ``finally``.

    Raises:
        ValueError: the model has no decoder core with a rotary module.
    """
    path = core_path(engine)
    if path is None:
        raise ValueError(f"{engine.name} has no rotary position embedding module to swap.")
    return ModuleSwap(f"{path}.rotary_emb", replacement)
