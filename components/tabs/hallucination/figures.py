"""Figures for the Hallucination tab: token confidence, sample clusters, logit lens, attribution, probe
comparisons, and the AUROC table with ROC curves. Results in, plotly figures out (no torch)."""
from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

BAND_COLOURS = {"top-10": "#2e7d32", "top-100": "#f9a825", "top-1,000": "#ef6c00", "beyond": "#c62828"}
TOKEN_VIEWS = ("probability", "entropy", "rank")


def _vis(piece: str) -> str:
    return piece.replace(" ", "\u2423").replace("\n", "\u21b5") or "\u2205"


def _alternatives_hover(pieces, probs) -> str:
    return "<br>".join(f"{html.escape(_vis(p))}: {q:.3f}" for p, q in zip(pieces, probs))


def token_confidence(answer, view: str = "probability") -> go.Figure:
    """Answer tokens as bars coloured by probability, entropy (nats) or rank band; top-5 alternatives on hover.

    Args:
        answer: :class:`explorer.hallucination.answer.Answer`.
        view: one of :data:`TOKEN_VIEWS`.
    """
    from explorer.hallucination.answer import rank_band

    fig = go.Figure()
    n = len(answer.pieces)
    labels = [f"{i}:{_vis(p)}" for i, p in enumerate(answer.pieces)]
    hover = [f"<b>{html.escape(_vis(p))}</b> p={q:.3f} H={h:.2f} nats rank={r}<br>top alternatives:<br>"
             f"{_alternatives_hover(tp, tq)}"
             for p, q, h, r, tp, tq in zip(answer.pieces, answer.prob, answer.entropy, answer.rank,
                                           answer.top_pieces, answer.top_probs)]
    if view == "entropy":
        fig.add_bar(x=labels, y=answer.entropy, marker=dict(color=answer.entropy, colorscale="Reds", cmin=0,
                                                            colorbar=dict(title="nats")), hovertext=hover,
                    hoverinfo="text")
        ytitle = "entropy of the next-token distribution (nats)"
    elif view == "rank":
        bands = [rank_band(int(r)) for r in answer.rank]
        fig.add_bar(x=labels, y=np.log10(np.maximum(answer.rank, 1)) + 0.05,
                    marker_color=[BAND_COLOURS[b] for b in bands], text=bands, hovertext=hover, hoverinfo="text")
        ytitle = "log10 rank of the chosen token (0 = top-1)"
    else:
        fig.add_bar(x=labels, y=answer.prob, marker=dict(color=answer.prob, colorscale="RdYlGn", cmin=0, cmax=1,
                                                         colorbar=dict(title="p")), hovertext=hover, hoverinfo="text")
        ytitle = "probability of the chosen token"
    title = f"Answer: {answer.text!r} ({n} tokens)" if n else "The model gave an empty answer"
    fig.update_layout(title=title, yaxis_title=ytitle, xaxis_title="answer token", height=360,
                      margin=dict(l=50, r=20, t=50, b=60))
    return fig


def sample_clusters(clusters) -> go.Figure:
    """Cluster probabilities (bars) labelled by a representative answer; semantic entropy in the title."""
    labels = [f"{i}: {rep[:40]}" for i, rep in enumerate(clusters.representatives)]
    members = ["<br>".join(html.escape(s) for s, c in zip(clusters.samples, clusters.cluster_of) if c == i)
               for i in range(len(labels))]
    fig = go.Figure(go.Bar(x=labels, y=clusters.cluster_probs, hovertext=members, hoverinfo="text+y",
                           marker_color="#5c6bc0"))
    n = len(clusters.samples)
    fig.update_layout(title=f"{n} samples in {len(labels)} meaning cluster(s)<br><sub>semantic entropy "
                            f"{clusters.semantic_entropy:.3f} nats (max log N = {math.log(n):.3f})</sub>",
                      yaxis=dict(title="cluster probability", range=[0, 1]), height=320,
                      margin=dict(l=50, r=20, t=50, b=80))
    return fig


def logit_lens(lens, max_positions: int = 24) -> go.Figure:
    """Heatmap layers x positions: colour = probability of the answer token, text = each layer's top token."""
    p = min(len(lens.targets), max_positions)
    cols = [f"{i}:{_vis(t)}" for i, t in enumerate(lens.targets[:p])]
    text = [[_vis(piece)[:8] for piece in row[:p]] for row in lens.top_pieces]
    fig = go.Figure(go.Heatmap(z=lens.target_probs[:, :p], x=cols, y=[f"L{i}" for i in lens.layers], text=text,
                               texttemplate="%{text}", textfont=dict(size=9), colorscale="Viridis", zmin=0, zmax=1,
                               colorbar=dict(title="p(answer token)"),
                               hovertemplate="layer %{y}, predicting %{x}<br>top: %{text}<br>p(answer)=%{z:.3f}<extra></extra>"))
    firsts = [(c, f"L{f}") for c, f in zip(cols, lens.first_layer[:p]) if f >= 0]
    if firsts:
        fig.add_scatter(x=[c for c, _ in firsts], y=[f for _, f in firsts], mode="markers", name="first appears",
                        marker=dict(symbol="star", size=11, color="#ff5252", line=dict(color="white", width=1)))
    fig.update_layout(title="Logit lens: each layer read through the final norm and output layer",
                      xaxis_title="answer token being predicted", yaxis_title="layer (L0 = embeddings)",
                      height=max(420, 16 * len(lens.layers)), margin=dict(l=60, r=20, t=50, b=60))
    return fig


def attribution(attr) -> go.Figure:
    """Bars per question segment: how much removing it lowers the answer's log-probability (nats)."""
    colours = ["#2e7d32" if s >= 0 else "#c62828" for s in attr.segment_scores]
    fig = go.Figure(go.Bar(x=[f"{i}:{_vis(s.strip()) or s}" for i, s in enumerate(attr.segments)],
                           y=attr.segment_scores, marker_color=colours,
                           hovertext=[html.escape(s) for s in attr.segments]))
    label = "feature ablation" if attr.method == "feature_ablation" else "integrated gradients on the embeddings"
    fig.update_layout(title=f"Attribution ({label}, by {attr.unit}) of {attr.answer[:60]!r}<br>"
                            f"<sub>log p(answer) = {attr.target_logprob:.2f} nats</sub>",
                      yaxis_title="attribution (nats; + supports the answer)", height=340,
                      margin=dict(l=50, r=20, t=50, b=80))
    return fig


def attribution_html(attr) -> str:
    """The whole prompt as chips: the question's tokens shaded by attribution, fixed tokens greyed."""
    scale = float(np.abs(attr.token_scores).max()) or 1.0
    chips = []
    for piece, score, on in zip(attr.tokens, attr.token_scores, attr.attributed):
        if not on:
            chips.append(f"<span class='tok-chip' style='color:#999'>{html.escape(_vis(piece))}</span>")
            continue
        alpha = min(1.0, abs(score) / scale)
        rgb = "46,125,50" if score >= 0 else "198,40,40"
        chips.append(f"<span class='tok-chip' title='{score:.3f} nats' style='background:rgba({rgb},{alpha:.2f})'>"
                     f"{html.escape(_vis(piece))}</span>")
    return "<div>" + "".join(chips) + "</div>"


def probe_comparison(named: dict, title: str) -> go.Figure:
    """Grouped bars of each probe's score for two or more runs, e.g. {"real": scores, "invented": scores}."""
    fig = go.Figure()
    for name, scores in named.items():
        keys = [k for k, v in scores.items() if v is not None]
        fig.add_bar(name=name, x=keys, y=[scores[k] for k in keys])
    fig.update_layout(barmode="group", title=title, yaxis_title="score (higher = more likely wrong)", height=360,
                      margin=dict(l=50, r=20, t=50, b=100))
    return fig


def comparison_table(named: dict) -> pd.DataFrame:
    """Scores side by side: one row per score, one column per run."""
    keys = list(next(iter(named.values())).keys()) if named else []
    return pd.DataFrame([{"score": k, **{n: (None if s.get(k) is None else round(s[k], 4)) for n, s in named.items()}}
                         for k in keys])


def auroc_frame(rows) -> pd.DataFrame:
    """The AUROC table: score, n, positives, AUROC, 95 % interval, shuffled control."""
    return pd.DataFrame([{"score (higher = more likely wrong)": r.score, "task": r.task, "n": r.n,
                          "positives": r.n_positive, "AUROC": round(r.auroc, 3),
                          "95% CI": f"{r.low:.3f} - {r.high:.3f}", "shuffled control": round(r.shuffled, 3)}
                         for r in rows])


def roc_curves(rows, title: str = "ROC curves") -> go.Figure:
    """ROC curve of every score, with the chance diagonal."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="chance")
    for r in rows:
        fig.add_scatter(x=r.fpr, y=r.tpr, mode="lines", name=f"{r.score} ({r.auroc:.2f})")
    fig.update_layout(title=title, xaxis_title="false-positive rate", yaxis_title="true-positive rate",
                      height=420, margin=dict(l=50, r=20, t=50, b=50), legend=dict(font=dict(size=10)))
    return fig


def sequence_logprob(answer) -> go.Figure:
    """Running log-probability of the greedy answer, token by token (nats); the last point is log p(answer)."""
    labels = [f"{i}:{_vis(p)}" for i, p in enumerate(answer.pieces)]
    fig = go.Figure()
    fig.add_bar(x=labels, y=answer.logprob, name="log p(token)", marker_color="#90a4ae")
    fig.add_scatter(x=labels, y=np.cumsum(answer.logprob), mode="lines+markers", name="running sum = log p(answer so far)",
                    line=dict(color="#3949ab"))
    total = float(answer.logprob.sum()) if answer.logprob.size else 0.0
    fig.update_layout(title=f"Sequence log-probability {total:.2f} nats over {answer.logprob.size} tokens",
                      yaxis_title="log-probability (nats)", xaxis_title="answer token", height=340,
                      margin=dict(l=50, r=20, t=50, b=60))
    return fig


def p_true_bars(out: dict) -> go.Figure:
    """P(True) against P(False) for the model's own answer, renormalised over the two words (Kadavath et al. 2022)."""
    p = float(out.get("p_true", 0.5))
    fig = go.Figure(go.Bar(x=["True", "False"], y=[p, 1 - p], marker_color=["#2e7d32", "#c62828"],
                           text=[f"{p:.3f}", f"{1 - p:.3f}"], textposition="auto"))
    fig.update_layout(title=f"Is its own answer true? P(True) = {p:.3f}<br><sub>mass on either word "
                            f"{float(out.get('mass', 0)):.3f}</sub>", yaxis=dict(title="probability", range=[0, 1]),
                      height=320, margin=dict(l=50, r=20, t=60, b=40))
    return fig


def grounded_pmi(grounded, out: dict) -> go.Figure:
    """Per-token context reliance of the grounded answer: log p(y|context) - log p(y|no context) (nats)."""
    pmi = list(out.get("token_pmi") or [])
    labels = [f"{i}:{_vis(p)}" for i, p in enumerate(grounded.pieces[:len(pmi)])] if grounded else list(range(len(pmi)))
    fig = go.Figure(go.Bar(x=labels, y=pmi, marker_color=["#2e7d32" if v >= 0 else "#c62828" for v in pmi]))
    fig.update_layout(title=f"Context reliance {float(out.get('pmi_per_token', 0)):.3f} nats/token<br>"
                            f"<sub>with context: {str(out.get('answer_with_context', ''))[:60]!r}</sub>",
                      yaxis_title="PMI (nats; + the passage made it likelier)", xaxis_title="grounded answer token",
                      height=340, margin=dict(l=50, r=20, t=60, b=60))
    return fig


# Figure kind (``Probe.figure`` in explorer.hallucination.probes) -> ``fn(result, probe name) -> go.Figure``.
FIGURES = {
    "token_confidence": lambda result, name: token_confidence(result.answer),
    "sequence": lambda result, name: sequence_logprob(result.answer),
    "sample_clusters": lambda result, name: sample_clusters(result.objects["samples"]),
    "logit_lens": lambda result, name: logit_lens(result.objects["logit_lens"]),
    "p_true": lambda result, name: p_true_bars(result.probes[name]),
    "grounded": lambda result, name: grounded_pmi(result.objects.get("grounded"), result.probes[name]),
    "attribution": lambda result, name: attribution(result.objects["attribution"]),
}


def probe_figure(result, name: str) -> go.Figure | None:
    """The figure of probe ``name`` in ``result`` (a ``HallucinationResult``), drawn from the probe's own figure
    kind; ``None`` when the probe did not run or ended with an error or skip."""
    from explorer.hallucination.probes import PROBES

    out = result.probes.get(name)
    if out is None or "error" in out or "skipped" in out:
        return None
    return FIGURES[PROBES[name].figure](result, name)
