"""KV cache tab, "Compare with": the measured growth of two models on the same prompt in one figure.

SmolLM2 (30 layers, 3 KV heads of dim 64) grows by the same bytes every token; Gemma 3 270M (one KV head
of dim 256, 15 of 18 layers local with a 512-token window) grows faster per token at first and then,
past 511 tokens, only through its 3 global layers. Results come from ``explorer.kv_cache``; no torch here.
"""
from __future__ import annotations

import plotly.graph_objects as go

from components.compare import label
from components.tabs.kv_cache.figures import formula_points
from explorer.kv_cache.windowed import window_note

COLOURS = ("#1f77b4", "#2ca02c")


def windowed_note(result) -> str:
    """The sliding-window sentence for a growth result (``""`` for a model without local layers)."""
    return window_note(getattr(result.shape, "windows", ()))


def compare_growth(results) -> go.Figure:
    """Measured KV bytes vs tokens of each result (markers) with its own formula (dashed line).

    Args:
        results: ``explorer.kv_cache.KVGrowthResult`` of each model, same prompt and settings.
    """
    fig = go.Figure()
    for result, colour in zip(results, COLOURS):
        s = result.shape
        xs = formula_points(s, int(result.tokens[-1]))
        fig.add_trace(go.Scatter(x=xs, y=[s.formula_bytes(int(x)) for x in xs], mode="lines",
                                 name=f"{result.model} formula", line=dict(color=colour, dash="dash"),
                                 hovertemplate="%{x} tokens: %{y:,} bytes (formula)<extra></extra>"))
        fig.add_trace(go.Scatter(x=result.tokens, y=result.measured_bytes, mode="markers",
                                 name=f"{label(result.model)} measured ({s.num_kv_heads} KV heads x {s.head_dim})",
                                 marker=dict(color=colour, size=7),
                                 hovertemplate="%{x} tokens: %{y:,} bytes (measured)<extra></extra>"))
    fig.update_layout(title="KV cache bytes vs tokens, both models on the same prompt", template="plotly_white",
                      xaxis_title="tokens in the cache", yaxis_title="KV cache (bytes)", height=420,
                      legend=dict(orientation="h", y=-0.2), title_font_size=13)
    return fig
