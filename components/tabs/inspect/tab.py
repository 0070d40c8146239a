"""The Inspector tab: one token through every lens, opened by a click on a token in any tab (components/inspector.py)."""
from __future__ import annotations

import gradio as gr

from components import branching, commitment
from components.errors import ui_errors
from components.inspector import wire_token_clicks
from components.tabs.inspect import figures as figs
from components import badge
from explorer import inspect as lens
from explorer.core.validation import check_int, check_optional_text, check_text

INTRO = ("Click a token in **Tokens** (the model's own column), **Next token** or the **Attention** detail view to "
         "follow it through every lens here: what it attends to, the KV bytes it adds, the model's prediction "
         "there, the logit lens across layers, what int8 and NF4 change, and, for an answer token, its confidence. "
         "The text is analysed once (a reference pass, the int8 and NF4 copies' passes); every further click reads "
         "from that result without running the model again.")


@ui_errors
def inspect_api(text: str, model: str = "smollm2-135m-instruct", position: int = 0,
                chat_template: bool = False) -> dict:
    """``/inspect``: one token through every lens (see :func:`explorer.inspect.to_api`).

    ``position`` indexes the plain text's tokens (``chat_template=False``, as ``/attention`` and ``/perplexity``
    tokenize) or, with ``chat_template=True``, the hallucination lens's chat prompt followed by the model's answer.
    """
    text, model = check_text(text, "text"), check_optional_text(model, "model")
    position = check_int(position, "position", minimum=0)
    return lens.to_api(lens.run(text, model, position, chat_template is True))


def _badged(markdown: str, provenance) -> str:
    """A Markdown section that may hold a table, led by the result's badge (its component carries class
    ``badge.BADGED``, so the table sits in a badged box as components/badge.py's DOM convention asks)."""
    return f"{badge.badge_html(provenance)}\n\n{markdown}" if markdown else markdown


BRANCH_INTRO = ("#### Continue from here with another token\nThe model's most probable next tokens at this "
                "position: click one to force it right after this token and let the model continue greedily. "
                "Branches of this session form the tree below; pick two to compare them token by token.")


def _fork(result, text: str) -> tuple:
    """The branch panel's alternatives at the inspected position: a fork continues right after the sequence's
    tokens up to and including it (the inspector's own tokenisation, the chat prompt and answer included)."""
    p = result.position
    top = [(c["id"], c["text"], c["p"]) for c in result.prediction["top"]]
    fork = {"text": f"{text} [inspected, up to token {p}]", "model": result.model, "chat": False, "position": 0,
            "prompt_ids": list(result.ids[:p + 1])}
    return branching.offer(fork, top, result.provenance)


@ui_errors
def _commitment(text, model, n, use_chat):
    return commitment.strip_for(text, model, n, use_chat)


@ui_errors
def _branch(fork_state, n, evt: gr.SelectData, request: gr.Request):
    return branching.on_select(fork_state, n, evt, request)


def _outputs(result, text: str = "") -> tuple:
    prov = result.provenance
    return _fork(result, text) + (result, figs.token_md(result), badge.stamp(figs.attention_figure(result), prov),
            _badged(figs.prediction_md(result), prov), badge.stamp(figs.logit_lens_figure(result), prov),
            _badged(figs.kv_md(result), prov), _badged(figs.quantization_md(result), prov),
            _badged(figs.confidence_md(result), prov), badge.badge_md(prov))


@ui_errors
def _inspect(text, model, position, chat, progress=gr.Progress()):
    text, model = check_text(text, "prompt"), check_optional_text(model, "model")
    position = check_int(position, "position", minimum=0)
    result = None
    for item in progress.tqdm(lens.iter_run(text, model, position, bool(chat)), total=2, desc="Inspecting"):
        result = item
    return _outputs(result, text)


def build_inspect_tab(ctx) -> dict:
    """Build the inspector panel in the current ``gr.Tab`` and wire the token displays of earlier tabs."""
    gr.Markdown(INTRO)
    with gr.Row():
        position = gr.Number(0, precision=0, minimum=0, label="Position (token index, from 0)",
                             elem_id="inspect-position", scale=1)
        chat = gr.Checkbox(False, label="Ask the prompt as a question (chat template + the model's answer; answer "
                                        "tokens get their confidence)", elem_id="inspect-chat", scale=2)
        run = gr.Button("Inspect", variant="primary", elem_id="inspect-run", scale=1)
    badge_box = gr.Markdown(elem_id="inspect-badge")
    token = gr.Markdown(elem_id="inspect-token")
    with gr.Row():
        with gr.Column(scale=3):
            attention = gr.Plot(label="Attention row (mean over heads, every layer)", elem_id="inspect-main-plot")
        with gr.Column(scale=2):
            prediction = gr.Markdown(elem_id="inspect-prediction", elem_classes=[badge.BADGED])
    lens_plot = gr.Plot(label="Logit lens across layers", elem_id="inspect-lens-plot")
    with gr.Row():
        kv = gr.Markdown(elem_id="inspect-kv", elem_classes=[badge.BADGED])
        quant = gr.Markdown(elem_id="inspect-quantization", elem_classes=[badge.BADGED])
    confidence = gr.Markdown(elem_id="inspect-confidence", elem_classes=[badge.BADGED])
    state = gr.State(None)
    branch = branching.build_branch_panel(ctx, "inspect", BRANCH_INTRO, _branch)
    outputs = [branch["branch_state"], branch["branch_badge"], branch["branch_alts"], state, token, attention, prediction, lens_plot, kv, quant, confidence, badge_box]
    inputs = [ctx.prompt, ctx.model, position, chat]
    run.click(_inspect, inputs, outputs, concurrency_id="inspect-model")
    clicked = wire_token_clicks(ctx, position, chat, _inspect, inputs, outputs)
    gr.api(inspect_api, api_name="inspect")
    gr.Markdown("### Where each token of the continuation is decided (logit lens, greedy)")
    commit = commitment.build_commitment_section(ctx, _commitment, chat, "inspect")
    return {**commit, **branch, "position": position, "chat": chat, "run": run, "badge": badge_box, "token": token, "attention": attention,
            "prediction": prediction, "lens": lens_plot, "kv": kv, "quantization": quant, "confidence": confidence,
            "clicked": clicked, "state": state, "result": state}
