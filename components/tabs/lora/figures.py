"""Figures of the LoRA tab: live loss curve, step diagnostics, runs overlaid, ‖BA‖ heatmap, next-token shift.

Inputs are the engine's frozen results (numpy arrays): :class:`explorer.lora.RunSnapshot`,
:class:`explorer.lora.infer.AdapterNorms`, :class:`explorer.lora.infer.NextTokenShift`. No torch here.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _steps(snap) -> np.ndarray:
    return np.arange(1, snap.steps_done + 1)


def loss_figure(snap) -> go.Figure:
    """Loss per step (raw and EMA-smoothed, nats/token) with the learning rate on a second axis."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if snap is not None and snap.steps_done:
        x = _steps(snap)
        fig.add_trace(go.Scatter(x=x, y=snap.loss, name="loss", mode="lines+markers",
                                 line=dict(color="#9ecae1"), marker=dict(size=4)))
        fig.add_trace(go.Scatter(x=x, y=snap.smoothed_loss, name="loss (smoothed)", line=dict(color=COLORS[0], width=3)))
        fig.add_trace(go.Scatter(x=x, y=snap.learning_rate, name="learning rate", line=dict(color="#999", dash="dot")),
                      secondary_y=True)
    total = snap.total_steps if snap is not None else 1
    fig.update_xaxes(title_text="step", range=[0.5, max(total, 1) + 0.5])
    fig.update_yaxes(title_text="loss (nats per trained token)", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="learning rate", showgrid=False, rangemode="tozero", secondary_y=True)
    fig.update_layout(height=360, margin=dict(l=60, r=60, t=40, b=40), legend=dict(orientation="h", y=1.12),
                      title="Training loss" if snap is None else f"Run {snap.run_id}: {snap.status}")
    return fig


def diagnostics_figure(snap) -> go.Figure:
    """Gradient norm (L2, before clipping) and throughput (tokens/s) per step."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("gradient norm (before clipping)", "tokens per second"))
    if snap is not None and snap.steps_done:
        x = _steps(snap)
        fig.add_trace(go.Scatter(x=x, y=snap.grad_norm, name="grad norm", line=dict(color=COLORS[3])), 1, 1)
        fig.add_trace(go.Scatter(x=x, y=snap.tokens_per_s, name="tokens/s", line=dict(color=COLORS[2])), 1, 2)
        clip = (snap.settings or {}).get("max_grad_norm") or 0
        if clip:
            fig.add_hline(y=clip, line=dict(color="#999", dash="dash"), row=1, col=1)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=280, showlegend=False, margin=dict(l=50, r=20, t=40, b=40))
    return fig


def run_label(snap) -> str:
    """Short label of a run's settings: ``r=16 α=32 all-linear QLoRA``."""
    s = snap.settings or {}
    targets = ",".join(t.replace("_proj", "") for t in s.get("target_modules", []))
    return (f"{snap.run_id[:6]} r={s.get('r')} α={s.get('lora_alpha', 0):g} {targets}"
            f"{' rsLoRA' if s.get('use_rslora') else ''}{' QLoRA' if s.get('qlora') else ''} lr={s.get('learning_rate', 0):g}")


def runs_figure(snaps: list) -> go.Figure:
    """Smoothed loss curves of every run of the session, overlaid."""
    fig = go.Figure()
    for i, snap in enumerate(s for s in snaps if s.steps_done):
        fig.add_trace(go.Scatter(x=_steps(snap), y=snap.smoothed_loss, name=run_label(snap),
                                 line=dict(color=COLORS[i % len(COLORS)], width=2)))
    fig.update_layout(height=320, xaxis_title="step", yaxis_title="loss (smoothed)", title="Runs compared",
                      margin=dict(l=60, r=20, t=40, b=40), legend=dict(font=dict(size=10)))
    return fig


def norms_figure(norms) -> go.Figure:
    """Heatmap layers × modules of ‖scaling·BA‖_F (blank where a module has no adapter)."""
    values = np.where(np.isnan(norms.norms), None, norms.norms)
    fig = go.Figure(go.Heatmap(z=values.tolist(), x=list(norms.modules), y=list(range(norms.norms.shape[0])),
                               colorscale="Viridis", colorbar=dict(title="‖BA‖")))
    fig.update_layout(height=460, xaxis_title="module", yaxis_title="layer", title="Size of the learned update per layer",
                      margin=dict(l=60, r=20, t=40, b=40))
    return fig


def shift_figure(shift) -> go.Figure:
    """Next-token probabilities, base vs adapted, on the union of both top-k tokens."""
    labels = [repr(t)[1:-1] or "∅" for t in shift.tokens]
    fig = go.Figure([go.Bar(x=labels, y=shift.p_base, name="base", marker_color="#9ecae1"),
                     go.Bar(x=labels, y=shift.p_adapted, name="adapted", marker_color=COLORS[0])])
    fig.update_layout(barmode="group", height=320, yaxis_title="probability", yaxis_range=[0, 1],
                      title=f"Next token after the prompt · KL(adapted‖base) = {shift.kl_nats:.3f} nats",
                      margin=dict(l=60, r=20, t=40, b=60))
    return fig


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def status_html(snap) -> str:
    """Progress bar and the latest step's figures (loss, learning rate, grad norm, tokens/s, time)."""
    if snap is None:
        return "<p>No run yet: pick data and settings, then press <b>Train</b>.</p>"
    done, total = snap.steps_done, max(snap.total_steps, 1)
    parts = [f"<b>{html.escape(snap.status)}</b> · run <code class='lora-run-id'>{html.escape(snap.run_id)}</code>"
             f" · step {done}/{snap.total_steps}"]
    if done:
        parts += [f"loss {snap.loss[-1]:.3f} (smoothed {snap.smoothed_loss[-1]:.3f})",
                  f"lr {snap.learning_rate[-1]:.2e}", f"grad norm {snap.grad_norm[-1]:.3f}",
                  f"{snap.tokens_per_s[-1]:.0f} tokens/s", f"elapsed {_clock(snap.elapsed_s[-1])}",
                  f"remaining ~{_clock(snap.remaining_s)}"]
    params = (f"{snap.trainable_params:,} trainable of {snap.total_params:,} parameters "
              f"({snap.trainable_percent:.2f} %)")
    message = f"<p>{html.escape(snap.message)}</p>" if snap.message else ""
    return (f"<progress value='{done}' max='{total}' style='width:100%'></progress>"
            f"<p>{' · '.join(parts)}</p><p>{params}</p>{message}")
