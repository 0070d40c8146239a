"""Per-head statistics, first-token sink removal and aggregate views of captured attention.

Everything here works on numpy arrays of attention probabilities shaped
``(num_layers, num_heads, q_len, k_len)`` (rows sum to 1) and never touches the model.

Sources:
- per-head entropy, attention to the first token, attended distance and previous-token heads follow
  Clark et al. 2019, "What Does BERT Look At? An Analysis of BERT's Attention" and Vig & Belinkov 2019;
- the first-token "attention sink": Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks";
- attention rollout: Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"
  (``Ã_l = (1 - r)·A_l + r·I`` with ``A_l`` the head mean and ``r = 0.5`` for the residual stream;
  rollout up to layer ``l`` is ``Ã_l · Ã_{l-1} · … · Ã_0``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def _entropy(layer: np.ndarray) -> np.ndarray:
    p = layer.astype(np.float32, copy=False)
    return -(p * np.log(np.maximum(p, 1e-30))).sum(-1).mean(-1)


def _first_token(layer: np.ndarray) -> np.ndarray:
    return layer[..., 0].astype(np.float32).mean(-1)


def _mean_distance(layer: np.ndarray) -> np.ndarray:
    q_len, k_len = layer.shape[-2:]
    distance = np.abs(np.arange(q_len)[:, None] - np.arange(k_len)[None, :]).astype(np.float32)
    return (layer.astype(np.float32, copy=False) * distance).sum(-1).mean(-1)


def _previous_token(layer: np.ndarray) -> np.ndarray:
    q_len = layer.shape[-2]
    if q_len < 2:
        return np.zeros(layer.shape[0], dtype=np.float32)
    rows = np.arange(1, q_len)
    return layer[:, rows, rows - 1].astype(np.float32).mean(-1)


@dataclass(frozen=True)
class Stat:
    """One per-head statistic: ``fn`` maps one layer ``(num_heads, q_len, k_len)`` to ``(num_heads,)``."""

    fn: Callable[[np.ndarray], np.ndarray]
    label: str
    unit: str


# name -> statistic; every value is averaged over the query rows of the prompt.
STATS: dict[str, Stat] = {
    "entropy": Stat(_entropy, "Entropy of each row (how spread out a head looks)", "nats"),
    "first_token": Stat(_first_token, "Attention on the first token (the sink)", "share of the row"),
    "mean_distance": Stat(_mean_distance, "Mean attended distance |query − key|", "tokens"),
    "previous_token": Stat(_previous_token, "Attention on the previous token", "share of the row"),
}


def head_stats(attn: np.ndarray, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per-head statistics, averaged over query rows.

    Args:
        attn: ``(num_layers, num_heads, q_len, k_len)`` probabilities.
        names: statistics to compute (default: all of :data:`STATS`).
    Returns:
        name -> float32 ``(num_layers, num_heads)``; entropy in nats, first_token and previous_token as
        shares of a row (0–1), mean_distance in tokens.
    Raises:
        ValueError: an unknown statistic name.
    """
    names = list(names or STATS)
    unknown = [n for n in names if n not in STATS]
    if unknown:
        raise ValueError(f"Unknown statistic {unknown[0]!r}; choose from {', '.join(STATS)}.")
    out = {name: np.zeros(attn.shape[:2], dtype=np.float32) for name in names}
    for layer in range(attn.shape[0]):  # one layer at a time keeps temporaries small at 512 tokens
        for name in names:
            out[name][layer] = STATS[name].fn(attn[layer])
    return out


def remove_sink(pattern: np.ndarray, sink: int = 0) -> np.ndarray:
    """Hide the first-token sink: zero key column ``sink`` and renormalise each row to sum to 1.

    Args:
        pattern: ``(..., q_len, k_len)`` probabilities.
        sink: key position to hide (the first token by default).
    Returns:
        float32 array of the same shape; rows whose only weight was on the sink (the first query row
        of a causal model) become all zeros instead of dividing by zero.
    """
    out = np.array(pattern, dtype=np.float32, copy=True)
    out[..., sink] = 0.0
    total = out.sum(-1, keepdims=True)
    np.divide(out, total, out=out, where=total > 0)
    return out


def mean_over_heads(attn: np.ndarray, layer: int) -> np.ndarray:
    """Mean of every head of ``layer``: ``(q_len, k_len)``, rows still sum to 1."""
    return attn[layer].astype(np.float32).mean(0)


def mean_over_kv_group(attn: np.ndarray, kv_head_of_head: np.ndarray, layer: int, kv_head: int) -> np.ndarray:
    """Mean of the query heads of ``layer`` that read key/value head ``kv_head``: ``(q_len, k_len)``.

    Raises:
        ValueError: no query head reads ``kv_head``.
    """
    heads = np.flatnonzero(np.asarray(kv_head_of_head) == kv_head)
    if heads.size == 0:
        raise ValueError(f"KV head {kv_head} does not exist: this model has KV heads 0 to {int(np.max(kv_head_of_head))}.")
    return attn[layer, heads].astype(np.float32).mean(0)


def rollout(attn: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """Attention rollout across layers (Abnar & Zuidema 2020), cumulative.

    Args:
        attn: ``(num_layers, num_heads, q_len, k_len)`` with ``q_len == k_len`` (a full prompt).
        residual: weight ``r`` of the identity standing in for the residual connection; 0 gives the plain
            product of head means, 0.5 is the paper's choice.
    Returns:
        float32 ``(num_layers, q_len, k_len)``: entry ``l`` is ``Ã_l · … · Ã_0`` with
        ``Ã = (1 - r)·mean_heads(A) + r·I``; rows sum to 1. With one layer and ``r = 0`` it equals that layer's mean.
    Raises:
        ValueError: ``residual`` outside [0, 1] or a non-square pattern.
    """
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"The residual weight must lie between 0 and 1, got {residual}.")
    q_len, k_len = attn.shape[-2:]
    if q_len != k_len:
        raise ValueError("Rollout needs square patterns (every token as query and key).")
    eye = np.eye(q_len, dtype=np.float32)
    out = np.empty((attn.shape[0], q_len, k_len), dtype=np.float32)
    current = eye
    for layer in range(attn.shape[0]):
        step = (1.0 - residual) * attn[layer].astype(np.float32).mean(0) + residual * eye
        current = step @ current
        out[layer] = current
    return out


@dataclass(frozen=True)
class View:
    """An aggregate mode of the detail view: ``fn(attn, kv_head_of_head, layer, head, residual) -> (q_len, k_len)``."""

    fn: Callable[..., np.ndarray]
    title: Callable[[int, int, int], str]


VIEWS: dict[str, View] = {
    "head": View(lambda a, kv, layer, head, r: a[layer, head].astype(np.float32),
                 lambda layer, head, kv: f"layer {layer} · head {head} (KV head {kv})"),
    "mean over heads": View(lambda a, kv, layer, head, r: mean_over_heads(a, layer),
                            lambda layer, head, kv: f"layer {layer} · mean over all heads"),
    "mean over KV group": View(lambda a, kv, layer, head, r: mean_over_kv_group(a, kv, layer, int(kv[head])),
                               lambda layer, head, kv: f"layer {layer} · mean over the heads sharing KV head {kv}"),
    "rollout": View(lambda a, kv, layer, head, r: rollout(a[: layer + 1], r)[-1],
                    lambda layer, head, kv: f"rollout through layers 0–{layer}"),
}


def view_pattern(attn: np.ndarray, kv_head_of_head: np.ndarray, mode: str, layer: int, head: int,
                 hide_sink: bool = False, residual: float = 0.5) -> tuple[np.ndarray, str]:
    """The ``(q_len, k_len)`` matrix a detail view draws, and its title.

    Args:
        attn: ``(num_layers, num_heads, q_len, k_len)``.
        kv_head_of_head: ``(num_heads,)`` key/value head of each query head.
        mode: a key of :data:`VIEWS`.
        layer, head: the chosen layer and query head (the head picks the KV group in group mode).
        hide_sink: remove the first-token column and renormalise rows (title says "renormalised").
        residual: rollout's residual weight.
    Raises:
        ValueError: unknown mode, layer or head out of range.
    """
    if mode not in VIEWS:
        raise ValueError(f"Unknown view {mode!r}; choose from {', '.join(VIEWS)}.")
    if not 0 <= layer < attn.shape[0] or not 0 <= head < attn.shape[1]:
        raise ValueError(f"Layer {layer} / head {head} is outside this model "
                         f"({attn.shape[0]} layers × {attn.shape[1]} heads).")
    view = VIEWS[mode]
    pattern = view.fn(attn, kv_head_of_head, layer, head, residual)
    title = view.title(layer, head, int(kv_head_of_head[head]))
    if hide_sink:
        pattern = remove_sink(pattern)
        title += " — first token hidden, rows renormalised"
    return pattern, title
