"""Figures of the Training & scale tab: live pretraining, induction-head emergence, hyperparameter pairs, data quality.

Inputs are the engine's records (:class:`explorer.pretrain.loop.Curve`, :class:`explorer.pretrain.induction.
InductionCurve`, or a :class:`explorer.pretrain.PretrainResult` holding them). No torch here.
"""
from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
CHINCHILLA = 20.0  # tokens per parameter, Hoffmann et al. 2022
TRACES = {"loss": ("losses", "training loss (nats/token)"), "val_loss": ("val_losses", "validation loss (nats/token)"),
          "grad_norm": ("grad_norms", "gradient norm before clipping"),
          "weight_norm": ("weight_norms", "L2 norm of all weight matrices")}
LAYOUT = dict(margin=dict(l=60, r=30, t=70, b=45), legend=dict(orientation="h", y=-0.22))


def _steps(values) -> np.ndarray:
    return np.arange(1, len(values) + 1)


def live_figure(curve, title: str = "") -> go.Figure:
    """Training loss per step and validation loss (markers), and tokens seen per non-embedding parameter against
    Chinchilla's compute-optimal ~20 (log scale)."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.66, 0.34], horizontal_spacing=0.12)
    if curve is not None and curve.losses:
        fig.add_trace(go.Scatter(x=_steps(curve.losses), y=curve.losses, name="training loss",
                                 line=dict(color=COLORS[0])), 1, 1)
        fig.add_trace(go.Scatter(x=curve.val_steps, y=curve.val_losses, name="validation loss (clean held-out)",
                                 mode="lines+markers", line=dict(color=COLORS[1])), 1, 1)
        per_step = curve.settings.batch_size * curve.settings.seq_len / max(1, curve.non_embedding_params)
        x = _steps(curve.losses)
        fig.add_trace(go.Scatter(x=x, y=x * per_step, name="tokens / N", line=dict(color=COLORS[2])), 1, 2)
        fig.add_trace(go.Scatter(x=[1, curve.settings.steps], y=[CHINCHILLA, CHINCHILLA], name="Chinchilla ~20",
                                 mode="lines", line=dict(color="#888", dash="dash")), 1, 2)
        total = curve.settings.steps
        fig.update_xaxes(range=[0.5, total + 0.5], row=1, col=1)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="loss (nats per token)", row=1, col=1)
    fig.update_yaxes(title_text="tokens seen per parameter (N)", type="log", row=1, col=2)
    fig.update_layout(height=380, title=title or "Pretraining from random weights", **LAYOUT)
    return fig


def runs_figure(curves: list) -> go.Figure:
    """Validation loss of this session's pretraining runs overlaid (x: tokens seen)."""
    fig = go.Figure()
    for i, (label, curve) in enumerate(curves):
        if curve.val_losses:
            tokens = np.asarray(curve.val_steps) * curve.settings.batch_size * curve.settings.seq_len
            fig.add_trace(go.Scatter(x=tokens, y=curve.val_losses, name=label, line=dict(color=COLORS[i % 6])))
    fig.update_xaxes(title_text="tokens seen")
    fig.update_yaxes(title_text="validation loss (nats/token)")
    fig.update_layout(height=320, title="Runs compared (validation loss)", **LAYOUT)
    return fig


def induction_figure(curve, title: str = "") -> go.Figure:
    """Top: loss on copyable tokens (the repeat) and on random tokens. Bottom: induction score of each layer-2
    head and the best layer-1 head; a dotted line marks the phase change."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    if curve is not None and curve.losses:
        x = _steps(curve.losses)
        fig.add_trace(go.Scatter(x=x, y=curve.second_half, name="in-context (repeated span)",
                                 line=dict(color=COLORS[1])), 1, 1)
        fig.add_trace(go.Scatter(x=x, y=curve.first_half, name="random tokens", line=dict(color="#999")), 1, 1)
        fig.add_hline(y=math.log(curve.settings["vocab"]), line=dict(color="#bbb", dash="dot"), row=1, col=1)
        scores = np.asarray(curve.scores)  # (points, layers, heads)
        if scores.size:
            for h in range(scores.shape[2]):
                fig.add_trace(go.Scatter(x=curve.score_steps, y=scores[:, -1, h], name=f"layer 2 head {h}",
                                         line=dict(color=COLORS[(h + 2) % 6])), 2, 1)
            fig.add_trace(go.Scatter(x=curve.score_steps, y=scores[:, 0, :].max(axis=1), name="layer 1 (best head)",
                                     line=dict(color="#555", dash="dash")), 2, 1)
        step = curve.phase_change_step
        if step:
            fig.add_vline(x=step, line=dict(color="#888", dash="dot"))
        fig.update_xaxes(range=[0.5, curve.settings["steps"] + 0.5])
    fig.update_yaxes(title_text="loss (nats/token)", row=1, col=1)
    fig.update_yaxes(title_text="induction score", range=[0, 1], row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(height=520, title=title or "Induction heads form: in-context copying appears suddenly", **LAYOUT)
    return fig


def pair_figure(result, row) -> go.Figure:
    """The row's trace (loss, validation loss, gradient norm or weight norm) for both runs of the pair."""
    attr, label = TRACES[row.trace]
    fig = go.Figure()
    for i, curve in enumerate(result.curves if result is not None else ()):
        values = getattr(curve, attr)
        x = curve.val_steps if attr == "val_losses" else _steps(values)
        name = curve.label + (" (diverged)" if curve.status == "diverged" else "")
        fig.add_trace(go.Scatter(x=x, y=values, name=name, line=dict(color=COLORS[i])))
    if row.trace == "grad_norm":
        fig.add_hline(y=1.0, line=dict(color="#888", dash="dash"), annotation_text="clip threshold 1.0")
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text=label, type="log" if row.trace == "loss" and row.key == "lr" else None)
    fig.update_layout(height=360, title=f"{row.name}: {row.a[0]} vs {row.b[0]}", **LAYOUT)
    return fig


def data_figure(result) -> go.Figure:
    """Validation loss on clean held-out stories for the same compute on each corpus variant (x: tokens seen)."""
    fig = go.Figure()
    for i, curve in enumerate(result.curves if result is not None else ()):
        tokens = np.asarray(curve.val_steps) * curve.settings.batch_size * curve.settings.seq_len
        fig.add_trace(go.Scatter(x=tokens, y=curve.val_losses, name=curve.label, line=dict(color=COLORS[i])))
    fig.update_xaxes(title_text="training tokens seen (the same compute for each)")
    fig.update_yaxes(title_text="validation loss on clean stories")
    fig.update_layout(height=360, title="Data quality vs quantity", **LAYOUT)
    return fig


def status_html(result) -> str:
    """One line: status, steps, queue place and expected wait, the message, the corpus (or corpora) trained on with
    its token count, capped-value notices."""
    if result is None:
        return "<div class='training-status'>No run yet in this session.</div>"
    if result.status == "queued":
        what = f"waiting in the server's queue: place {result.queue_position}, about {result.wait_s:.0f} s"
    else:
        what = f"{result.status}: {result.steps_done} of {result.planned_steps} steps"
    corpora = {(c.corpus, c.corpus_tokens) for c in result.curves if hasattr(c, "corpus")}
    parts = [what, result.message] + [f"corpus: {name}, {tokens:,} tokens" for name, tokens in sorted(corpora)]
    parts += list(result.notices)
    return "<div class='training-status'>" + " · ".join(html.escape(p) for p in parts if p) + "</div>"


def params_md(non_embedding: int, embedding: int, settings) -> str:
    """The parameter counts line: N (non-embedding) with the embedding beside, and the tokens a run will see."""
    tokens = settings.steps * settings.batch_size * settings.seq_len
    return (f"**N = {non_embedding:,}** non-embedding parameters (+ {embedding:,} in the tied 512 x "
            f"{settings.d_model} embedding). This run sees {tokens:,} tokens = **{tokens / max(1, non_embedding):.2f} "
            f"tokens per parameter** (Chinchilla's compute-optimal ratio is ~20).")
