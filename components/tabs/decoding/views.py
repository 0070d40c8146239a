"""Figures for the Decoding tab's beam-search tree and speculative decoding (result -> plotly / HTML)."""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from components.tabs.decoding.figures import empty_figure, readable

WINNER = "#e67e22"
KEPT = "#2e86de"
PRUNED = "#bdc3c7"
ENDED = "#27ae60"


def beam_tree_figure(run, vocab_text: dict) -> go.Figure:
    """The beam-search tree: x = step, y = candidate rank by cumulative log-probability.

    Kept beams are blue, pruned candidates faded grey, candidates that ended (end-of-sequence or length limit)
    green diamonds, the returned sequence orange; token text is written on the winner and ended hypotheses,
    hover shows every candidate's token and cumulative log-probability.
    """
    if run is None or run.beam is None:
        return empty_figure("Add a beam-search column and run to see its tree.")
    beam = run.beam
    steps, keep = beam.cand_token.shape
    kept = np.zeros((steps, keep), bool)
    for t in range(steps):
        kept[t, beam.running[t]] = True
    winner = {(t, int(c)) for t, c in enumerate(beam.winner)}
    fig = go.Figure()
    edge_x = {"kept": [], "pruned": []}
    edge_y = {"kept": [], "pruned": []}
    for t in range(1, steps):
        for k in range(keep):
            parent = int(beam.cand_parent[t, k])
            group = "kept" if kept[t, k] or beam.cand_finished[t, k] else "pruned"
            edge_x[group] += [t - 1, t, None]
            edge_y[group] += [parent, k, None]
    for group, colour, width in (("pruned", PRUNED, 1), ("kept", KEPT, 1.5)):
        fig.add_scatter(x=edge_x[group], y=edge_y[group], mode="lines", line=dict(color=colour, width=width),
                        hoverinfo="skip", showlegend=False)
    path = beam.winner
    fig.add_scatter(x=list(range(len(path))), y=path.tolist(), mode="lines", line=dict(color=WINNER, width=4),
                    name="returned sequence", hoverinfo="skip")
    styles = {"pruned": (PRUNED, "circle", 0.45), "kept": (KEPT, "circle", 1.0), "ended": (ENDED, "diamond", 1.0),
              "winner": (WINNER, "circle", 1.0)}
    points = {name: {"x": [], "y": [], "text": [], "hover": []} for name in styles}
    for t in range(steps):
        for k in range(keep):
            token = readable(vocab_text.get(int(beam.cand_token[t, k]), str(int(beam.cand_token[t, k]))))
            kind = ("winner" if (t, k) in winner else "ended" if beam.cand_finished[t, k] and k < beam.num_beams
                    else "kept" if kept[t, k] and not beam.cand_finished[t, k] else "pruned")
            bucket = points[kind]
            bucket["x"].append(t)
            bucket["y"].append(k)
            bucket["text"].append(token[:10] if kind in ("winner", "ended") else "")
            bucket["hover"].append(f"step {t + 1}, rank {k + 1}: '{html.escape(token)}'<br>"
                                   f"cumulative log p = {beam.cand_score[t, k]:.2f}<br>{kind}")
    names = {"pruned": "pruned", "kept": "kept beam", "ended": "ended (finished hypothesis)", "winner": "winner"}
    for kind, (colour, symbol, opacity) in styles.items():
        data = points[kind]
        fig.add_scatter(x=data["x"], y=data["y"], mode="markers+text", text=data["text"], textposition="top center",
                        textfont=dict(size=10, color="#333" if kind != "pruned" else "#aaa"),
                        marker=dict(color=colour, symbol=symbol, size=11, opacity=opacity),
                        hovertext=data["hover"], hoverinfo="text", name=names[kind])
    fig.update_layout(
        title=dict(text=f"Beam search, {beam.num_beams} beams ({keep} candidates per step) · returned sequence "
                        f"score {beam.winner_score:.3f} (log p / length^{beam.length_penalty:g})", font=dict(size=13)),
        xaxis=dict(title="step", dtick=1 if steps <= 24 else 5, range=[-0.5, steps - 0.5]),
        yaxis=dict(title="candidate rank", autorange="reversed", dtick=1),
        height=max(380, 48 * keep), legend=dict(orientation="h", y=-0.15), margin=dict(l=10, r=10, t=50, b=60))
    return fig


def speculative_figure(result, vocab_text: dict | None = None) -> go.Figure:
    """Per verification step: accepted drafts (green), rejected drafts (red), the target's own token (blue)."""
    if result is None:
        return empty_figure("Run speculative decoding to see drafted, accepted and rejected tokens.")
    steps = np.arange(1, len(result.drafted) + 1)
    drafted = np.array([len(d) for d in result.drafted])
    rejected = drafted - result.accepted
    vocab_text = vocab_text or {}

    def words(ids) -> str:
        return " ".join(repr(vocab_text.get(int(i), str(int(i)))) for i in ids) or "(none)"

    accepted_hover = [f"accepted: {words(d[:n])}" for d, n in zip(result.drafted, result.accepted)]
    rejected_hover = [f"rejected: {words(d[n:])}" for d, n in zip(result.drafted, result.accepted)]
    target_hover = [f"target's token: {words([t])}" for t in result.target_tokens]
    fig = go.Figure()
    for y, name, colour, hover in ((result.accepted, "accepted drafts", ENDED, accepted_hover),
                                   (rejected, "rejected drafts", "#e74c3c", rejected_hover),
                                   (np.ones_like(steps), "target's own token", KEPT, target_hover)):
        fig.add_bar(x=steps, y=y, name=name, marker_color=colour, hovertext=hover, hoverinfo="text")
    fig.update_layout(
        barmode="stack", height=380, xaxis=dict(title="verification step (one target forward pass)", dtick=1),
        yaxis=dict(title="tokens"), legend=dict(orientation="h", y=-0.2), margin=dict(l=10, r=10, t=50, b=60),
        title=dict(text=f"{result.method}: {len(result.token_ids)} tokens in {result.forward_passes} forward passes "
                        f"· acceptance {result.acceptance_rate:.0%} · speed-up {result.speedup:.2f}× · "
                        f"{'identical to' if result.identical else 'DIFFERENT from'} plain greedy",
                   font=dict(size=13)))
    return fig


def speculative_html(result) -> str:
    """The speculative output with accepted drafts green and the target's own tokens blue."""
    if result is None:
        return ""
    chips, pos = [], 0
    for draft, n_ok in zip(result.drafted, result.accepted):
        for k in range(int(n_ok) + 1):
            if pos >= len(result.token_texts):
                break
            colour = "rgba(39,174,96,0.35)" if k < n_ok else "rgba(46,134,222,0.35)"
            chips.append(f'<span class="tok-chip" style="background:{colour}" title="'
                         f'{"accepted draft" if k < n_ok else "target token"}">'
                         f"{html.escape(result.token_texts[pos])}</span>")
            pos += 1
    verdict = ("✅ identical to plain greedy" if result.identical
               else "⚠ differs from plain greedy (numerical tie between two tokens)")
    return (f"<div style='font-size:12px;color:#555'>green: accepted drafts · blue: tokens the target computed · "
            f"{verdict}</div><div style='line-height:1.9'>{''.join(chips)}</div>")
