"""Figures for the Decoding tab: side-by-side columns (HTML), the step-by-step distribution, temperature.

All functions take the frozen results of ``explorer.decoding`` (numpy) and return plotly Figures or HTML
strings; nothing here runs the model. Beam trees and speculative decoding live in ``decoding_views``.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from explorer.decoding.decode import temperature_distribution

STAGE_COLOURS = ["#8e44ad", "#e67e22", "#16a085", "#c0392b", "#2c3e50", "#7f8c8d", "#d35400"]
RAW_COLOUR = "#95a5a6"
CHOSEN_COLOUR = "#2e86de"


def empty_figure(message: str) -> go.Figure:
    """A blank figure carrying a hint (before the first run)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=14))
    fig.update_layout(xaxis=dict(visible=False), yaxis=dict(visible=False), height=300,
                      margin=dict(l=20, r=20, t=30, b=20))
    return fig


def readable(text: str) -> str:
    """Token text with whitespace made visible (space as ␣, newline as ↵)."""
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


def _chip(text: str, prob: float, title: str, extra_style: str = "") -> str:
    # light (unlikely) to dark blue (certain); text stays readable
    alpha = 0.08 + 0.75 * float(np.clip(prob, 0.0, 1.0))
    colour = "#fff" if alpha > 0.55 else "#111"
    return (f'<span class="tok-chip" title="{html.escape(title)}" style="background:rgba(46,134,222,{alpha:.2f});'
            f'color:{colour};{extra_style}">{html.escape(text)}</span>')


def columns_html(result, max_columns: int = 6) -> str:
    """The runs side by side: label, seed, sequence log-probability, tokens/s, shaded tokens, loop marker.

    Token shade = the model's raw probability of that token (light = unlikely, dark = certain).
    """
    if result is None:
        return "<p>Run the strategies to see their texts side by side.</p>"
    cells = []
    for index, run in enumerate(result.runs[:max_columns]):
        chips = []
        for pos, (text, logprob) in enumerate(zip(run.token_texts, run.token_logprobs)):
            if run.loop_start is not None and pos == run.loop_start:
                chips.append('<span style="background:#e74c3c;color:#fff;border-radius:3px;padding:0 4px;'
                             'font-size:11px" title="from here the text repeats itself">⟲ loop</span>')
            prob = float(np.exp(logprob))
            chips.append(_chip(text, prob, f"token {pos}: p = {prob:.3f} (log p = {logprob:.2f})"))
        seed = f"seed <b>{run.seed}</b>" if run.seed is not None else "deterministic"
        head = (f"<div style='font-weight:600'>{index + 1}. {html.escape(run.label)}</div>"
                f"<div style='font-size:12px;color:#555'>{seed} · log p = {run.sequence_logprob:.2f} · "
                f"{len(run.token_ids)} tokens · {run.tokens_per_s:.1f} tokens/s"
                + (f" · loop from token {run.loop_start}" if run.loop_start is not None else "") + "</div>")
        cells.append(f"<div style='flex:1 1 0;min-width:220px;border:1px solid #ddd;border-radius:6px;"
                     f"padding:6px'>{head}<div style='margin-top:4px;line-height:1.9'>{''.join(chips)}</div></div>")
    legend = ("<div style='font-size:12px;color:#555;margin-bottom:4px'>Shade = probability the model gave the "
              "token (light: unlikely, dark: certain). Hover a token for its probability.</div>")
    return legend + "<div style='display:flex;gap:8px;flex-wrap:wrap'>" + "".join(cells) + "</div>"


def step_figure(run, step: int, vocab_text: dict) -> go.Figure:
    """Top-20 next tokens at ``step``: raw probability, then each processor's renormalised probability.

    Bars at 0 after a stage mean that stage removed the token; the chosen token is marked with ▶.
    """
    if run is None or run.steps is None:
        return empty_figure("Pick a greedy or sampling column to scrub through its steps.")
    records = run.steps
    step = int(np.clip(step, 0, records.num_steps - 1))
    ids = records.top_ids[step]
    chosen = int(records.chosen_ids[step])
    labels = [("▶ " if int(i) == chosen else "") + readable(vocab_text.get(int(i), str(int(i)))) + f"  #{k + 1}"
              for k, i in enumerate(ids)]
    fig = go.Figure()
    fig.add_bar(y=labels, x=records.raw_probs[step], orientation="h", name="raw (model)", marker_color=RAW_COLOUR,
                hovertemplate="%{y}: raw p = %{x:.4f}<extra></extra>")
    for s, name in enumerate(records.stage_names):
        kept = int(records.stage_kept[step, s])
        fig.add_bar(y=labels, x=records.stage_probs[step, s], orientation="h",
                    name=f"after {name} ({kept:,} kept)", marker_color=STAGE_COLOURS[s % len(STAGE_COLOURS)],
                    hovertemplate="%{y}: p = %{x:.4f}<extra>" + html.escape(name) + "</extra>")
    chosen_text = readable(vocab_text.get(chosen, str(chosen)))
    off_chart = "" if chosen in set(int(i) for i in ids) else " (outside the top 20)"
    title = (f"Step {step + 1}/{records.num_steps}: chose '{chosen_text}'{off_chart} · raw p = "
             f"{records.chosen_raw_probs[step]:.3f} · p after processors = {records.chosen_final_probs[step]:.3f} · "
             f"entropy {records.entropy_nats[step]:.2f} nats")
    fig.update_layout(barmode="group", title=dict(text=title, font=dict(size=13)), height=620,
                      yaxis=dict(autorange="reversed", tickfont=dict(family="monospace")),
                      xaxis=dict(title="probability", range=[0, 1.02]), legend=dict(orientation="h", y=-0.12),
                      margin=dict(l=10, r=10, t=50, b=60))
    return fig


def temperature_figure(first_logits, temperature: float, vocab_text: dict, top: int = 20) -> go.Figure:
    """The next-token distribution after the prompt, reshaped by ``temperature`` beside the original (T = 1).

    The title gives both entropies (nats); T = 0 is greedy (all mass on the top token).
    """
    if first_logits is None:
        return empty_figure("Run the strategies first: the distribution after the prompt appears here.")
    base, base_entropy = temperature_distribution(first_logits, 1.0)
    probs, entropy = temperature_distribution(first_logits, float(temperature))
    order = np.argsort(-np.asarray(first_logits))[:top]
    labels = [readable(vocab_text.get(int(i), str(int(i)))) + f"  #{k + 1}" for k, i in enumerate(order)]
    fig = go.Figure()
    fig.add_bar(y=labels, x=base[order], orientation="h", name="T = 1 (model)", marker_color=RAW_COLOUR,
                opacity=0.6)
    fig.add_bar(y=labels, x=probs[order], orientation="h", name=f"T = {temperature:g}", marker_color=CHOSEN_COLOUR)
    effect = ("greedy: all mass on the top token" if temperature == 0 else
              "unchanged" if temperature == 1 else "sharper" if temperature < 1 else "flatter")
    fig.update_layout(barmode="group", height=560, title=dict(
        text=f"T = {temperature:g} ({effect}) · entropy {entropy:.2f} nats (T = 1: {base_entropy:.2f}) · "
             f"top-{top} mass {probs[order].sum():.2f}", font=dict(size=13)),
        yaxis=dict(autorange="reversed", tickfont=dict(family="monospace")), xaxis=dict(title="probability"),
        legend=dict(orientation="h", y=-0.12), margin=dict(l=10, r=10, t=50, b=60))
    return fig
