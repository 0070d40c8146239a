"""Figures of the Serving tab: live server numbers and the batching comparison (plain dicts in, plotly out)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = {"one_at_a_time": "#7f7f7f", "static": "#1f77b4", "continuous": "#2ca02c"}
LABELS = {"one_at_a_time": "one at a time", "static": "static batching", "continuous": "continuous batching"}


def live_figure(history: list[dict]) -> go.Figure:
    """Running / waiting requests, mean batch size, mean shared decode step size (rows per pass of the step
    batcher, ``step_batch_sizes``) and tokens/s over the polled ``history`` of
    ``/serving_stats`` answers (each with a ``"t"`` key: seconds since the page opened)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("requests", "generation"))
    t = [h["t"] for h in history]
    fig.add_trace(go.Scatter(x=t, y=[h["running"] for h in history], name="running", mode="lines+markers"), 1, 1)
    fig.add_trace(go.Scatter(x=t, y=[h["waiting"] for h in history], name="waiting", mode="lines+markers"), 1, 1)
    fig.add_trace(go.Scatter(x=t, y=[h["tokens_per_s"] for h in history], name="tokens/s (last 60 s)",
                             mode="lines+markers"), 1, 2)
    fig.add_trace(go.Scatter(x=t, y=[float(np.mean(h["batch_sizes"])) if h["batch_sizes"] else 0.0 for h in history],
                             name="mean batch size (last 60 s)", mode="lines+markers"), 1, 2)
    steps = [h.get("step_batch_sizes") or [] for h in history]
    fig.add_trace(go.Scatter(x=t, y=[float(np.mean(s)) if s else 0.0 for s in steps],
                             name="mean shared decode step size (last 60 s)", mode="lines+markers"), 1, 2)
    fig.update_xaxes(title_text="seconds since this page opened")
    fig.update_layout(height=340, template="plotly_white", legend_orientation="h")
    return fig


def comparison_figure(data: dict) -> go.Figure:
    """Throughput (tokens/s) per method and each request's latency (ms) from a ``Comparison.to_api()`` dict."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("throughput (generated tokens/s)", "latency per request (ms)"))
    for m in data["methods"]:
        name = m["method"]
        fig.add_trace(go.Bar(x=[LABELS.get(name, name)], y=[m["tokens_per_s"]], marker_color=COLORS.get(name),
                             name=LABELS.get(name, name), showlegend=False), 1, 1)
        fig.add_trace(go.Scatter(x=data["max_new_tokens"], y=m["latency_ms"], mode="markers",
                                 marker_color=COLORS.get(name), name=LABELS.get(name, name)), 1, 2)
    fig.update_xaxes(title_text="max_new_tokens of the request", row=1, col=2)
    fig.update_layout(height=360, template="plotly_white", legend_orientation="h")
    return fig
