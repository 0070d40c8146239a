"""The Circuits tab: find the induction heads, patch a clean run into a corrupted one, ablate components, and read
which components wrote a token's logit. Handlers call ``explorer.circuits`` (nnsight traces on a shadow of the
shared model, one model turn per pass) and draw with ``figures``; picking a patching cell re-draws its causal cone
from the stored result without running the model.
"""
from __future__ import annotations

import gradio as gr

from components.badge import badge_md, badged_table, stamp
from components.tabs.circuits.branch_ui import build_branch_section
from components.tabs.circuits.steer_ui import build_steer_section
from components.errors import ui_errors
from components.stoppable import drive as _drive
from components.tabs.circuits import figures as figs
from explorer import circuits
from explorer.circuits.prompts import PAIRS, pair
from explorer.circuits.stored import load_stored, stored_provenance

INTRO = ("Every other tab watches the model; here you **intervene** and see what changes. A *head detector* finds "
         "heads by what they attend to; *activation patching* copies one activation from a clean run into a "
         "corrupted one and measures how much of the answer comes back (0 = corrupted, 1 = clean); *ablation* "
         "switches components off; *direct logit attribution* splits a token's logit into what each component "
         "wrote into the residual stream. All of it runs as nnsight traces on a copy of the module tree that "
         "shares the model's weights, one pass at a time.")
CUSTOM = "custom (type your own)"
# Runs in the page whenever the patching figure changes: a click on a cell writes "row,column,time" into the hidden
# #circuits-click box, whose change re-draws the figure with that cell's causal cone (no model run).
CLICK_JS = """() => {
  let tries = 0;
  const attach = () => {
    const el = document.querySelector('#circuits-main-plot .js-plotly-plot');
    if (!el || !el.on) { if (tries++ < 50) setTimeout(attach, 200); return; }
    if (el.__circuitsClick) return;
    el.__circuitsClick = true;
    el.on('plotly_click', (ev) => {
      const pt = ev.points && ev.points[0];
      if (!pt || !Array.isArray(pt.pointNumber)) return;
      const box = document.querySelector('#circuits-click textarea, #circuits-click input');
      if (!box) return;
      box.value = pt.pointNumber[0] + ',' + pt.pointNumber[1] + ',' + Date.now();
      box.dispatchEvent(new Event('input', {bubbles: true}));
    });
  };
  attach();
}"""
HEAD_HEADERS = ["layer", "head", "KV head", "score"]


def stored_md(model: str) -> str:
    """The stored top induction heads of ``model`` with the causal check, led by a STORED badge."""
    table = load_stored()
    row = (table or {}).get(model)
    if not row:
        return f"No stored induction heads for {model}: press *Find heads*."
    heads = ", ".join(f"L{t['layer']}H{t['head']} ({t['score']:.2f})" for t in row["top"][:3])
    loss = row["loss"]
    return (f"{badge_md(stored_provenance(model=model))}\n\n**Stored top induction heads of {model}**: {heads}. "
            f"Causal check, loss on the repeated half: {loss['none']:.2f} nats as is, **{loss['top3']:.2f}** with "
            f"these three zero-ablated, {loss['random3']:.2f} with three random heads "
            f"({', '.join(row['random_heads'])}) ablated.")


@ui_errors
def _heads(model, kind, n, progress=gr.Progress()):
    progress(0, desc="one eager-attention pass over the repeated random sequence")
    result = circuits.run_heads(model, n=int(n))
    for notice in result.notices:
        gr.Warning(notice)
    return (result, stamp(figs.heads_figure(result, kind), result.provenance), figs.top_rows(result, kind),
            result.provenance)


def _reheads(result, kind):
    if result is None:
        return gr.update(), gr.update(), gr.update()
    return stamp(figs.heads_figure(result, kind), result.provenance), figs.top_rows(result, kind), result.provenance


def _fill_pair(key):
    if key == CUSTOM:
        return gr.update(), gr.update(), gr.update(), gr.update()
    item = pair(key)
    return item.clean, item.corrupted, item.answer, item.wrong_answer


@ui_errors
def _patch(clean, corrupted, answer, wrong, site, model, chat, progress=gr.Progress()):
    result = yield from _drive(lambda flag: circuits.iter_patch(clean, corrupted, answer, wrong, site, model,
                                                                bool(chat), should_stop=flag.is_set),
                               progress, (gr.update(),) * 4, _patch_outputs)
    for notice in result.notices:
        gr.Warning(notice)
    yield _patch_outputs(result)


def _patch_outputs(result):
    return (result, stamp(figs.patch_figure(result), result.provenance), _patch_summary(result),
            badge_md(result.provenance))


def _patch_summary(result) -> str:
    corr = "n/a" if result.correlation != result.correlation else f"{result.correlation:.3f}"
    notes = "".join(f"\n\n⚠ {n}" for n in result.notices)
    return (f"Clean metric **{result.clean_metric:.3f}**, corrupted **{result.corrupted_metric:.3f}** "
            f"(logit({result.answer}) − logit({result.wrong_answer})). {result.cells_done} cells patched; "
            f"attribution patching vs exact patching: correlation **{corr}**. Click a cell (or pick it below) to shade "
            f"the cells it can affect (later rows, same or later positions).{notes}")


def _pick(clicked, result):
    if result is None or not clicked:
        return gr.skip(), gr.skip(), gr.skip()
    row, column = (int(part) for part in str(clicked).split(",")[:2])
    return row, column, _cone(result, row, column)


def _cone(result, row, column):
    if result is None:
        return gr.update()
    shape = result.grid.shape
    row, column = min(max(int(row), 0), shape[0] - 1), min(max(int(column), 0), shape[1] - 1)
    return stamp(figs.patch_figure(result, (row, column)), result.provenance)


@ui_errors
def _ablate(text, components, mode, tokens, model, chat, progress=gr.Progress()):
    progress(0, desc="continuations before and after")
    result = circuits.run_ablate(text, components, mode, model, int(tokens), bool(chat))
    return badge_md(result.provenance), figs.ablation_md(result)


@ui_errors
def _dla(text, position, token, heads, model, chat, progress=gr.Progress()):
    progress(0, desc="one traced pass")
    position = _position(position)
    result = circuits.run_dla(text, position, token or None, model, bool(chat))
    return result, stamp(figs.dla_figure(result, bool(heads), top=24), result.provenance), badge_md(result.provenance)


def _position(value):
    """The position box: empty = last (None), else an integer (checked by the lens).

    Raises:
        ValueError: not an integer (the message names position).
    """
    text = str(value if value is not None else "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"position must be a whole number, or empty for the last token (got {text!r}).") from None


def _redla(result, heads):
    if result is None:
        return gr.update()
    return stamp(figs.dla_figure(result, bool(heads), top=24), result.provenance)


def heads_api(model: str | None = None, kind: str = "induction") -> dict:
    """JSON API ``/heads``: ``{"scores": [[...]], "kind", "sequence_length", "top": [{"layer", "head", "score"}]}``."""
    try:
        circuits.check_kind(kind)
        return circuits.heads_to_api(circuits.run_heads(model or None), kind)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def patch_api(clean: str, corrupted: str, model: str | None = None, answer: str = " Mary",
              wrong_answer: str = " John", site: str = "resid", chat_template: bool = False) -> dict:
    """JSON API ``/patch``: ``{"grid", "site", "rows", "columns", "clean_metric", "corrupted_metric", "notices",
    "attribution", "correlation"}``."""
    try:
        return circuits.patch_to_api(circuits.run_patch(clean, corrupted, answer, wrong_answer, site, model or None,
                                                        bool(chat_template)))
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def ablate_api(text: str, model: str | None = None, components: list | str = "L0H0", mode: str = "zero",
               chat_template: bool = False) -> dict:
    """JSON API ``/ablate``: ``{"kl", "top1_before", "top1_after", "continuation_before", "continuation_after",
    "notices"}``."""
    try:
        return circuits.ablate_to_api(circuits.run_ablate(text, components, mode, model or None,
                                                          chat_template=bool(chat_template)))
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def dla_api(text: str, model: str | None = None, position: int | None = None, token: str | int | None = None,
            chat_template: bool = False) -> dict:
    """JSON API ``/dla``: ``{"components": [{"name", "contribution"}], "logit", "residual", "notices"}``."""
    try:
        return circuits.dla_to_api(circuits.run_dla(text, position, token, model or None, bool(chat_template)))
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def build_circuits_tab(ctx) -> dict:
    """Build the Circuits tab inside the current ``gr.Tab``; returns its components by name."""
    gr.Markdown(INTRO)
    chat = gr.Checkbox(False, label="Use the chat template (default: plain text)")
    gr.Markdown("### Head detector\nThe first token, then n random tokens, then the same n again. An **induction "
                "head** at a repeated token attends to the token that came right after its first occurrence "
                "(score 1 = always); previous-token and duplicate-token heads are scored the same way on their own "
                "targets. Columns are grouped by the key/value head the query heads share.")
    with gr.Row():
        kind = gr.Radio(list(circuits.KINDS), value="induction", label="kind of head")
        n = gr.Slider(2, ctx.limits.max_detector_tokens, value=circuits.DEFAULT_N, step=1, label="n (random tokens)")
        find = gr.Button("Find heads", variant="primary", elem_id="circuits-heads-run")
    stored = gr.Markdown(elem_id="circuits-heads-stored")
    heads_plot = gr.Plot(label="head scores", elem_id="circuits-heads-plot")
    heads_badge, heads_table = badged_table(headers=HEAD_HEADERS, interactive=False)
    heads_state = gr.State(None)

    gr.Markdown("### Activation patching")
    with gr.Row():
        pair_key = gr.Dropdown([(p.label, p.key) for p in PAIRS] + [(CUSTOM, CUSTOM)], value="names",
                               label="built-in pair")
        site = gr.Radio(list(circuits.SITES), value="resid", label="site")
    with gr.Row():
        clean = gr.Textbox(PAIRS[0].clean, label="clean prompt", elem_id="circuits-clean")
        corrupted = gr.Textbox(PAIRS[0].corrupted, label="corrupted prompt (same token count)", elem_id="circuits-corrupted")
    with gr.Row():
        answer = gr.Textbox(PAIRS[0].answer, label="answer (one token)", elem_id="circuits-answer")
        wrong = gr.Textbox(PAIRS[0].wrong_answer, label="wrong answer (one token)", elem_id="circuits-wrong")
        patch = gr.Button("Patch every cell", variant="primary", elem_id="circuits-run")
        stop = gr.Button("Stop", variant="stop", min_width=80)
    patch_summary = gr.Markdown(elem_id="circuits-patch-summary")
    patch_badge = gr.Markdown(elem_id="circuits-patch-badge")
    patch_plot = gr.Plot(label="patching grids", elem_id="circuits-main-plot")
    with gr.Row():
        cell_row = gr.Number(0, label="selected row", precision=0, elem_id="circuits-cell-row")
        cell_column = gr.Number(0, label="selected column", precision=0, elem_id="circuits-cell-column")
        show_cone = gr.Button("Shade its causal cone", elem_id="circuits-cone")
    clicked = gr.Textbox(visible="hidden", elem_id="circuits-click")
    patch_state = gr.State(None)

    gr.Markdown("### Ablation (on the prompt above)\nName heads `L3H2`, whole attention blocks `L5.attn` or MLPs "
                "`L5.mlp`, comma-separated. *zero* sets the output to 0; *mean* to its mean over the prompt's "
                "positions.")
    with gr.Row():
        components = gr.Textbox("L17H3", label="components", elem_id="circuits-components")
        mode = gr.Radio(list(circuits.ablation.MODES), value="zero", label="mode")
        tokens = gr.Slider(1, min(32, ctx.limits.max_new_tokens), value=10, step=1, label="new tokens")
        ablate = gr.Button("Ablate", variant="primary", elem_id="circuits-ablate-run")
    ablate_badge = gr.Markdown(elem_id="circuits-ablate-badge")
    ablate_out = gr.Markdown(elem_id="circuits-ablate-out")

    gr.Markdown("### Direct logit attribution (on the prompt above)\nThe final norm's scale is frozen at this "
                "position, so the logit is a sum over what each component wrote into the residual stream.")
    with gr.Row():
        position = gr.Textbox("", label="position (empty = last)", elem_id="circuits-position")
        token = gr.Textbox("", label="token (empty = the top prediction)")
        per_head = gr.Checkbox(False, label="one bar per head")
        dla = gr.Button("Attribute", variant="primary", elem_id="circuits-dla-run")
    dla_badge = gr.Markdown(elem_id="circuits-dla-badge")
    dla_plot = gr.Plot(label="direct logit attribution", elem_id="circuits-dla-plot")
    dla_state = gr.State(None)

    gr.on([gr.context.Context.root_block.load, ctx.model.change], stored_md, ctx.model, stored,
          api_visibility="private")
    find.click(_heads, [ctx.model, kind, n], [heads_state, heads_plot, heads_table, heads_badge],
               api_visibility="private", concurrency_id="circuits-model")
    kind.change(_reheads, [heads_state, kind], [heads_plot, heads_table, heads_badge], api_visibility="private")
    pair_key.change(_fill_pair, pair_key, [clean, corrupted, answer, wrong], api_visibility="private")
    event = patch.click(_patch, [clean, corrupted, answer, wrong, site, ctx.model, chat],
                        [patch_state, patch_plot, patch_summary, patch_badge], api_visibility="private",
                        concurrency_id="circuits-model")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
    show_cone.click(_cone, [patch_state, cell_row, cell_column], patch_plot, api_visibility="private")
    patch_plot.change(None, None, None, js=CLICK_JS)
    clicked.change(_pick, [clicked, patch_state], [cell_row, cell_column, patch_plot], api_visibility="private")
    ablate.click(_ablate, [ctx.prompt, components, mode, tokens, ctx.model, chat], [ablate_badge, ablate_out],
                 api_visibility="private", concurrency_id="circuits-model")
    dla.click(_dla, [ctx.prompt, position, token, per_head, ctx.model, chat], [dla_state, dla_plot, dla_badge],
              api_visibility="private", concurrency_id="circuits-model")
    per_head.change(_redla, [dla_state, per_head], dla_plot, api_visibility="private")
    _wire_attention(ctx, components)
    extra = {**build_steer_section(ctx, chat), **build_branch_section(ctx, chat)}
    gr.api(heads_api, api_name="heads")
    gr.api(patch_api, api_name="patch")
    gr.api(ablate_api, api_name="ablate")
    gr.api(dla_api, api_name="dla")
    return {"chat": chat, "kind": kind, "n": n, "find": find, "heads_plot": heads_plot, "pair": pair_key,
            "site": site, "clean": clean, "corrupted": corrupted, "answer": answer, "wrong_answer": wrong,
            "patch": patch, "stop": stop, "patch_plot": patch_plot, "components": components, "mode": mode,
            "ablate": ablate, "ablate_out": ablate_out, "position": position, "token": token, "dla": dla,
            "dla_plot": dla_plot, "result": patch_state, "state": patch_state, **extra}


def _wire_attention(ctx, components) -> None:
    """The Attention tab's "Ablate this head" button: fill ``components`` with its layer and head, open this tab."""
    attention = ctx.extra.get("attention") or {}
    button = attention.get("ablate_head")
    if button is None or ctx.tabs is None:
        return

    def go_ablate(layer, head):
        return f"L{int(layer)}H{int(head)}", gr.Tabs(selected="circuits")

    button.click(go_ablate, [attention["layer"], attention["head"]], [components, ctx.tabs], api_visibility="private")
