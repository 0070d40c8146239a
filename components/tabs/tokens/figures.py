"""Figures and HTML for the Tokens tab: coloured token chips and the tokenizer comparison chart."""
from __future__ import annotations

import html

import plotly.graph_objects as go

# Pastel colours readable in light and dark themes (dark text on all of them).
PALETTE = ["#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6", "#a0c4ff", "#ffadad"]
_MARKERS = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}


def visible_whitespace(text: str) -> str:
    """Replace space, newline, tab and carriage return with visible markers (·, ↵, →, ␍)."""
    return "".join(_MARKERS.get(ch, ch) for ch in text)


def chips_html(tokens, limit: int, show_ids: bool = False, title: str = "") -> str:
    """HTML of coloured chips, one per token (first ``limit`` only, with a notice when capped).

    Tokens that share a UTF-8 character (same ``group``, ``partial``) sit inside one dashed box.
    Special tokens get a dark outline. Hovering a chip shows id, bytes and character span.
    """
    shown = tokens[:limit]
    parts = [f"<div class='tok-block'><div class='tok-title'><b>{html.escape(title)}</b></div><div class='tok-chips'>"]
    i = 0
    while i < len(shown):
        j = i + 1
        while j < len(shown) and shown[j].group == shown[i].group and shown[i].partial:
            j += 1
        grouped = j - i > 1
        if grouped:
            parts.append("<span class='tok-group' title='these tokens together form one character' "
                         "style='border:1px dashed #888;border-radius:5px;padding:1px;display:inline-block'>")
        for k in range(i, j):
            parts.append(_chip(shown[k], k, show_ids))
        if grouped:
            parts.append("</span>")
        i = j
    parts.append("</div>")
    if len(tokens) > limit:
        parts.append(f"<p class='tok-notice'>Showing the first {limit:,} of {len(tokens):,} tokens; "
                     "the counts cover the whole text.</p>")
    parts.append("</div>")
    return "".join(parts)


def _chip(token, index: int, show_ids: bool) -> str:
    colour = PALETTE[index % len(PALETTE)]
    outline = "outline:2px solid #333;" if token.special else ""
    label = html.escape(visible_whitespace(token.text))
    if token.text.endswith("\n"):
        label += "<br>"
    tip = html.escape(f"id {token.id} · bytes {token.bytes_hex or '-'} · chars [{token.start}, {token.end})"
                      + (" · special" if token.special else "") + (" · part of a character" if token.partial else ""))
    id_line = f"<sub style='color:#555'>{token.id}</sub>" if show_ids else ""
    return (f"<span class='tok-chip' data-id='{token.id}' title='{tip}' "
            f"style='background:{colour};color:#111;{outline}'>{label}{id_line}</span>")


def comparison_figure(rows: list[dict]) -> go.Figure:
    """Bar chart of token counts per tokenizer, annotated with characters per token.

    ``rows``: dicts with ``name``, ``count``, ``chars_per_token``.
    """
    fig = go.Figure(go.Bar(
        x=[r["name"] for r in rows], y=[r["count"] for r in rows],
        text=[f"{r['count']:,} tokens<br>{r['chars_per_token']:.2f} chars/token" for r in rows],
        textposition="auto", marker_color=PALETTE[: len(rows)], marker_line_color="#333", marker_line_width=1))
    fig.update_layout(title="Tokens for the same text", yaxis_title="tokens", height=320,
                      margin=dict(l=40, r=10, t=40, b=40))
    return fig
