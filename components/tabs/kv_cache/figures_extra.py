"""Figures of the KV cache tab's serving sections: paged attention, prompt caching, quantised cache.

Inputs are the frozen results of ``explorer.kv_cache.paged``, ``.prefix`` and ``.quantized``.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from explorer.kv_cache.whatif import format_bytes

PALETTE = qualitative.Plotly + qualitative.D3


def _colour(seq: int) -> str:
    return PALETTE[seq % len(PALETTE)]


def paged_figure(result) -> go.Figure:
    """Contiguous max-length reservations (used vs wasted) above the paged block pool (block table drawn).

    Args:
        result: ``explorer.kv_cache.paged.PagedResult``.
    """
    fig = make_subplots(rows=2, cols=1, row_heights=[0.45, 0.55], vertical_spacing=0.18, subplot_titles=(
        f"contiguous: {len(result.lengths)} x {result.max_len:,} tokens reserved -> "
        f"{format_bytes(result.contiguous_waste_bytes)} wasted ({result.contiguous_waste_pct:.1f} %)",
        f"paged: blocks of {result.block_size} tokens, allocated on demand -> "
        f"{format_bytes(result.paged_waste_bytes)} wasted ({result.paged_waste_pct:.1f} %)"))
    names = [f"seq {i}" for i in range(len(result.lengths))]
    fig.add_trace(go.Bar(y=names, x=result.lengths, orientation="h", name="used", marker_color="#1f77b4",
                         hovertemplate="%{y}: %{x:,} tokens used<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(y=names, x=result.max_len - result.lengths, orientation="h", name="reserved, unused",
                         marker_color="#d62728", opacity=0.45,
                         hovertemplate="%{y}: %{x:,} tokens reserved but unused<extra></extra>"), row=1, col=1)
    width = int(np.ceil(np.sqrt(len(result.physical_owner) * 3))) or 1
    for seq, table in enumerate(result.block_tables):
        xs = [block % width for block in table]
        ys = [block // width for block in table]
        fill = result.physical_fill[list(table)]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers+text", name=f"seq {seq} blocks", showlegend=False,
            text=[str(i) for i in range(len(table))], textfont=dict(size=8, color="white"),
            marker=dict(symbol="square", size=16, color=_colour(seq), opacity=[0.35 + 0.65 * f / result.block_size
                                                                              for f in fill]),
            customdata=np.stack([np.arange(len(table)), np.array(table), fill], axis=-1),
            hovertemplate=(f"seq {seq}: logical block %{{customdata[0]}} -> physical block %{{customdata[1]}}"
                           f"<br>%{{customdata[2]}} of {result.block_size} tokens used<extra></extra>")),
            row=2, col=1)
    fig.update_layout(barmode="stack", template="plotly_white", height=560, legend=dict(orientation="h", y=1.08),
                      title=dict(text=f"{format_bytes(result.bytes_per_token)} per token (measured on the model); "
                                      f"{format_bytes(result.used_bytes)} of real KV data", font_size=13))
    fig.update_xaxes(title_text="tokens", row=1, col=1)
    fig.update_xaxes(title_text="physical block pool (numbers: logical block index; faint = partly filled)",
                     showticklabels=False, row=2, col=1)
    fig.update_yaxes(autorange="reversed", showticklabels=False, row=2, col=1)
    return fig


def block_table_rows(result) -> list[list]:
    """Rows ``[sequence, tokens, blocks, physical blocks, last-block waste (tokens)]`` of the block tables."""
    rows = []
    for seq, (n, table) in enumerate(zip(result.lengths, result.block_tables)):
        shown = ", ".join(map(str, table[:24])) + (" ..." if len(table) > 24 else "")
        rows.append([seq, int(n), len(table), shown, len(table) * result.block_size - int(n)])
    return rows


def prefix_figure(result) -> go.Figure:
    """Time to first token computing the prefix vs reusing its saved cache (median over repeats).

    Args:
        result: ``explorer.kv_cache.prefix.PrefixCacheResult``.
    """
    full, reuse, copy = (float(np.median(a)) for a in (result.full_ms, result.reuse_ms, result.copy_ms))
    fig = go.Figure()
    fig.add_trace(go.Bar(x=["compute prefix", "reuse saved prefix cache"], y=[full, reuse - copy],
                         name="forward passes", marker_color=["#d62728", "#1f77b4"],
                         text=[f"{full:.0f} ms", f"{reuse:.0f} ms"], textposition="auto"))
    fig.add_trace(go.Bar(x=["compute prefix", "reuse saved prefix cache"], y=[0, copy], name="copying the cache",
                         marker_color="#9ecae1"))
    fig.update_layout(barmode="stack", template="plotly_white", height=380, yaxis_title="time to first token (ms)",
                      title=(f"{result.prefix_tokens} shared prefix tokens + "
                             f"{result.total_tokens - result.prefix_tokens} question tokens: {result.speedup:.1f}x "
                             f"faster; next-token logits differ by at most {result.max_abs_logit_diff:.2g}"),
                      title_font_size=13)
    return fig


def quant_figure(result) -> go.Figure:
    """Bytes of each quantised cache vs the full-precision one, and logit drift per step.

    Args:
        result: ``explorer.kv_cache.quantized.QuantCacheResult``.
    """
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], subplot_titles=(
        f"cache bytes at {int(result.tokens[-1])} tokens", "next-token logits: KL(full || quantised)"))
    labels = ["full precision"] + [r.key for r in result.runs]
    quant = [0] + [r.quantized_bytes for r in result.runs]
    resid = [result.reference_bytes] + [r.residual_bytes for r in result.runs]
    fig.add_trace(go.Bar(x=labels, y=resid, name="full-precision tokens", marker_color="#7f7f7f"), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=quant, name="quantised data + scales", marker_color="#1f77b4",
                         text=[format_bytes(q + r) for q, r in zip(quant, resid)], textposition="outside"),
                  row=1, col=1)
    for i, run in enumerate(result.runs):
        fig.add_trace(go.Scatter(x=result.tokens, y=run.kl_nats, mode="lines+markers", name=f"{run.key} KL",
                                 line=dict(color=_colour(i + 2)),
                                 customdata=np.stack([run.max_abs_diff, run.top1_agree.astype(int)], axis=-1),
                                 hovertemplate="%{x} tokens: KL %{y:.4f} nats<br>max |logit diff| %{customdata[0]:.3f}"
                                               "<br>top-1 agrees: %{customdata[1]}<extra></extra>"), row=1, col=2)
    fig.update_layout(barmode="stack", template="plotly_white", height=420, legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(title_text="bytes", row=1, col=1)
    fig.update_yaxes(title_text="nats", row=1, col=2)
    fig.update_xaxes(title_text="tokens in the cache", row=1, col=2)
    return fig
