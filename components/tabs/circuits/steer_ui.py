"""The Circuits tab's "Steer" section: a contrastive steering vector (``explorer.circuits.steering``) added at a
layer with a strength, the unsteered and steered generations side by side, the vector's logit-lens top tokens.
``/steer`` is the JSON API.
"""
from __future__ import annotations

import html

import gradio as gr

from components.badge import badge_md
from components.errors import ui_errors
from components.tabs.circuits.sweep_ui import build_sweep_section
from explorer.circuits import steering as st

CUSTOM = "custom (type your own)"


def steer_api(model: str | None = None, positive: list | str = "sentiment", negative: list | str | None = None,
              layer: int = 10, strength: float = 0.5, prompt: str = "I think the movie was",
              max_new_tokens: int = 20, seed: int | None = None, chat_template: bool = False) -> dict:
    """JSON API ``/steer``: ``{"vector_norm", "layer_norm", "unsteered", "steered", "top_tokens", "notices"}``
    (``positive`` may name a built-in set: sentiment, formality, language)."""
    try:
        return st.run_steer(model or None, positive, negative or None, layer, strength, prompt, max_new_tokens,
                            seed, bool(chat_template)).to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def _fill(key):
    if key not in st.SETS:
        return gr.update(), gr.update()
    pos, neg = st.SETS[key]
    return "\n".join(pos), "\n".join(neg)


def build_steer_section(ctx, chat) -> dict:
    """Build the "Steer" section (inside the Circuits tab); returns its components by name."""
    gr.Markdown("### Steer: push the model with a vector\nThe mean residual stream (output of one block) over the "
                "positive texts minus the same over the negative texts is a direction; it is added, scaled to "
                "*strength* × the layer's mean residual norm, at every position of every pass. Left: the model as "
                "it is; right: steered. Around 0.5 is usable; past 1 the text usually breaks.")
    layers = 30  # SmolLM2-135M's blocks; a larger layer on a smaller model is refused with a clear message
    with gr.Row():
        pair = gr.Dropdown(list(st.SETS) + [CUSTOM], value="sentiment", label="contrast set")
        layer = gr.Slider(0, layers - 1, value=10, step=1, label="layer (block, 0-based)")
        strength = gr.Slider(-2, 2, value=0.5, step=0.05, label="strength", elem_id="circuits-steer-strength")
    with gr.Row():
        positive = gr.Textbox("\n".join(st.SETS["sentiment"][0]), lines=4, label="positive texts (one per line)")
        negative = gr.Textbox("\n".join(st.SETS["sentiment"][1]), lines=4, label="negative texts (one per line)")
    with gr.Row():
        prompt = gr.Textbox("I think the movie was", label="prompt to continue")
        tokens = gr.Slider(1, min(64, ctx.limits.max_new_tokens), value=20, step=1, label="new tokens")
        seed = gr.Number(None, precision=0, label="seed (empty = greedy)")
        run = gr.Button("Steer", variant="primary", elem_id="circuits-steer-run")
    badge = gr.Markdown(elem_id="circuits-steer-badge")
    with gr.Row():
        plain = gr.Textbox(label="unsteered (strength 0)", lines=4, elem_id="circuits-steer-plain")
        steered = gr.Textbox(label="steered", lines=4, elem_id="circuits-steer-steered")
    top = gr.Markdown(elem_id="circuits-steer-top")

    @ui_errors
    def _steer(model, pos, neg, layer_, strength_, prompt_, n, seed_, use_chat):
        result = st.run_steer(model, pos, neg, int(layer_), float(strength_), prompt_, int(n),
                              None if seed_ is None else int(seed_), bool(use_chat))
        notes = "".join(f"\n\n> {html.escape(x)}" for x in result.notices)
        head = (f"{badge_md(result.provenance)}\n\nLayer {result.layer}, strength {result.strength:g}: "
                f"‖vector‖ = {result.vector_norm:.2f}, layer's mean residual norm = {result.layer_norm:.2f}.{notes}")
        words = ", ".join(f"`{html.escape(repr(t))}` {v:.1f}" for t, v in result.top_tokens)
        return head, result.unsteered, result.steered, f"**The vector through the logit lens** (top 10): {words}"

    inputs = [ctx.model, positive, negative, layer, strength, prompt, tokens, seed, chat]
    outputs = [badge, plain, steered, top]
    pair.change(_fill, pair, [positive, negative], api_visibility="private")
    run.click(_steer, inputs, outputs, api_visibility="private", concurrency_id="circuits-model")
    strength.release(_steer, inputs, outputs, api_visibility="private", concurrency_id="circuits-model")
    gr.api(steer_api, api_name="steer")
    sweep = build_sweep_section(ctx, chat, positive, negative, prompt, tokens)
    return {**sweep, "steer_run": run, "steer_strength": strength, "steer_plain": plain, "steer_steered": steered}
