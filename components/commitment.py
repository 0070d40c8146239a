"""The commitment strip ("where each token is decided", ``explorer.circuits.commitment``) under generated text, shared
by the Decoding tab and the Inspector: each greedy token with, beneath it, the first layer from which the logit lens
keeps it as the top-1 (early = pale, late = dark). ``/commitment`` is the JSON API (registered by the Decoding tab, :func:`commitment_json`).
"""
from __future__ import annotations

import html

import gradio as gr

from components.badge import badge_md
from explorer.circuits.commitment import run_commitment


def commitment_json(text: str, model: str | None = None, max_new_tokens: int = 16, chat_template: bool = True) -> dict:
    """What ``/commitment`` returns: ``{"tokens": [{"text", "layer"}], "num_layers", "notices"}``; ``layer`` is the
    ``hidden_states`` index (0 = embeddings … num_layers = the model's output) or null when never the top-1. The
    Decoding tab registers the API (its handlers are the tab's, so ZeroGPU sizes them)."""
    try:
        return run_commitment(text, model or None, max_new_tokens, bool(chat_template)).to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def strip_for(text, model, n, use_chat=True) -> str:
    """The strip's HTML for a prompt (what a tab's ``_commitment`` handler returns)."""
    return strip_html(run_commitment(text, model, int(n), bool(use_chat)))


def strip_html(result) -> str:
    """The strip as HTML: a badge line, then one cell per token (its text above, its commitment layer below, the
    cell shaded by layer / num_layers so late decisions stand out); "never" where the layer is None."""
    cells = []
    for text, layer in zip(result.texts, result.layers):
        share = 1.0 if layer is None else layer / max(1, result.num_layers)
        shade = f"rgba(234, 88, 12, {0.12 + 0.78 * share:.2f})"
        label = "never" if layer is None else f"L{layer}"
        cells.append(f"<span class='commit-cell' style='display:inline-block;margin:1px;padding:2px 4px;"
                     f"border-radius:4px;background:{shade};text-align:center'>"
                     f"<span style='white-space:pre'>{html.escape(text) or '&nbsp;'}</span><br>"
                     f"<small data-layer='{'' if layer is None else layer}'>{label}</small></span>")
    notes = "".join(f"<br><em>{html.escape(n)}</em>" for n in result.notices)
    return (f"<div class='commit-strip'>{badge_md(result.provenance)}<br>"
            f"<small>Under each greedily generated token: the first layer (of {result.num_layers}; 0 = the "
            f"embeddings) from which the logit lens keeps it as the top-1 prediction. Darker = decided later."
            f"</small><div>{''.join(cells)}</div>{notes}</div>")


def build_commitment_section(ctx, handler, chat=None, key: str = "decoding", max_new_tokens: int = 16) -> dict:
    """A button and the strip for the shared prompt. ``handler(text, model, n[, chat])`` is the tab's own
    (defined in the tab's module, so ZeroGPU wraps it; it returns :func:`strip_for`); ``chat``: a Checkbox for the
    chat template, or None to always use it (as the Decoding tab does); element ids start with ``key``."""
    with gr.Row():
        tokens = gr.Slider(1, min(64, ctx.limits.max_new_tokens), value=min(max_new_tokens, ctx.limits.max_new_tokens),
                           step=1, label="greedy tokens", scale=3)
        run = gr.Button("Where is each token decided?", elem_id=f"{key}-commit-run", scale=1)
    strip = gr.HTML(elem_id=f"{key}-commit-strip")
    inputs = [ctx.prompt, ctx.model, tokens] + ([chat] if chat is not None else [])
    run.click(handler, inputs, strip, api_visibility="private", concurrency_id=f"{key}-commit")
    return {"commit_run": run, "commit_strip": strip, "commit_tokens": tokens}
