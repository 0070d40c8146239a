"""Figures of the Training & scale tab's scaling section: IsoFLOP curves and the compute-optimal frontier, the
C = 6ND calculator, and the mixture-of-experts comparison.

Inputs are the JSON dicts of :mod:`explorer.scaling` (``/scaling_fit``, the calculator, ``/moe_compare``), so the
figures draw exactly what the APIs return. Pure: no torch, no state.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
LAYOUT = dict(margin=dict(l=60, r=30, t=70, b=45), legend=dict(orientation="h", y=-0.25))
GREY = "#888"


def _law(fit: dict, n, d):
    return fit["E"] + fit["A"] / np.asarray(n, float) ** fit["alpha"] + fit["B"] / np.asarray(d, float) ** fit["beta"]


def _optimal_n(fit: dict, compute):
    total = fit["alpha"] + fit["beta"]
    g = (fit["alpha"] * fit["A"] / (fit["beta"] * fit["B"])) ** (1 / total)
    return g * (np.asarray(compute, float) / 6) ** (fit["beta"] / total)


def isoflop_figure(data: dict | None) -> go.Figure:
    """Left: IsoFLOP curves, final loss against N for each budget (markers: the stored runs; lines: our fitted law
    along ``D = C / 6N``; hollow: runs too short to fit). Right: compute-optimal N against compute, our fit
    beside Hoffmann et al.'s, the chosen compute marked with its bootstrap interval."""
    # no subplot titles: the provenance badge sits above the plot area's top right
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.12)
    if data:
        runs, fit = data["runs"], data["fit"]
        budgets = sorted({r["budget"] for r in runs})
        sizes = np.array([r["non_embedding_params"] for r in runs], float)
        grid_n = np.geomspace(sizes.min() / 1.5, sizes.max() * 1.5, 80)
        for i, c in enumerate(budgets):
            color = COLORS[i % len(COLORS)]
            pts = sorted((r for r in runs if r["budget"] == c), key=lambda r: r["non_embedding_params"])
            fig.add_trace(go.Scatter(x=[r["non_embedding_params"] for r in pts], y=[r["loss"] for r in pts],
                                     mode="markers", name=f"C = {c:.2g} (runs)",
                                     marker=dict(color=color, size=9, symbol=[
                                         "circle" if r.get("in_fit", True) else "circle-open" for r in pts]),
                                     hovertext=[f"{r['key']}: {r['steps']} steps" + (
                                         "" if r.get("in_fit", True) else " (too short: not fitted)")
                                         for r in pts]), 1, 1)
            fig.add_trace(go.Scatter(x=grid_n, y=_law(fit, grid_n, c / (6 * grid_n)), mode="lines",
                                     line=dict(color=color, dash="dot"), name=f"C = {c:.2g} (fit)", showlegend=False),
                          1, 1)
        lo, hi = data["grid_range"]
        span = np.geomspace(min(lo, data["compute"]) / 3, max(hi, data["compute"]) * 3, 60)
        fig.add_trace(go.Scatter(x=span, y=_optimal_n(fit, span), mode="lines", line=dict(color=COLORS[0]),
                                 name="N_opt: our fit"), 1, 2)
        pub = data["published_fit"]
        fig.add_trace(go.Scatter(x=span, y=_optimal_n(pub, span), mode="lines", line=dict(color=GREY, dash="dash"),
                                 name="N_opt: Hoffmann et al. 2022 fit"), 1, 2)
        best = [min((r for r in runs if r["budget"] == c), key=lambda r: r["loss"]) for c in budgets]
        fig.update_yaxes(range=[min(r["loss"] for r in runs) * 0.9,
                                max(r["loss"] for r in runs if r.get("in_fit", True)) * 1.25], row=1, col=1)
        fig.add_trace(go.Scatter(x=budgets, y=[r["non_embedding_params"] for r in best], mode="markers",
                                 marker=dict(symbol="diamond", size=10, color=COLORS[2]),
                                 name="best run of each budget"), 1, 2)
        minima = data.get("isoflop_minima") or []
        if minima:
            fig.add_trace(go.Scatter(x=[m["budget"] for m in minima], y=[m["params"] for m in minima],
                                     mode="markers", name="IsoFLOP parabola minimum (Approach 2; open: outside sizes)",
                                     marker=dict(size=10, color=COLORS[3], symbol=[
                                         "triangle-up" if m["in_range"] else "triangle-up-open" for m in minima])),
                          1, 2)
        band = data["intervals"].get("optimal_params", [data["optimal_params"]] * 2)
        fig.add_trace(go.Scatter(x=[data["compute"]], y=[data["optimal_params"]], mode="markers",
                                 marker=dict(size=12, color=COLORS[1], symbol="star"),
                                 error_y=dict(type="data", symmetric=False, array=[band[1] - data["optimal_params"]],
                                              arrayminus=[data["optimal_params"] - band[0]]),
                                 name="chosen compute (90 % bootstrap)"), 1, 2)
        fig.add_vrect(x0=lo, x1=hi, fillcolor=GREY, opacity=0.12, line_width=0, row=1, col=2)
    fig.update_xaxes(type="log", title_text="non-embedding parameters N", row=1, col=1)
    fig.update_yaxes(title_text="final validation loss (nats/token)", row=1, col=1)
    fig.update_xaxes(type="log", title_text="training compute C = 6ND (FLOPs; shaded: the grid)", row=1, col=2)
    fig.update_yaxes(type="log", title_text="compute-optimal N (parameters)", row=1, col=2)
    fig.update_layout(height=430, title="IsoFLOP curves (left) and the compute-optimal model size (right), from runs "
                      "made on this machine", **LAYOUT)
    return fig


def calculator_figure(data: dict | None) -> go.Figure:
    """Known models as points on parameters (x) against training tokens (y), log-log, with Chinchilla's 20 tokens
    per parameter as a line, lines of equal compute, and the calculator's point."""
    fig = go.Figure()
    if data:
        models = data["models"]
        n = np.geomspace(1e7, 1e12, 50)
        fig.add_trace(go.Scatter(x=n, y=20 * n, mode="lines", line=dict(color=GREY, dash="dash"),
                                 name="Chinchilla: 20 tokens per parameter"))
        for c in (1e20, 1e22, 1e24):
            fig.add_trace(go.Scatter(x=n, y=c / (6 * n), mode="lines", line=dict(color=GREY, width=1, dash="dot"),
                                     name=f"C = {c:.0e} FLOPs", showlegend=False, hoverinfo="name"))
            fig.add_annotation(x=np.log10(3e7), y=np.log10(c / (6 * 3e7)), text=f"C = 10^{int(np.log10(c))} FLOPs",
                               showarrow=False, xanchor="left", yanchor="bottom", font=dict(size=10, color=GREY))
        for group, color, symbol in ((True, COLORS[1], "star"), (False, COLORS[0], "circle")):
            pts = [m for m in models if m["embedded"] is group]
            fig.add_trace(go.Scatter(x=[m["params"] for m in pts], y=[m["tokens"] for m in pts], mode="markers+text",
                                     text=[m["name"] for m in pts],
                                     textposition=["bottom center" if m["name"] == "Chinchilla" else "top center"
                                                   for m in pts],
                                     marker=dict(size=11 if group else 9, color=color, symbol=symbol),
                                     name="embedded models" if group else "known models",
                                     hovertext=[f"{m['name']}: {m['tokens_per_param']:,.0f} tokens/param; "
                                                f"{m['tokens_source']}" for m in pts]))
        fig.add_trace(go.Scatter(x=[data["params"]], y=[data["tokens"]], mode="markers",
                                 marker=dict(size=14, color=COLORS[2], symbol="x"), name="your N and D"))
    fig.update_xaxes(type="log", title_text="parameters N", range=[7, 12.2])
    fig.update_yaxes(type="log", title_text="training tokens D", range=[8, 17])
    fig.update_layout(height=430, title="C = 6ND: compute-optimal and over-trained models", **LAYOUT)
    return fig


def moe_figure(data: dict | None) -> go.Figure:
    """Top left: loss against training FLOPs, dense vs MoE (and MoE without the auxiliary loss). Top right: the
    load-balancing loss per step. Bottom: each expert's share of the routed tokens per step, with and without
    the auxiliary loss (1/experts is balanced)."""
    fig = make_subplots(rows=2, cols=2, vertical_spacing=0.2, horizontal_spacing=0.12,
                        subplot_titles=("", "", "Router load: with the auxiliary loss", "Router load: without it"))
    if data and data.get("dense_losses"):
        fig.add_trace(go.Scatter(x=data["dense_flops"][:len(data["dense_losses"])], y=data["dense_losses"],
                                 name=f"dense ({data['dense_params']:,} params)", line=dict(color=COLORS[0])), 1, 1)
        if data.get("moe_losses"):
            fig.add_trace(go.Scatter(x=data["moe_flops"][:len(data["moe_losses"])], y=data["moe_losses"],
                                     name=f"MoE ({data['active_params']:,} active of {data['total_params']:,})",
                                     line=dict(color=COLORS[1])), 1, 1)
        if data.get("moe_no_aux_losses"):
            fig.add_trace(go.Scatter(x=data["moe_flops"][:len(data["moe_no_aux_losses"])], y=data["moe_no_aux_losses"],
                                     name="MoE without aux loss", line=dict(color=COLORS[1], dash="dot")), 1, 1)
        for key, name, dash in (("aux_values", "with aux loss", None), ("aux_values_no_aux", "without", "dot")):
            if data.get(key):
                fig.add_trace(go.Scatter(x=np.arange(1, len(data[key]) + 1), y=data[key], name=f"aux: {name}",
                                         line=dict(color=COLORS[3], dash=dash), showlegend=False), 1, 2)
        for col, key in ((1, "router_load"), (2, "router_load_no_aux")):
            loads = np.asarray(data.get(key) or [], float)
            if loads.size:
                shares = loads / loads.sum(axis=1, keepdims=True)
                for e in range(shares.shape[1]):
                    fig.add_trace(go.Scatter(x=np.arange(1, len(shares) + 1), y=shares[:, e], mode="lines",
                                             line=dict(color=COLORS[(e + 2) % len(COLORS)]), name=f"expert {e}",
                                             showlegend=col == 1), 2, col)
    fig.update_xaxes(type="log", title_text="training FLOPs (6 x active N x tokens)", row=1, col=1)
    fig.update_yaxes(title_text="loss (nats/token)", row=1, col=1)
    for col in (1, 2):
        fig.update_xaxes(title_text="step", row=2, col=col)
        fig.update_yaxes(title_text="share of routed tokens", rangemode="tozero", row=2, col=col)
    fig.update_xaxes(title_text="step", row=1, col=2)
    fig.update_yaxes(title_text="load-balancing loss (top_k = balanced)", row=1, col=2)
    fig.update_layout(height=640, title="A tiny mixture of experts beside a dense model: loss per training FLOP, "
                      "router load", **LAYOUT)
    return fig
