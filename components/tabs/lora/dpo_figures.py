"""Figures of the DPO section: the live margin, rewards, log-probs and KL; DPO runs overlaid; the status line.

Inputs are :class:`explorer.lora.dpo.DpoSnapshot` (numpy arrays). No torch here.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.tabs.lora.figures import COLORS

CHOSEN, REJECTED, MARGIN = "#2ca02c", "#d62728", "#1f77b4"


def dpo_figure(snap) -> go.Figure:
    """2 × 2 panels per step: implicit rewards and their margin; loss and reward accuracy; chosen / rejected
    log-probs (noting when both fall); KL to the reference on the held-out prompts."""
    fig = make_subplots(rows=2, cols=2, vertical_spacing=0.16, horizontal_spacing=0.09,
                        subplot_titles=("implicit rewards r = β·(log π − log π_ref) and margin",
                                        "DPO loss and reward accuracy (batch)",
                                        "log-probabilities of the answers (nats)",
                                        "KL(π ‖ π_ref) on held-out prompts (nats/token)"),
                        specs=[[{}, {"secondary_y": True}], [{}, {}]])
    total = 1
    if snap is not None:
        total = int(snap.dpo_settings.get("steps", 1))
    if snap is not None and snap.steps_done:
        x = np.arange(1, snap.steps_done + 1)
        fig.add_trace(go.Scatter(x=x, y=snap.margins, name="margin", line=dict(color=MARGIN, width=3)), 1, 1)
        fig.add_trace(go.Scatter(x=x, y=snap.chosen_rewards, name="chosen reward", line=dict(color=CHOSEN)), 1, 1)
        fig.add_trace(go.Scatter(x=x, y=snap.rejected_rewards, name="rejected reward", line=dict(color=REJECTED)),
                      1, 1)
        fig.add_trace(go.Scatter(x=x, y=snap.losses, name="loss", line=dict(color="#7f7f7f")), 1, 2)
        fig.add_trace(go.Scatter(x=x, y=snap.reward_accuracy, name="reward accuracy", mode="lines+markers",
                                 line=dict(color=COLORS[3], dash="dot"), marker=dict(size=4)), 1, 2, secondary_y=True)
        fig.add_trace(go.Scatter(x=x, y=snap.chosen_logps, name="log π(chosen)", line=dict(color=CHOSEN)), 2, 1)
        fig.add_trace(go.Scatter(x=x, y=snap.rejected_logps, name="log π(rejected)", line=dict(color=REJECTED)), 2, 1)
        if snap.both_fell:
            fig.add_annotation(text="both fell: the margin grows by pushing 'rejected' down faster",
                               xref="x3 domain", yref="y4 domain", x=0.02, y=0.02, showarrow=False,
                               font=dict(size=11, color="#555"), xanchor="left", yanchor="bottom")
        if snap.kl.size:
            fig.add_trace(go.Scatter(x=snap.kl_steps, y=snap.kl, name="KL", mode="lines+markers",
                                     line=dict(color=COLORS[4])), 2, 2)
    fig.add_hline(y=0, line=dict(color="#bbb", dash="dash"), row=1, col=1)
    fig.update_xaxes(title_text="step", range=[0.5, max(total, 1) + 0.5])
    fig.update_yaxes(title_text="accuracy", range=[-0.05, 1.05], secondary_y=True, row=1, col=2, showgrid=False)
    fig.update_yaxes(rangemode="tozero", row=2, col=2)
    title = "DPO" if snap is None else f"DPO run {snap.run_id}: {snap.status} (β = {snap.beta:g})"
    fig.update_layout(height=560, margin=dict(l=50, r=50, t=70, b=40), legend=dict(orientation="h", y=-0.12),
                      title=title)
    return fig


def dpo_runs_figure(snaps: list) -> go.Figure:
    """Margins of the session's DPO runs overlaid (one line per run, labelled by β, lr and reference)."""
    fig = go.Figure()
    for i, snap in enumerate(s for s in snaps if s.steps_done):
        st = snap.dpo_settings
        label = (f"{snap.run_id[:6]} β={st['beta']:g} lr={st['learning_rate']:g} r={st['rank']}"
                 f"{' from ' + st['start_from'][:6] if st.get('start_from') else ''}")
        fig.add_trace(go.Scatter(x=np.arange(1, snap.steps_done + 1), y=snap.margins, name=label,
                                 line=dict(color=COLORS[i % len(COLORS)], width=2)))
    fig.update_layout(height=300, xaxis_title="step", yaxis_title="margin (β·nats)", title="DPO runs compared",
                      margin=dict(l=60, r=20, t=40, b=40), legend=dict(font=dict(size=10)))
    return fig


def dpo_status_html(snap) -> str:
    """Progress bar and the latest step's figures (margin, accuracy, loss, KL, time)."""
    if snap is None:
        return "<p>No DPO run yet: pick preference pairs and settings, then press <b>Train DPO</b>.</p>"
    total = int(snap.dpo_settings.get("steps", 1))
    parts = [f"<b>{html.escape(snap.status)}</b> · run <code class='dpo-run-id'>{html.escape(snap.run_id)}</code>"
             f" · step {snap.steps_done}/{total}"]
    if snap.phase:
        parts.append(html.escape(snap.phase))
    if snap.steps_done:
        parts += [f"margin {snap.margins[-1]:.3f}", f"reward accuracy {snap.reward_accuracy[-1]:.0%}",
                  f"loss {snap.losses[-1]:.3f}", f"{snap.base.seconds_per_step:.2f} s/step"]
    if snap.kl.size:
        parts.append(f"KL {snap.kl[-1]:.4f} nats/token")
    message = f"<p>{html.escape(snap.base.message)}</p>" if snap.base.message else ""
    return (f"<progress value='{snap.steps_done}' max='{max(total, 1)}' style='width:100%'></progress>"
            f"<p>{' · '.join(parts)}</p>{message}")
