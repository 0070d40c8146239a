"""Attention figures: the layers × heads overview, one head in detail, and two heads side by side.

The overview stays light at 512 tokens: every head is block-mean pooled to a small thumbnail, scaled by
its own maximum (square root, so diffuse heads stay visible) and sent as one uint8 heatmap (plotly ships
numpy arrays as base64 typed arrays), so the payload does not grow with the prompt past the thumbnail size.
Detail heatmaps carry float32 values rounded to 4 decimals, with the causal mask (above the diagonal) as
empty cells.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.attention.stats import STATS, remove_sink

COLORSCALE = "Blues"
TEMPLATE = "none"  # the default "plotly" template adds ~8 KB of JSON to every figure
THUMB_SIZE = 16
STAT_TRACE = 3  # index of the statistic heatmap in the overview figure (after the mosaic and two line traces)


def axis_labels(tokens) -> list[str]:
    """Unique axis labels ``"i·token"`` (plotly merges repeated category names)."""
    return [f"{i}·{tok}" for i, tok in enumerate(tokens)]


def head_labels(kv_head_of_head) -> list[str]:
    """Column labels naming each query head and the KV head it reads: ``"h3 kv1"``."""
    return [f"h{h} kv{int(kv)}" for h, kv in enumerate(kv_head_of_head)]


def pool(pattern: np.ndarray, size: int) -> np.ndarray:
    """Block-mean pool the last two axes ``(q_len, k_len)`` down to at most ``(size, size)`` (float32)."""
    out = np.asarray(pattern, dtype=np.float32)
    for axis in (-2, -1):
        n = out.shape[axis]
        if n <= size:
            continue
        edges = np.linspace(0, n, size + 1).astype(int)[:-1]
        counts = np.diff(np.append(edges, n)).astype(np.float32)
        shape = [1] * out.ndim
        shape[axis] = -1
        out = np.add.reduceat(out, edges, axis=axis) / counts.reshape(shape)
    return out


def thumbnails(attn: np.ndarray, size: int = THUMB_SIZE, hide_sink: bool = False) -> np.ndarray:
    """Mosaic of every head's pattern: uint8 ``(num_layers * t, num_heads * t)`` with ``t = min(size, q_len)``.

    Each thumbnail is pooled (:func:`pool`), divided by its own maximum, square-rooted and scaled to 0–255.
    """
    num_layers, num_heads = attn.shape[:2]
    blocks = []
    for layer in range(num_layers):  # per layer: float32 temporaries stay small at 512 tokens
        pattern = remove_sink(attn[layer]) if hide_sink else attn[layer]
        blocks.append(pool(pattern, size))
    pooled = np.stack(blocks)  # (L, H, t, t)
    peak = pooled.max(axis=(-2, -1), keepdims=True)
    scaled = np.sqrt(np.divide(pooled, peak, out=np.zeros_like(pooled), where=peak > 0))
    t_q, t_k = pooled.shape[-2:]
    mosaic = (scaled * 255).round().astype(np.uint8).transpose(0, 2, 1, 3).reshape(num_layers * t_q, num_heads * t_k)
    return mosaic


def layer_label(result, layer: int) -> str:
    """``"L3"``, or ``"L3 local"`` / ``"L5 GLOBAL"`` on a model that mixes sliding-window and global layers."""
    windows = getattr(result, "layer_windows", ()) or ()
    if not any(windows) or layer >= len(windows):
        return f"L{layer}"
    return f"L{layer} local" if windows[layer] else f"L{layer} GLOBAL"


def _group_edges(kv_head_of_head) -> list[int]:
    """Head indices where a new KV group starts (none for MHA, where every head has its own KV head)."""
    kv = np.asarray(kv_head_of_head)
    if np.unique(kv).size == kv.size:
        return []
    return [h for h in range(1, kv.size) if kv[h] != kv[h - 1]]


def overview_figure(result, stat: str = "entropy", hide_sink: bool = False, thumb_size: int = THUMB_SIZE) -> go.Figure:
    """Layers × heads thumbnails beside a layers × heads heatmap of one per-head statistic.

    Args:
        result: an ``explorer.attention.AttentionResult``.
        stat: a key of ``explorer.attention.stats.STATS``.
        hide_sink: thumbnails drawn with the first-token column removed and rows renormalised.
        thumb_size: thumbnail side in cells.
    Raises:
        ValueError: unknown statistic.
    """
    if stat not in STATS:
        raise ValueError(f"Unknown statistic {stat!r}; choose from {', '.join(STATS)}.")
    num_layers, num_heads = result.num_layers, result.num_heads
    mosaic = thumbnails(result.attn, thumb_size, hide_sink)
    t_q, t_k = mosaic.shape[0] // num_layers, mosaic.shape[1] // num_heads
    heads = head_labels(result.kv_head_of_head)
    sink_note = ", sink hidden" if hide_sink else ""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        f"Every head's pattern (query ↓, key →; √ of weight / head max{sink_note})",
        f"{STATS[stat].label} [{STATS[stat].unit}]"))
    fig.add_trace(go.Heatmap(z=mosaic, colorscale=COLORSCALE, zmin=0, zmax=255, showscale=False,
                             hoverinfo="none"), row=1, col=1)  # "none", not "skip": clicks still fire
    # grid lines between thumbnails; thick ones between KV groups
    thin_x, thin_y, thick_x, thick_y = [], [], [], []
    bottom, right = num_layers * t_q - 0.5, num_heads * t_k - 0.5
    group_edges = set(_group_edges(result.kv_head_of_head))
    for h in range(1, num_heads):
        xs, ys = (thick_x, thick_y) if h in group_edges else (thin_x, thin_y)
        xs += [h * t_k - 0.5, h * t_k - 0.5, None]
        ys += [-0.5, bottom, None]
    for layer in range(1, num_layers):
        thin_x += [-0.5, right, None]
        thin_y += [layer * t_q - 0.5, layer * t_q - 0.5, None]
    fig.add_trace(go.Scatter(x=thin_x, y=thin_y, mode="lines", line=dict(color="white", width=1),
                             hoverinfo="skip", showlegend=False), row=1, col=1)
    fig.add_trace(go.Scatter(x=thick_x, y=thick_y, mode="lines", line=dict(color="#d62728", width=2),
                             hoverinfo="skip", showlegend=False), row=1, col=1)
    values = np.round(np.asarray(result.stats[stat], dtype=np.float32), 4)
    kv_grid = np.broadcast_to(np.asarray(result.kv_head_of_head), values.shape)
    fig.add_trace(go.Heatmap(z=values, x=heads, y=list(range(num_layers)), customdata=kv_grid,
                             colorscale="Viridis", colorbar=dict(title=STATS[stat].unit, x=1.02),
                             hovertemplate="layer %{y} · head %{x}<br>KV head %{customdata}<br>"
                                           f"{stat}: %{{z:.3f}}<extra></extra>"), row=1, col=2)
    for h in group_edges:
        fig.add_shape(type="line", x0=h - 0.5, x1=h - 0.5, y0=-0.5, y1=num_layers - 0.5,
                      line=dict(color="#d62728", width=2), row=1, col=2)
    tick_step = max(1, num_layers // 15)
    fig.update_xaxes(tickvals=[h * t_k + (t_k - 1) / 2 for h in range(num_heads)], ticktext=heads,
                     showgrid=False, zeroline=False, tickangle=-60, row=1, col=1)
    fig.update_yaxes(tickvals=[layer * t_q + (t_q - 1) / 2 for layer in range(0, num_layers, tick_step)],
                     ticktext=[layer_label(result, layer) for layer in range(0, num_layers, tick_step)],
                     autorange="reversed",
                     showgrid=False, zeroline=False, row=1, col=1)
    fig.update_xaxes(tickangle=-60, showgrid=False, row=1, col=2)
    fig.update_yaxes(autorange="reversed", showgrid=False, title_text="layer", row=1, col=2,
                     **({"tickvals": list(range(num_layers)), "ticktext": [layer_label(result, layer) for layer in
                                                                          range(num_layers)]}
                        if any(getattr(result, "layer_windows", ())) else {}))
    n_kv = int(np.max(result.kv_head_of_head)) + 1
    grouping = (f"{num_heads} query heads share {n_kv} KV heads (red lines split the groups)" if n_kv < num_heads
                else f"{num_heads} heads, each with its own KV head (multi-head attention)")
    # meta tells the page's click handler how to map a clicked cell to (layer, head): trace 0 is the
    # mosaic of t_q × t_k thumbnails, trace STAT_TRACE the statistic heatmap
    fig.update_layout(template=TEMPLATE, height=max(420, 26 * num_layers + 160), margin=dict(l=50, r=30, t=90, b=70),
                      meta=dict(thumb=[t_q, t_k], stat_trace=STAT_TRACE),
                      title=dict(text=f"{result.model}: {len(result.tokens)} tokens · {grouping} · "
                                      f"{'causal' if result.causal else 'bidirectional'}", font=dict(size=13)))
    return fig


def heatmap_trace(pattern: np.ndarray, tokens, causal: bool, coloraxis: str | None = None) -> go.Heatmap:
    """One ``(q_len, k_len)`` pattern as a heatmap trace with token labels; masked cells are empty (NaN)."""
    z = np.round(np.asarray(pattern, dtype=np.float32), 4)
    if causal and z.shape[0] == z.shape[1]:
        z = np.where(np.triu(np.ones(z.shape, dtype=bool), k=1), np.nan, z).astype(np.float32)
    labels = axis_labels(tokens)
    extra = dict(coloraxis=coloraxis) if coloraxis else dict(colorscale=COLORSCALE, zmin=0)
    return go.Heatmap(z=z, x=labels[: z.shape[1]], y=labels[: z.shape[0]], hoverongaps=False,
                      hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>", **extra)


def _square_layout(fig: go.Figure, n: int, title: str) -> go.Figure:
    side = int(min(900, max(480, 14 * n + 200)))
    fig.update_layout(template=TEMPLATE, title=dict(text=title, font=dict(size=13)), height=side,
                      margin=dict(l=90, r=30, t=60, b=90))
    fig.update_xaxes(title_text="key (attended to)", tickangle=-60, showgrid=False, tickfont=dict(size=9))
    fig.update_yaxes(title_text="query (attending)", autorange="reversed", showgrid=False, tickfont=dict(size=9))
    fig.update_layout(yaxis=dict(scaleanchor="x", constrain="domain"), xaxis=dict(constrain="domain"))
    return fig


def detail_figure(pattern: np.ndarray, tokens, causal: bool, title: str) -> go.Figure:
    """One head (or aggregate) as a heatmap with token labels on both axes.

    Args:
        pattern: ``(q_len, k_len)`` weights.
        tokens: token strings (``q_len``).
        causal: mask (leave empty) the cells above the diagonal.
        title: figure title (says when rows were renormalised).
    """
    fig = go.Figure(heatmap_trace(pattern, tokens, causal))
    return _square_layout(fig, len(tokens), title)


def ab_figure(pattern_a: np.ndarray, title_a: str, pattern_b: np.ndarray, title_b: str, tokens,
              causal: bool) -> go.Figure:
    """Two patterns side by side on one colour scale (A/B comparison of any two heads or aggregates)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"A: {title_a}", f"B: {title_b}"), horizontal_spacing=0.12)
    fig.add_trace(heatmap_trace(pattern_a, tokens, causal, coloraxis="coloraxis"), row=1, col=1)
    fig.add_trace(heatmap_trace(pattern_b, tokens, causal, coloraxis="coloraxis"), row=1, col=2)
    peak = float(max(np.nanmax(pattern_a), np.nanmax(pattern_b), 1e-6))
    fig.update_layout(coloraxis=dict(colorscale=COLORSCALE, cmin=0, cmax=peak))
    fig = _square_layout(fig, len(tokens), "A/B: two heads on one colour scale")
    fig.update_layout(yaxis2=dict(scaleanchor="x2", constrain="domain"), xaxis2=dict(constrain="domain"))
    fig.update_annotations(font_size=12)
    return fig
