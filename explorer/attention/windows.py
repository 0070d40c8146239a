"""Local (sliding-window) and global attention layers, as in Gemma 2/3 and Mistral 7B v0.1.

A local layer lets each query see only itself and the ``sliding_window - 1`` keys before it; a global
layer sees the whole prefix (Beltagy et al. 2020, "Longformer", arXiv:2004.05150; Gemma Team 2025,
"Gemma 3 Technical Report", arXiv:2503.19786: five local layers with a 512-token window per global one
in Gemma 3 270M). The per-layer pattern comes from the config (``models.shapes.layer_windows``), never
from the architecture's name. On a prompt longer than the window a local layer's rows are cut
``sliding_window`` tokens back: every weight on a key more than ``sliding_window - 1`` positions before
the query is exactly 0.
"""
from __future__ import annotations

import numpy as np

from explorer.core.config import get_limits
from models.shapes import layer_windows

# Tokens past the window the attention cap is raised to on a windowed model, so the cut becomes visible.
WINDOW_MARGIN = 128


def layer_kinds(config) -> tuple[str, ...]:
    """``"local"`` or ``"global"`` per layer, read from ``config.layer_types`` / ``sliding_window``."""
    return tuple("local" if window else "global" for window in layer_windows(config))


def attention_cap(engine) -> int:
    """Most tokens an attention capture accepts on ``engine``'s model.

    ``Limits.max_attention_tokens`` (512), raised to ``sliding_window + WINDOW_MARGIN`` (640 for Gemma 3) on a
    model with local layers so a prompt can reach past the window; never above the model's context. The
    capture holds ``num_layers x num_heads x q_len^2`` float32 weights: 18 x 4 x 640^2 x 4 B = 118 MB for Gemma 3
    270M at 640 tokens (SmolLM2 stays at 512 tokens: 30 x 9 x 512^2 x 4 B = 283 MB).
    """
    cap = int(get_limits().max_attention_tokens)
    windows = [w for w in layer_windows(engine.config) if w] if engine.is_causal else []
    if windows:
        cap = max(cap, max(windows) + WINDOW_MARGIN)
    return min(cap, engine.context_length())


def beyond_window(attn: np.ndarray, windows) -> np.ndarray:
    """Per layer, the largest weight any query puts on a key at least ``window`` positions back.

    Args:
        attn: ``(num_layers, num_heads, q_len, k_len)`` probabilities of a causal model (keys aligned with queries).
        windows: per layer, its sliding window (0 = global).
    Returns:
        ``np.ndarray`` ``(num_layers,)`` float32: 0 for every local layer (the window is enforced), typically > 0
        for a global layer once the prompt is longer than the window; NaN for a global layer or a prompt that
        never reaches ``window`` tokens back.
    """
    num_layers, _, q_len, k_len = attn.shape
    out = np.full(num_layers, np.nan, dtype=np.float32)
    window = max((w for w in windows if w), default=0)
    if not window or q_len <= window:
        return out
    q = np.arange(q_len)[:, None]
    k = np.arange(k_len)[None, :]
    far = (q - k) >= window  # keys the local window excludes
    for layer in range(num_layers):
        out[layer] = float(np.max(np.where(far, attn[layer], 0.0)))
    return out


def window_summary(kinds, windows) -> str:
    """One line naming the local and global layers (``""`` when every layer is global)."""
    local = [i for i, kind in enumerate(kinds) if kind == "local"]
    if not local:
        return ""
    window = max(w for w in windows if w)
    global_layers = [i for i, kind in enumerate(kinds) if kind == "global"]
    return (f"{len(local)} local layers (each query sees itself and the {window - 1:,} tokens before it: sliding window "
            f"{window:,}) and {len(global_layers)} global layers ({', '.join(map(str, global_layers))}) that see the "
            "whole prefix; on a prompt longer than the window a local layer's rows are cut "
            f"{window:,} tokens back.")
