"""Figures and tables of the token inspector: an :class:`explorer.inspect.InspectResult` -> plotly / Markdown."""
from __future__ import annotations

import html

import plotly.graph_objects as go


def _code(text: str) -> str:
    """``repr`` of a token for a Markdown code span (backticks replaced: they would end the span)."""
    return repr(text).replace("`", "'")


def _show(text: str) -> str:
    return text.replace("\n", "⏎").replace("\t", "⇥").replace(" ", "␣") if text.strip() == "" else text


def attention_figure(result) -> go.Figure:
    """Heatmap layers × keys: this token's attention row, mean over the heads of each layer (rows sum to 1)."""
    att = result.attention
    keys = [f"{i}:{_show(k)}" for i, k in enumerate(att["keys"])]
    fig = go.Figure(go.Heatmap(z=att["mean_over_heads"], x=keys, y=list(range(len(att["mean_over_heads"]))),
                               colorscale="Viridis", zmin=0, zmax=1, colorbar=dict(title="weight"),
                               hovertemplate="layer %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>"))
    fig.update_layout(title=f"What {result.token['text']!r} (position {result.position}) attends to: mean over heads",
                      xaxis_title="key (earlier token)", yaxis_title="layer", height=420,
                      margin=dict(l=50, r=10, t=50, b=80))
    return fig


def logit_lens_figure(result) -> go.Figure:
    """Per layer, the probability of the model's final top-1 token (line) with each layer's own top-1 as text."""
    lens = result.logit_lens
    layers = [row["layer"] for row in lens["layers"]]
    fig = go.Figure(go.Scatter(
        x=layers, y=[row["final_token_p"] for row in lens["layers"]], mode="lines+markers+text",
        text=[_show(row["top"][0]["text"]) for row in lens["layers"]], textposition="top center",
        hovertemplate="layer %{x}<br>p(final token) %{y:.4f}<br>layer's top-1 %{text}<extra></extra>",
        name=f"p({lens['final_token']['text']!r})"))
    fig.update_layout(title=f"Logit lens at position {result.position}: probability of the final prediction "
                            f"{lens['final_token']['text']!r} layer by layer (text = that layer's top-1)",
                      xaxis_title="layer (0 = embeddings)", yaxis_title="probability", yaxis_range=[0, 1.05],
                      height=360, margin=dict(l=50, r=10, t=50, b=40))
    return fig


def token_md(result) -> str:
    """The token: position, id, text, bytes and what part of the sequence it is."""
    t = result.token
    byte_part = f" · bytes `{t['bytes_hex']}` ({t['n_bytes']})" if t["bytes_hex"] is not None else ""
    return (f"### Token {t['position']} of {result.n_tokens}: `{_code((t['text']))}`\n"
            f"id **{t['id']}**{byte_part} · {t['kind']} · {result.model}")


def prediction_md(result) -> str:
    """Top-k at this position, the surprisal of the token that follows and of this token."""
    pred = result.prediction
    lines = ["| rank | next token | p |", "| --- | --- | --- |"]
    lines += [f"| {i + 1} | `{_code((c['text']))}` | {c['p']:.4f} |" for i, c in enumerate(pred["top"])]
    nxt, this = pred["next_token"], pred["this_token"]
    notes = []
    if nxt:
        notes.append(f"The text continues with `{_code((nxt['text']))}`: p = {nxt['p']:.4f}, rank "
                     f"{nxt['rank']}, surprisal {nxt['surprisal_nats']:.2f} nats ({nxt['surprisal_bits']:.2f} bits).")
    if this:
        notes.append(f"This token itself had rank {this['rank']} and surprisal {this['surprisal_nats']:.2f} nats "
                     "where it was predicted.")
    return "\n".join(lines) + "\n\n" + " ".join(notes)


def kv_md(result) -> str:
    """The KV bytes this token adds, with the formula."""
    kv = result.kv_bytes
    return (f"**{kv['added_bytes']:,} bytes** added to the KV cache by this token ({kv['formula']}); "
            f"{kv['cache_bytes_after']:,} bytes after it. Measured for all {kv['measured_tokens']} tokens: "
            f"{kv['measured_cache_bytes']:,} bytes.")


def quantization_md(result) -> str:
    """int8 and NF4 against the reference at this position."""
    rows = ["| copy | KL(ref ‖ copy), nats | same top-1 | its top-1 |", "| --- | --- | --- | --- |"]
    for name, q in result.quantization.items():
        if q.get("error"):
            rows.append(f"| {name} | could not run: {html.escape(q['error'][:120])} | | |")
            continue
        rows.append(f"| {name} | {q['kld']:.5f} | {'yes' if q['same_top'] else '**no**'} | "
                    f"`{_code((q['top1']['text']))}` |")
    return "\n".join(rows)


def confidence_md(result) -> str:
    """The answer token's confidence and the answer's attribution, or why there is none."""
    c = result.confidence
    if c is None:
        return f"No answer confidence: {result.confidence_reason}"
    alts = ", ".join(f"`{_code((p))}` {q:.3f}" for p, q in c["alternatives"])
    text = (f"Answer token {c['answer_index']}: p = {c['prob']:.4f}, entropy {c['entropy']:.3f} nats, rank "
            f"{c['rank']} ({c['band']}). Alternatives: {alts}.")
    att = c.get("attribution")
    if att:
        best = sorted(zip(att["segments"], att["scores"]), key=lambda t: -t[1])[:3]
        text += " Words of the question that drove the answer: " + ", ".join(
            f"`{html.escape(s.strip())}` {v:+.2f}" for s, v in best) + " nats."
    elif result.confidence_reason:
        text += " " + result.confidence_reason
    return text
