"""Next token figures: results of ``explorer.next_token`` -> plotly figures and small markdown pieces (no torch)."""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.badge import badge_md  # noqa: F401 - the tab's badge lines (one renderer for every tab)

# surprisal buckets (nats) for the token chips, green (expected) to red (surprising)
BUCKETS = ((1.0, "< 1 nat"), (2.0, "1-2 nats"), (4.0, "2-4 nats"), (8.0, "4-8 nats"), (float("inf"), ">= 8 nats"))
COLORS = {"< 1 nat": "#1a9850", "1-2 nats": "#91cf60", "2-4 nats": "#fee08b", "4-8 nats": "#fc8d59",
          ">= 8 nats": "#d73027"}


def bucket(surprisal: float) -> str:
    """The chip label of a surprisal in nats."""
    return next(label for edge, label in BUCKETS if surprisal < edge)


def chips(result) -> list[tuple[str, str | None]]:
    """``gr.HighlightedText`` value: ``(token text, surprisal bucket)``; the first token has no label."""
    out = [(result.token_texts[0], None)]
    for text, s in zip(result.token_texts[1:], result.surprisal):
        out.append((text, bucket(float(s))))
    return out


def summary_md(result) -> str:
    """Cross-entropy, perplexity, bits per byte with their formulas and the check against transformers' loss."""
    n = result.n_predicted
    check = ""
    if result.reference_loss is not None:
        m = result.reference_tokens
        ours = float(result.surprisal[: m - 1].mean())
        check = (f"\n\nCheck: transformers' own loss (`labels=`) on the first {m:,} tokens is "
                 f"**{result.reference_loss:.5f}** nats; the mean of the surprisals above over the same tokens is "
                 f"**{ours:.5f}** (difference {abs(ours - result.reference_loss):.1e}).")
    return (f"**{n:,} predicted tokens** (every token but the first). Cross-entropy "
            f"L = -(1/N) Σ log P(x_i | x_<i) = **{result.cross_entropy:.3f} nats/token**; perplexity exp(L) = "
            f"**{result.perplexity:.2f}** (as unsure as a fair choice among that many tokens); bits per byte = "
            f"Σ -log P / (ln 2 × {result.predicted_bytes:,} UTF-8 bytes) = **{result.bits_per_byte:.3f}**. "
            f"Surprisals sum to {result.total_nll:.2f} = N × L." + check)


def surprisal_figure(result) -> go.Figure:
    """Bars: surprisal (nats) of each actual next token by position, the cross-entropy as a dashed line."""
    s = result.surprisal
    pos = np.arange(1, len(s) + 1)
    texts = [repr(t)[1:-1] for t in result.token_texts[1:]]
    fig = go.Figure(go.Bar(x=pos, y=s, marker=dict(color=s, colorscale="RdYlGn_r", cmin=0, cmax=10),
                           customdata=np.stack([texts, result.rank.astype(str)], axis=1),
                           hovertemplate="position %{x}: %{customdata[0]}<br>surprisal %{y:.2f} nats"
                                         "<br>rank %{customdata[1]}<extra></extra>"))
    fig.add_hline(y=result.cross_entropy, line_dash="dash",
                  annotation_text=f"L = {result.cross_entropy:.2f} nats, perplexity {result.perplexity:.1f}")
    fig.update_layout(title="Surprisal -log P(actual next token) per position", xaxis_title="position (token)",
                      yaxis_title="surprisal (nats)", height=360, margin=dict(t=50, b=40))
    return fig


def topk_figure(result, position: int) -> go.Figure:
    """The model's top-k next-token probabilities at ``position`` (1..n-1, the predicted token's index), the
    actual token in red (added as its own bar with its rank when it is outside the top-k)."""
    i = int(np.clip(position, 1, result.n_predicted)) - 1
    ids, ps = result.top_ids[i].tolist(), result.top_p[i].tolist()
    labels = [repr(result.top_texts.get(t, str(t)))[1:-1] or "·" for t in ids]
    actual = int(result.ids[i + 1])
    colors = ["#d73027" if t == actual else "#4575b4" for t in ids]
    if actual not in ids:
        labels.append(f"actual {repr(result.token_texts[i + 1])[1:-1]} (rank {int(result.rank[i]):,})")
        ps.append(float(np.exp(result.logprob[i])))
        colors.append("#d73027")
    fig = go.Figure(go.Bar(x=ps[::-1], y=[f"{k + 1}. {l}" for k, l in enumerate(labels)][::-1], orientation="h",
                           marker_color=colors[::-1], hovertemplate="%{y}: p = %{x:.4f}<extra></extra>"))
    context = "".join(result.token_texts[max(0, i - 8): i + 1])
    fig.update_layout(title=f"After …{html.escape(repr(context)[1:-1])}: top {len(ids)} (actual in red)",
                      xaxis_title="probability", height=max(260, 28 * len(labels) + 80), margin=dict(t=50, l=10))
    return fig


def domain_figure(table) -> go.Figure:
    """Bits per byte and perplexity per token for each domain, with the bootstrap intervals as error bars."""
    names = [r.name for r in table.rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("bits per byte (comparable across tokenizers)",
                                                        "perplexity per token (log scale)"))
    bpb = np.array([r.bits_per_byte for r in table.rows])
    fig.add_trace(go.Bar(x=names, y=bpb, name="bits/byte", marker_color="#4575b4", error_y=dict(
        type="data", symmetric=False, array=[r.bpb_high - r.bits_per_byte for r in table.rows],
        arrayminus=[r.bits_per_byte - r.bpb_low for r in table.rows])), 1, 1)
    fig.add_trace(go.Bar(x=names, y=[r.perplexity for r in table.rows], name="perplexity", marker_color="#fc8d59",
                         error_y=dict(type="data", symmetric=False,
                                      array=[r.ppl_high - r.perplexity for r in table.rows],
                                      arrayminus=[r.perplexity - r.ppl_low for r in table.rows])), 1, 2)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(title=f"Perplexity by domain on {table.model} ({int(table.confidence * 100)} % bootstrap "
                            f"interval over {table.window_tokens}-token windows)", showlegend=False, height=420)
    return fig


def domain_rows(table) -> list[list]:
    """Rows for the domain table: name, tokens, bytes/token, cross-entropy, perplexity [CI], bits/byte [CI]."""
    return [[r.name, r.tokens, round(r.bytes_per_token, 2), round(r.cross_entropy, 3),
             f"{r.perplexity:.2f} [{r.ppl_low:.2f}, {r.ppl_high:.2f}]",
             f"{r.bits_per_byte:.3f} [{r.bpb_low:.3f}, {r.bpb_high:.3f}]"] for r in table.rows]


DOMAIN_HEADERS = ["domain", "tokens", "bytes/token", "cross-entropy (nats)", "perplexity [95% CI]", "bits/byte [95% CI]"]


def min_k_figure(result) -> go.Figure:
    """Min-K% Prob of the user's passage beside the famous and the fresh one (higher = more likely seen)."""
    entries = [result.text, result.famous, result.fresh]
    fig = go.Figure(go.Bar(x=[e.title for e in entries], y=[e.score for e in entries],
                           marker_color=["#4575b4", "#1a9850", "#d73027"],
                           text=[f"{e.score:.2f}" for e in entries], textposition="outside",
                           hovertemplate="%{x}<br>Min-K% score %{y:.3f} nats<extra></extra>"))
    fig.update_layout(title=f"Min-{result.k * 100:.0f}% Prob: mean log-prob of the {result.k:.0%} least likely "
                            "tokens (closer to 0 = more likely seen)", yaxis_title="nats", height=380)
    return fig


def position_figure(result) -> go.Figure:
    """Surprisal of each token by position (dots) and the mean per log-spaced bin (line), log x axis."""
    pos = np.arange(1, len(result.nll) + 1)
    centers = np.sqrt(result.edges[:-1] * np.maximum(result.edges[1:] - 1, result.edges[:-1]))
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=pos, y=result.nll, mode="markers", name="each token",
                               marker=dict(size=3, color="rgba(69,117,180,0.35)")))
    fig.add_trace(go.Scatter(x=centers, y=result.bin_mean, mode="lines+markers", name="mean per bin",
                             line=dict(color="#d73027", width=3)))
    fig.add_vline(x=result.plateau, line_dash="dash", annotation_text=f"more context helps < {result.tolerance} nats")
    fig.update_layout(title="Loss by position over the built-in document", xaxis_type="log",
                      xaxis_title="position (tokens of context before the token)", yaxis_title="surprisal (nats)",
                      height=400)
    return fig


def needle_figure(result) -> go.Figure:
    """Heatmap depth x length: green = retrieved by greedy decoding; the cell text is the answer log-prob."""
    grid, lp = result.grid, result.logprob_grid
    text = [[("" if np.isnan(a) else ("found" if a >= 0.5 else "missed")) +
             ("" if np.isnan(v) else f"<br>{v:.2f}") for a, v in zip(ra, rv)] for ra, rv in zip(grid, lp)]
    fig = go.Figure(go.Heatmap(z=grid, x=[f"{d:.0%}" for d in result.depths], y=[f"{n:,}" for n in result.lengths],
                               zmin=0, zmax=1, colorscale=[[0, "#d73027"], [1, "#1a9850"]], text=text,
                               texttemplate="%{text}", showscale=False,
                               hovertemplate="depth %{x}, %{y} tokens: %{text}<extra></extra>"))
    fig.update_layout(title=f"Needle in a haystack on {result.model} (cell: retrieved?, answer log-prob in nats)",
                      xaxis_title="needle depth (0 % = start of the context)", yaxis_title="context length (tokens)",
                      yaxis_type="category", height=140 + 60 * len(result.lengths))
    return fig


def empty_figure(message: str) -> go.Figure:
    """A blank figure with a message."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(height=200, xaxis_visible=False, yaxis_visible=False)
    return fig
