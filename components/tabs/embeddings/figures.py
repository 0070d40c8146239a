"""Embeddings & RAG figures: results of ``explorer.embeddings`` -> plotly figures and table rows (no torch)."""
from __future__ import annotations

import textwrap

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

METRIC_LABELS = {"cosine": "cosine", "dot": "dot product", "euclidean": "-Euclidean distance"}


def _short(text: str, width: int = 60) -> str:
    return textwrap.shorten(text, width=width, placeholder=" ...")


def retrieval_figure(results: dict) -> go.Figure:
    """One panel per metric: the top-k hits' similarity (higher is better), best at the top."""
    metrics = list(results)
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[METRIC_LABELS.get(m, m) for m in metrics],
                        horizontal_spacing=0.18)
    for col, metric in enumerate(metrics, start=1):
        hits = results[metric].hits
        fig.add_trace(go.Bar(x=[h.score for h in hits][::-1], y=[f"{h.rank}. {_short(h.text, 32)}" for h in hits][::-1],
                             orientation="h", hovertext=[h.text for h in hits][::-1], name=metric,
                             marker_color=["#d62728" if h.source == "session" else "#1f77b4" for h in hits][::-1]),
                      row=1, col=col)
    fig.update_layout(height=360, showlegend=False, margin=dict(l=10, r=10, t=40, b=30),
                      title="Retrieved chunks by similarity (higher is better); red = your own passages")
    return fig


def passage_rows(hits: list) -> list[list]:
    """Table rows ``[rank, score, source, text]``."""
    return [[h.rank, round(h.score, 4), h.source, h.text] for h in hits]


def attribution_figure(attr, passages: list) -> go.Figure:
    """Bars: how much each retrieved passage supported the answer (nats of log-probability)."""
    labels = [f"[{i + 1}] {_short(h.text, 40)}" for i, h in enumerate(passages)]
    fig = go.Figure(go.Bar(x=list(attr.passage_scores), y=labels, orientation="h",
                           hovertext=[h.text for h in passages]))
    fig.update_layout(height=300, title="Drop of the answer's log-probability when a passage is blanked (nats)",
                      yaxis=dict(autorange="reversed"), margin=dict(l=10, r=10, t=40, b=30))
    return fig


def recall_figure(result) -> go.Figure:
    """recall@k against chunk size (words; 'passage' = passages as written), one line per k."""
    names = [str(s) if s else "passage" for s in result.chunk_sizes]
    fig = go.Figure()
    for j, k in enumerate(result.ks):
        fig.add_trace(go.Scatter(x=names, y=result.recall[:, j], mode="lines+markers", name=f"recall@{k}"))
    fig.update_layout(height=340, xaxis_title="chunk size (words)", yaxis_title="recall", yaxis_range=[0, 1.02],
                      title=f"recall@k of {result.n_queries} labelled queries ({result.metric})",
                      margin=dict(l=10, r=10, t=40, b=30))
    return fig


def pairs_figure(result, layer: int) -> go.Figure:
    """AUROC (paraphrase vs unrelated) per layer for mean and last-token hidden states, MiniLM as a line."""
    layers = list(range(result.mean.shape[0]))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=layers, y=result.auroc["mean"], mode="lines+markers", name="decoder, mean-pooled"))
    fig.add_trace(go.Scatter(x=layers, y=result.auroc["last"], mode="lines+markers", name="decoder, last token"))
    fig.add_trace(go.Scatter(x=layers, y=[float(result.auroc["minilm"][0])] * len(layers), mode="lines",
                             name="MiniLM (sentence-transformers)", line=dict(dash="dash")))
    fig.add_vline(x=layer, line_dash="dot", line_color="grey")
    fig.update_layout(height=360, xaxis_title="layer (0 = token embeddings)", yaxis_title="AUROC", yaxis_range=[0.4, 1.02],
                      title="How well cosine similarity separates paraphrases from unrelated pairs",
                      margin=dict(l=10, r=10, t=40, b=30))
    return fig


def similarity_figure(result, layer: int) -> go.Figure:
    """Box plots of pair similarity per label for MiniLM and the decoder at ``layer``."""
    fig = go.Figure()
    labels = np.array(result.labels)
    for method, name in (("minilm", "MiniLM"), ("mean", f"decoder mean, layer {layer}"), ("last", f"decoder last, layer {layer}")):
        scores = result.scores(method, layer)
        for lab in ("paraphrase", "related", "unrelated"):
            fig.add_trace(go.Box(y=scores[labels == lab], name=lab, legendgroup=lab, offsetgroup=lab,
                                 x=[name] * int((labels == lab).sum()), showlegend=method == "minilm"))
    fig.update_layout(height=360, boxmode="group", yaxis_title="cosine similarity",
                      title="Pair similarity by label", margin=dict(l=10, r=10, t=40, b=30))
    return fig


def token_map_figure(result) -> go.Figure:
    """Scatter of the chosen tokens on the first two principal components."""
    ev = result.explained
    fig = go.Figure(go.Scatter(x=result.coords[:, 0], y=result.coords[:, 1], mode="markers+text",
                               text=[repr(t)[1:-1] for t in result.tokens], textposition="top center"))
    fig.update_layout(height=420, xaxis_title=f"PC1 ({ev[0]:.0%} of variance)", yaxis_title=f"PC2 ({ev[1]:.0%})",
                      title="Input embeddings of the chosen tokens, PCA to 2-D", margin=dict(l=10, r=10, t=40, b=30))
    return fig


def neighbour_rows(result) -> list[list]:
    """Rows ``[rank, token, id, cosine]``."""
    return [[i + 1, repr(t), tid, round(c, 4)] for i, (t, tid, c) in enumerate(result.neighbours)]


def accuracy_figure(result) -> go.Figure:
    """Grouped bars: accuracy with vs without retrieval per question group."""
    groups = [g for g in result.accuracy if g != "all"] + ["all"]
    fig = go.Figure()
    for key, name in (("without", "without retrieval"), ("with", "with retrieval")):
        fig.add_trace(go.Bar(x=[f"{g} (n={result.accuracy[g]['n']})" for g in groups],
                             y=[result.accuracy[g][key] for g in groups], name=name))
    fig.update_layout(height=340, barmode="group", yaxis_range=[0, 1.02], yaxis_title="accuracy",
                      title=f"Answer accuracy with vs without retrieval (k = {result.k}; {result.provenance.kind})",
                      margin=dict(l=10, r=10, t=40, b=30))
    return fig


def accuracy_rows(result) -> list[list]:
    """Rows ``[group, question, answer with, ok, answer without, ok]``."""
    return [[r["source"], r["question"], r["answer"], "yes" if r["correct"] else "no", r["answer_without_retrieval"],
             "yes" if r["correct_without"] else "no"] for r in result.rows]
