"""Figures of the KV cache tab: measured growth beside the formula, and decode time with vs without cache.

Inputs are the frozen results of ``explorer.kv_cache`` (numpy arrays); no torch here.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.kv_cache.whatif import format_bytes

MEASURED = "#1f77b4"
FORMULA = "#ff7f0e"
PREFILL = "#d62728"
NO_CACHE = "#d62728"


def empty_figure(message: str) -> go.Figure:
    """A blank figure with a centred message."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=320, template="plotly_white")
    return fig


def formula_points(shape, last: int) -> np.ndarray:
    """Token counts at which to draw the formula line up to ``last``: its two ends, plus each local layer's
    stopping point (``window - 1``) when the shape has sliding windows, so the bend is drawn exactly."""
    bends = {int(w) - 1 for w in getattr(shape, "windows", ()) if w and int(w) - 1 < last}
    return np.array(sorted({0, last} | bends), dtype=np.int64)


def growth_figure(result, upto: int | None = None) -> go.Figure:
    """Cache bytes vs cached tokens: measured points (prefill marked) and the formula line.

    Args:
        result: ``explorer.kv_cache.KVGrowthResult``.
        upto: show only the first ``upto`` steps (the step slider), default all.
    """
    n = len(result.tokens) if upto is None else max(1, min(int(upto), len(result.tokens)))
    tokens, measured, formula = result.tokens[:n], result.measured_bytes[:n], result.formula_bytes[:n]
    phases = np.array([s.phase for s in result.steps[:n]])
    s = result.shape
    fig = go.Figure()
    line_x = formula_points(s, int(result.tokens[-1]))
    fig.add_trace(go.Scatter(x=line_x, y=[s.formula_bytes(int(x)) for x in line_x], mode="lines", name="formula",
                             line=dict(color=FORMULA, dash="dash"),
                             hovertemplate="%{x} tokens: %{y:,} bytes (formula)<extra></extra>"))
    for phase, colour, symbol in (("prefill", PREFILL, "diamond"), ("decode", MEASURED, "circle")):
        mask = phases == phase
        if mask.any():
            fig.add_trace(go.Scatter(
                x=tokens[mask], y=measured[mask], mode="markers", name=f"measured ({phase})",
                marker=dict(color=colour, size=10 if phase == "prefill" else 7, symbol=symbol),
                customdata=np.stack([formula[mask], measured[mask] - formula[mask]], axis=-1),
                hovertemplate="%{x} tokens<br>measured %{y:,} bytes<br>formula %{customdata[0]:,}"
                              "<br>difference %{customdata[1]}<extra></extra>"))
    agree = "measured = formula at every step" if np.array_equal(measured, formula) else \
        "MEASURED DIFFERS FROM FORMULA"
    fig.update_layout(
        title=(f"{result.model}: 2 x {s.num_layers} layers x {s.num_kv_heads} KV heads x {s.head_dim} x "
               f"{s.bytes_per_element} B ({s.dtype}) = {s.bytes_per_token:,} bytes/token; {agree}"),
        xaxis_title="tokens in the cache", yaxis_title="KV cache (bytes)", template="plotly_white", height=440,
        legend=dict(orientation="h", y=-0.2), title_font_size=13)
    fig.add_vline(x=result.prompt_tokens, line_dash="dot", line_color="grey",
                  annotation_text=f"prefill: {result.prompt_tokens} prompt tokens "
                                  f"({format_bytes(int(result.measured_bytes[0]))})")
    return fig


def step_table(result, upto: int | None = None) -> list[list]:
    """Rows ``[step, phase, tokens, measured bytes, formula bytes, equal, ms]`` for the first ``upto`` steps."""
    n = len(result.steps) if upto is None else max(1, min(int(upto), len(result.steps)))
    return [[i, s.phase, s.tokens, s.measured_bytes, s.formula_bytes, s.measured_bytes == s.formula_bytes,
             round(s.ms, 2)] for i, s in enumerate(result.steps[:n])]


def timing_figure(comparison) -> go.Figure:
    """Decode ms/token against position with the cache (flat) and without it (growing), plus tokens/s.

    Args:
        comparison: ``explorer.kv_cache.CacheComparison``.
    """
    fig = make_subplots(rows=1, cols=2, column_widths=[0.72, 0.28],
                        subplot_titles=("ms per decode step", "tokens/s"))
    fig.add_trace(go.Scatter(x=comparison.positions, y=comparison.cached_ms, mode="lines+markers",
                             name="with KV cache", line=dict(color=MEASURED)), row=1, col=1)
    fig.add_trace(go.Scatter(x=comparison.positions, y=comparison.uncached_ms, mode="lines+markers",
                             name="without cache (recompute prefix)", line=dict(color=NO_CACHE)), row=1, col=1)
    fig.add_trace(go.Bar(x=["with cache", "without"], y=[comparison.cached_tokens_per_s,
                                                         comparison.uncached_tokens_per_s],
                         marker_color=[MEASURED, NO_CACHE], showlegend=False,
                         text=[f"{comparison.cached_tokens_per_s:.1f}", f"{comparison.uncached_tokens_per_s:.1f}"],
                         textposition="auto"), row=1, col=2)
    same = "identical greedy tokens" if comparison.identical_tokens else "tokens DIFFER"
    fig.update_layout(title=f"Decode time per token vs position ({same})", template="plotly_white", height=420,
                      legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text="position (tokens in context)", row=1, col=1)
    fig.update_yaxes(title_text="ms", rangemode="tozero", row=1, col=1)
    return fig


def whatif_figure(result) -> go.Figure:
    """KV cache next to the weights, and the same model as MHA / GQA / MQA (log scale, readable units).

    Args:
        result: ``explorer.kv_cache.whatif.WhatIfResult``.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("memory at this context and batch",
                                                        "same model, other attention layouts"))
    values = [float(result.weight_bytes), float(result.kv_bytes)]
    fig.add_trace(go.Bar(x=[f"weights ({result.weight_dtype})", f"KV cache ({result.cache_dtype})"], y=values,
                         text=[format_bytes(v) for v in values], textposition="auto",
                         marker_color=["#7f7f7f", MEASURED], showlegend=False), row=1, col=1)
    labels = [f"{v.label}<br>{v.num_kv_heads} KV head{'s' if v.num_kv_heads != 1 else ''}"
              + ("<br>(this model)" if v.is_actual else "")
              for v in result.variants]
    kv = [float(v.kv_bytes) for v in result.variants]
    fig.add_trace(go.Bar(x=labels, y=kv, text=[format_bytes(v) for v in kv], textposition="auto",
                         marker_color=[FORMULA if v.is_actual else "#c7c7c7" for v in result.variants],
                         showlegend=False), row=1, col=2)
    fig.update_yaxes(type="log", title_text="bytes (log scale)", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(title=(f"{result.shape.name}: {result.context:,} tokens x batch {result.batch:,} -> KV cache "
                             f"{format_bytes(result.kv_bytes)}, weights {format_bytes(result.weight_bytes)}"),
                      template="plotly_white", height=420, title_font_size=13)
    return fig
