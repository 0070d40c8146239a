"""Circuits figures (result -> plotly, pure): the head-score heatmap grouped by KV head, the patching grids with
the selected cell's causal cone, and the direct-logit-attribution waterfall. Theme-neutral (transparent
backgrounds, grey grid) so light, dark and presentation modes read them; the badge is drawn above the plot area
by ``components.badge`` from the stamp the tab puts on each figure."""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.theme import neutral

TEMPLATE = "none"
KIND_LABELS = {"previous_token": "previous-token", "duplicate_token": "duplicate-token", "induction": "induction"}
SHADE = [[0.0, "rgba(128,128,128,0)"], [1.0, "rgba(128,128,128,0.6)"]]


def empty_figure(message: str) -> go.Figure:
    """A blank figure with ``message`` in the middle (before the first run)."""
    fig = go.Figure(layout={"template": TEMPLATE, "height": 240, "xaxis": {"visible": False},
                            "yaxis": {"visible": False}})
    fig.add_annotation(text=html.escape(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return neutral(fig)


def head_order(kv_head_of_head) -> list[int]:
    """Query heads ordered by the key/value head they read (stable), so a KV group's heads sit side by side."""
    return [int(h) for h in np.argsort(np.asarray(kv_head_of_head), kind="stable")]


def heads_figure(result, kind: str) -> go.Figure:
    """Heatmap of one kind's scores: rows = layers, columns = query heads grouped by KV head (``h3 kv1``).

    Args:
        result: :class:`explorer.circuits.HeadsResult`.
        kind: ``previous_token``, ``duplicate_token`` or ``induction``.
    """
    order = head_order(result.kv_head_of_head)
    scores = np.asarray(result.scores[kind])[:, order]
    columns = [f"h{h} kv{int(result.kv_head_of_head[h])}" for h in order]
    rows = [f"L{l}" for l in range(scores.shape[0])]
    fig = go.Figure(go.Heatmap(z=np.round(scores, 4), x=columns, y=rows, zmin=0, zmax=1, colorscale="Blues",
                               colorbar={"title": "score"},
                               hovertemplate="%{y} %{x}<br>score %{z:.3f}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, height=max(320, 18 * len(rows) + 120),
                      title=f"{KIND_LABELS[kind]} score of every head ({result.sequence_length} tokens: "
                            f"the first + {result.n} random, repeated)",
                      margin={"t": 70, "l": 50, "r": 20, "b": 60}, yaxis={"autorange": "reversed"})
    groups = np.asarray(result.kv_head_of_head)[order]
    for k in np.nonzero(groups[1:] != groups[:-1])[0]:  # a line between KV groups
        fig.add_vline(x=float(k) + 0.5, line={"color": "rgba(128,128,128,0.8)", "width": 2})
    return neutral(fig)


def top_rows(result, kind: str, k: int = 8) -> list[list]:
    """Table rows ``[layer, head, KV head, score]`` of the ``k`` highest-scoring heads."""
    from explorer.circuits import top_heads

    return [[t["layer"], t["head"], int(result.kv_head_of_head[t["head"]]), round(t["score"], 4)]
            for t in top_heads(result.scores[kind], k)]


def patch_figure(result, selected: tuple[int, int] | None = None) -> go.Figure:
    """The exact patching grid beside attribution patching's estimate; cells outside the selected cell's causal
    cone are shaded grey.

    Args:
        result: :class:`explorer.circuits.PatchResult` (a partial one draws the rows done so far).
        selected: ``(row, column)`` of the picked cell, or None.
    """
    from explorer.circuits import causal_cone

    rows, columns = list(result.rows), list(result.columns)
    corr = "n/a" if not np.isfinite(result.correlation) else f"{result.correlation:.2f}"
    fig = make_subplots(1, 2, horizontal_spacing=0.12)  # panel names go under the axes: the badge sits on top
    hover = "%{y} · %{x}<br>%{z:.3f}<extra></extra>"
    for col, grid in ((1, result.grid), (2, result.attribution)):
        z = np.where(np.isfinite(grid), np.round(grid, 4), None)
        fig.add_trace(go.Heatmap(z=z, x=columns, y=rows, zmid=0, zmin=-1, zmax=1, colorscale="RdBu",
                                 showscale=col == 2, colorbar={"title": "0 corrupted<br>1 clean"},
                                 hovertemplate=hover), 1, col)
        if selected is not None:
            cone = causal_cone(result.site, int(selected[0]), int(selected[1]), grid.shape)
            fig.add_trace(go.Heatmap(z=(~cone).astype(int), x=columns, y=rows, zmin=0, zmax=1, colorscale=SHADE,
                                     showscale=False, hoverinfo="skip"), 1, col)
    height = max(360, 16 * len(rows) + 160)
    fig.update_layout(template=TEMPLATE, height=height, margin={"t": 90, "l": 60, "r": 20, "b": 110},
                      title=f"{result.site}: logit({result.answer}) − logit({result.wrong_answer}), clean "
                            f"{result.clean_metric:.2f}, corrupted {result.corrupted_metric:.2f}")
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-45)
    fig.update_xaxes(title_text=f"activation patching ({result.cells_done} cells)", row=1, col=1)
    fig.update_xaxes(title_text=f"attribution patching (r = {corr})", row=1, col=2)
    return neutral(fig)


def ablation_md(result) -> str:
    """Markdown: KL, top-1 before/after, the top-5 both ways, the continuations side by side."""
    def top(items):
        return ", ".join(f"{html.escape(t)} {p:.3f}" for t, p in items)

    changed = "changed" if result.top1_before != result.top1_after else "unchanged"
    return (f"**{result.mode} ablation of {', '.join(result.components)}**: KL(before ‖ after) = "
            f"**{result.kl:.4f} nats**; top-1 {changed}: {html.escape(result.top1_before)} → "
            f"{html.escape(result.top1_after)}\n\n"
            f"| | before | after |\n|---|---|---|\n"
            f"| top 5 | {top(result.prob_before)} | {top(result.prob_after)} |\n"
            f"| greedy continuation | {_cell(result.continuation_before)} | {_cell(result.continuation_after)} |")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (escaped, pipes and newlines made visible)."""
    return html.escape(text).replace("|", "\\|").replace("\n", "⏎")


def dla_figure(result, show_heads: bool = False, top: int = 0) -> go.Figure:
    """Waterfall of each component's direct contribution to the token's logit, ending at the logit.

    Args:
        result: :class:`explorer.circuits.DLAResult`.
        show_heads: one bar per head instead of per attention block.
        top: keep only the ``top`` largest by magnitude (0 = all), the rest summed into one ``other`` bar.
    """
    names = list(result.names)
    values = np.asarray(result.contributions, dtype=np.float64)
    if show_heads:
        keep = [i for i, n in enumerate(names) if not n.endswith(".attn")]
        names = [names[i] for i in keep] + list(result.head_names)
        values = np.concatenate([values[keep], result.head_contributions])
    if top and len(values) > top:
        chosen = sorted(np.argsort(-np.abs(values))[:top])
        rest = float(values.sum() - values[chosen].sum())
        names, values = [names[i] for i in chosen] + ["other"], np.append(values[chosen], rest)
    fig = go.Figure(go.Waterfall(
        x=names + ["logit"], y=[round(float(v), 4) for v in values] + [round(result.logit, 4)],
        measure=["relative"] * len(values) + ["total"],
        increasing={"marker": {"color": "#2563eb"}}, decreasing={"marker": {"color": "#dc2626"}},
        totals={"marker": {"color": "#6b7280"}}, hovertemplate="%{x}: %{y:+.3f}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, height=420, margin={"t": 80, "l": 50, "r": 20, "b": 100},
                      title=f"direct logit attribution of {result.token} at position {result.position} "
                            f"(logit {result.logit:.2f}, residual {result.residual:.1e})", showlegend=False)
    fig.update_xaxes(tickangle=-60)
    return neutral(fig)


def sweep_figure(result) -> go.Figure:
    """The steering sweep as two heatmaps, rows = layers, columns = strengths: left, the steered text's perplexity
    under the unsteered model (log colour scale, the baseline's in the title: high = the text broke); right, for a
    built-in set, the marker log-ratio minus the baseline's (positive = pushed towards the positive side).

    Args:
        result: :class:`explorer.circuits.sweep.SweepResult`.
    """
    rows, cols = [f"L{l}" for l in result.layers], [f"{s:g}" for s in result.strengths]

    def grid(value):
        return np.array([[np.nan if value(result.cell(l, s)) is None else value(result.cell(l, s))
                          for s in result.strengths] for l in result.layers], dtype=float)

    ppl = grid(lambda c: c.perplexity)
    base = result.baseline
    markers = result.markers is not None
    fig = make_subplots(rows=1, cols=2 if markers else 1, horizontal_spacing=0.16)
    fig.add_trace(go.Heatmap(z=np.log10(ppl), x=cols, y=rows, colorscale="Oranges", text=np.round(ppl, 1),
                             texttemplate="%{text}", colorbar={"title": "log10 ppl", "x": 0.42 if markers else 1.0},
                             hovertemplate="%{y}, strength %{x}<br>perplexity %{text}<extra></extra>"), 1, 1)
    if markers:
        shift = grid(lambda c: c.marker_log_ratio) - base.marker_log_ratio
        bound = float(np.nanmax(np.abs(shift))) if np.isfinite(shift).any() else 1.0
        fig.add_trace(go.Heatmap(z=np.round(shift, 2), x=cols, y=rows, colorscale="RdBu", zmid=0, zmin=-bound,
                                 zmax=bound, texttemplate="%{z:+.1f}", colorbar={"title": "Δ log-ratio"},
                                 hovertemplate="%{y}, strength %{x}<br>Δ log-ratio %{z:+.2f}<extra></extra>"), 1, 2)
    fig.update_layout(template=TEMPLATE, height=max(320, 40 * len(rows) + 160),
                      title={"text": "Steering sweep: where the push works (right) and where the text breaks (left)",
                             "x": 0, "xanchor": "left", "font": {"size": 14}},
                      margin={"t": 70, "l": 50, "r": 20, "b": 70})
    fig.update_yaxes(autorange="reversed", title_text="layer", type="category")
    fig.update_xaxes(type="category")
    fig.update_xaxes(title_text=f"strength: perplexity under the unsteered model (baseline {base.perplexity:.1f})",
                     row=1, col=1)
    if markers:
        fig.update_xaxes(title_text=f"strength: marker log-ratio − baseline ({base.marker_log_ratio:+.2f})",
                         row=1, col=2)
    return neutral(fig)

