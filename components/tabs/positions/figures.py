"""Figures of the Positions tab: RoPE angles and float error, context extension, attention cost.

Inputs are the frozen results of ``explorer.positions`` (numpy arrays, dataclasses); no torch here.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.positions.rope import angle_table

TEMPLATE = "none"
COLORS = {"eager": "#d62728", "sdpa": "#1f77b4", "none": "#7f7f7f", "linear": "#1f77b4", "dynamic": "#2ca02c",
          "yarn": "#9467bd"}


def angles_figure(result) -> go.Figure:
    """Heatmaps of ``cos(position x inv_freq)`` per dimension pair (y) against position (x), one per RoPE base
    (Gemma: global and local side by side), with the query/key positions i, j and i+offset, j+offset marked."""
    bases = result.bases
    i, j = result.positions
    top = max(i, j) + result.offset
    fig = make_subplots(rows=1, cols=len(bases), subplot_titles=[f"{b.label}, base {b.rope_theta:,.0f}"
                                                                 for b in bases], horizontal_spacing=0.08)
    for col, base in enumerate(bases, start=1):
        positions, angles = angle_table(base.inv_freq, int(top * 1.05) + 1)
        fig.add_trace(go.Heatmap(x=positions, y=np.arange(len(base.inv_freq)), z=np.cos(angles), zmin=-1, zmax=1,
                                 colorscale="RdBu", showscale=col == 1, colorbar=dict(title="cos(angle)"),
                                 hovertemplate="position %{x:.0f}<br>pair %{y}<br>cos %{z:.3f}<extra></extra>"),
                      row=1, col=col)
        for x, name, dash in ((i, "i", "solid"), (j, "j", "solid"), (i + result.offset, "i+offset", "dot"),
                              (j + result.offset, "j+offset", "dot")):
            fig.add_vline(x=x, line=dict(color="black", dash=dash, width=1), row=1, col=col,
                          annotation_text=name, annotation_position="top")
        fig.update_xaxes(title_text="position (tokens)", row=1, col=col)
        fig.update_yaxes(title_text="dimension pair (fast to slow)", row=1, col=col)
    fig.update_layout(template=TEMPLATE, height=420, margin=dict(l=60, r=30, t=70, b=50),
                      title="RoPE rotation per dimension pair, read from the model's rotary module")
    return fig


def shift_figure(result) -> go.Figure:
    """Score of every layer (one query head) at (i, j) and at (i+offset, j+offset), RoPE vs absolute."""
    h = result.head
    layers = np.arange(result.rope.scores.shape[0])
    fig = make_subplots(rows=1, cols=2, subplot_titles=[
        f"RoPE: max relative change {result.rope.max_relative_change:.1e}",
        f"absolute positions added: max relative change {result.absolute.max_relative_change:.2f}"])
    for col, check in ((1, result.rope), (2, result.absolute)):
        fig.add_trace(go.Scatter(x=layers, y=check.scores[:, h], mode="lines+markers", name="at (i, j)",
                                 line=dict(color="#1f77b4"), showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=layers, y=check.shifted[:, h], mode="markers", name="at (i+offset, j+offset)",
                                 marker=dict(color="#d62728", symbol="x", size=9), showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="layer", row=1, col=col)
    fig.update_yaxes(title_text=f"score q.k/sqrt(d), head {h}", row=1, col=1)
    fig.update_layout(template=TEMPLATE, height=360, margin=dict(l=60, r=30, t=60, b=50))
    return fig


def growth_figure(result) -> go.Figure:
    """Float error against offset (log-log): max relative score change and max fp32 angle error."""
    keep = result.growth_offsets > 0
    x = result.growth_offsets[keep]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=result.growth_change[keep], mode="lines+markers",
                             name="max relative score change (all layers, heads)"))
    fig.add_trace(go.Scatter(x=x, y=result.growth_angle_error[keep], mode="lines+markers",
                             name="max fp32 angle error (rad)", line=dict(dash="dot")))
    fig.add_hline(y=1e-4, line=dict(color="gray", dash="dash"), annotation_text="1e-4")
    fig.update_layout(template=TEMPLATE, height=360, xaxis=dict(type="log", title="offset (tokens)"),
                      yaxis=dict(type="log", title="error"), margin=dict(l=60, r=30, t=40, b=50),
                      title="Shift invariance is exact in maths; float32 angles lose it as positions grow")
    return fig


def extension_figure(result) -> go.Figure:
    """Perplexity against the longest distance, one line per (scaling, factor); the trained length marked."""
    fig = go.Figure()
    keys = []
    for r in result.rows:
        if (r.scaling, r.factor) not in keys:
            keys.append((r.scaling, r.factor))
    for scaling, factor in keys:
        rows = [r for r in result.rows if r.scaling == scaling and r.factor == factor]
        name = scaling if scaling == "none" else f"{scaling} x{factor:g}"
        fig.add_trace(go.Scatter(x=[r.last_position for r in rows], y=[r.perplexity for r in rows],
                                 mode="lines+markers", name=name, line=dict(color=COLORS.get(scaling))))
    fig.add_vline(x=result.trained_length, line=dict(color="black", dash="dash"),
                  annotation_text=f"trained length {result.trained_length:,}")
    fig.update_layout(template=TEMPLATE, height=400, xaxis=dict(title="longest query-key distance (tokens)"),
                      yaxis=dict(type="log", title="perplexity of the second half"),
                      margin=dict(l=60, r=30, t=40, b=50))
    return fig


def cost_figure(result) -> go.Figure:
    """ms per forward and peak attention-step bytes against length, eager vs SDPA, with the n^2 formula."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["time per forward (ms)", "peak bytes of one attention step"])
    for impl in ("eager", "sdpa"):
        rows = [r for r in result.rows if r.implementation == impl]
        x = [r.length for r in rows]
        fig.add_trace(go.Scatter(x=x, y=[r.ms for r in rows], mode="lines+markers", name=impl,
                                 line=dict(color=COLORS[impl])), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[r.peak_bytes for r in rows], mode="lines+markers", name=f"{impl} bytes",
                                 line=dict(color=COLORS[impl]), showlegend=False), row=1, col=2)
    eager = [r for r in result.rows if r.implementation == "eager"]
    fig.add_trace(go.Scatter(x=[r.length for r in eager], y=[r.formula_bytes for r in eager], mode="lines",
                             name="heads x n^2 x bytes", line=dict(color="black", dash="dash")), row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(title_text="sequence length (tokens)", type="log", row=1, col=col)
        fig.update_yaxes(type="log", row=1, col=col)
    fig.update_layout(template=TEMPLATE, height=400, margin=dict(l=60, r=30, t=60, b=50))
    return fig
