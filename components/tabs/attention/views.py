"""Attention as lines between tokens (one layer) and the generation timeline.

The line view draws query tokens on the left and key tokens on the right, one line per kept edge with
opacity growing with its weight (the style of Vig 2019, "A Multiscale Visualization of Attention in the
Transformer Model", BertViz). Unlike drawing all ``n²`` lines, weak edges are pruned (per query only the
strongest ``top_k`` above ``min_weight``, and at most ``max_edges`` overall) and lines are grouped into a
few opacity buckets, one trace each, so 512 tokens stay fast.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.tabs.attention.figures import COLORSCALE, TEMPLATE, axis_labels

OPACITY_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.01)
LABELS_UP_TO = 120  # token labels are drawn as text up to this many tokens (hover always works)


def prune_edges(pattern: np.ndarray, top_k: int = 4, min_weight: float = 0.02,
                max_edges: int = 4000) -> list[tuple[int, int, float]]:
    """The edges a line view keeps: ``(query, key, weight)`` sorted by weight, strongest first.

    Args:
        pattern: ``(q_len, k_len)`` weights.
        top_k: strongest keys kept per query.
        min_weight: weights below this are dropped.
        max_edges: overall cap on edges.
    """
    pattern = np.nan_to_num(np.asarray(pattern, dtype=np.float32))
    k = min(top_k, pattern.shape[1])
    keys = np.argpartition(-pattern, k - 1, axis=1)[:, :k]
    queries = np.repeat(np.arange(pattern.shape[0]), k)
    keys = keys.reshape(-1)
    weights = pattern[queries, keys]
    keep = weights >= min_weight
    order = np.argsort(-weights[keep], kind="stable")[:max_edges]
    return [(int(q), int(kk), float(w)) for q, kk, w in zip(queries[keep][order], keys[keep][order],
                                                           weights[keep][order])]


def lines_figure(pattern: np.ndarray, tokens, title: str, top_k: int = 4, min_weight: float = 0.02,
                 max_edges: int = 4000) -> go.Figure:
    """Token-to-token lines for one pattern; line opacity ∝ weight, weak edges pruned (see :func:`prune_edges`)."""
    n = len(tokens)
    edges = prune_edges(pattern, top_k, min_weight, max_edges)
    fig = go.Figure()
    lower = 0.0
    for upper in OPACITY_BUCKETS:
        xs, ys = [], []
        for q, k, w in edges:
            if lower <= w < upper:
                xs += [0, 1, None]
                ys += [q, k, None]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                                     line=dict(color="#1f4e9c", width=2), opacity=min(1.0, max(0.08, upper))))
        lower = upper
    labels = list(tokens)
    text_mode = "text+markers" if n <= LABELS_UP_TO else "markers"
    for x, pos in ((0, "middle left"), (1, "middle right")):
        fig.add_trace(go.Scatter(x=[x] * n, y=list(range(n)), mode=text_mode, text=labels, textposition=pos,
                                 marker=dict(size=4, color="#444"), showlegend=False,
                                 hovertemplate="%{y}·%{text}<extra></extra>"))
    fig.update_xaxes(range=[-0.6, 1.6], showticklabels=True, tickvals=[0, 1], ticktext=["query", "key"],
                     showgrid=False, zeroline=False)
    fig.update_yaxes(autorange="reversed", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(template=TEMPLATE, height=int(min(1800, max(320, 16 * n + 100))),
                      title=dict(text=f"{title} · {len(edges)} strongest edges kept (≤{top_k} per query, "
                                      f"weight ≥ {min_weight})", font=dict(size=13)),
                      margin=dict(l=20, r=20, t=60, b=30))
    return fig


def timeline_figure(result, rows: np.ndarray, step: int, title: str) -> go.Figure:
    """Generation timeline: every step's attention row (top) and the chosen step's row as bars (bottom).

    Args:
        result: an ``explorer.attention.timeline.TimelineResult``.
        rows: ``(steps, k_len)`` rows for the chosen layer/head/aggregate (``timeline_rows``).
        step: the step to show as bars (clipped to the recorded steps).
        title: what the rows are (layer/head/aggregate, renormalised or not).
    """
    steps, k_len = rows.shape
    step = int(min(max(step, 0), steps - 1))
    labels = axis_labels(result.tokens)[:k_len]
    valid = np.arange(k_len)[None, :] <= (result.prompt_len - 1 + np.arange(steps))[:, None]
    z = np.where(valid, np.round(rows, 4), np.nan).astype(np.float32)
    step_labels = [f"step {s}: {result.query_position(s)}·{result.tokens[result.query_position(s)]} → "
                   f"{result.generated[s]}" for s in range(steps)]
    fig = make_subplots(rows=2, cols=1, row_heights=[0.6, 0.4], vertical_spacing=0.18, subplot_titles=(
        "each step's new query row (query ↓, key →)",
        f"step {step}: query {step_labels[step].split(': ', 1)[1]}"))
    fig.add_trace(go.Heatmap(z=z, x=labels, y=step_labels, colorscale=COLORSCALE, zmin=0, hoverongaps=False,
                             colorbar=dict(len=0.55, y=0.75),
                             hovertemplate="%{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>"), row=1, col=1)
    fig.add_shape(type="rect", x0=-0.5, x1=k_len - 0.5, y0=step - 0.5, y1=step + 0.5,
                  line=dict(color="#d62728", width=2), row=1, col=1)
    bar_len = result.prompt_len + step
    colors = ["#1f77b4" if i < result.prompt_len else "#ff7f0e" for i in range(bar_len)]
    fig.add_trace(go.Bar(x=labels[:bar_len], y=np.round(rows[step, :bar_len], 4), marker_color=colors,
                         showlegend=False, hovertemplate="key %{x}<br>weight %{y:.4f}<extra></extra>"), row=2, col=1)
    fig.update_xaxes(tickangle=-60, tickfont=dict(size=9), showgrid=False)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=9), showgrid=False, row=1, col=1)
    fig.update_yaxes(title_text="weight", row=2, col=1)
    generated = "".join(result.generated)
    fig.update_layout(template=TEMPLATE, height=int(min(1400, max(560, 18 * steps + 460))),
                      margin=dict(l=160, r=30, t=80, b=90),
                      title=dict(text=f"{title} · generated: {generated!r} (orange bars = generated tokens)",
                                 font=dict(size=13)))
    return fig
