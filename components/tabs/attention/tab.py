"""The Attention tab: every head of every layer, one head in detail, A/B, lines, and the generation timeline.

Handlers call ``explorer.attention`` / ``explorer.attention.timeline`` once per run and keep the result in
``gr.State`` (float16); sliders, radios and checkboxes re-render from it without running the model again.
"""
from __future__ import annotations

import gradio as gr
import numpy as np

from components.badge import stamp
from components.compare import second_model
from components.errors import ui_errors
from components.tabs.attention.figures import ab_figure, detail_figure, overview_figure
from components.tabs.attention.views import lines_figure, timeline_figure
from explorer import attention
from explorer.attention.stats import STATS, VIEWS, view_pattern
from explorer.attention.timeline import TIMELINE_VIEWS, iter_timeline, timeline_rows
from explorer.attention.windows import window_summary
from explorer.core.validation import check_int, check_optional_text, check_text

# Runs in the page whenever the overview changes: a click on a thumbnail or a statistic cell writes
# "layer,head,time" into the hidden #attention-click box, whose input event moves the layer/head sliders.
CLICK_JS = """() => {
  let tries = 0;
  const attach = () => {
    const el = document.querySelector('#attention-main-plot .js-plotly-plot');
    if (!el || !el.on || !el.layout) { if (tries++ < 50) setTimeout(attach, 200); return; }
    if (el.__attentionClick) return;
    el.__attentionClick = true;
    el.on('plotly_click', (ev) => {
      const pt = ev.points && ev.points[0];
      const meta = el.layout.meta || {};
      if (!pt || !meta.thumb || !Array.isArray(pt.pointNumber)) return;
      let layer = pt.pointNumber[0], head = pt.pointNumber[1];
      if (pt.curveNumber === 0) { layer = Math.floor(layer / meta.thumb[0]); head = Math.floor(head / meta.thumb[1]); }
      else if (pt.curveNumber !== meta.stat_trace) return;
      const box = document.querySelector('#attention-click textarea, #attention-click input');
      if (!box) return;
      box.value = layer + ',' + head + ',' + Date.now();
      box.dispatchEvent(new Event('input', {bubbles: true}));
    });
  };
  attach();
}"""

INTRO = ("Each small square is one attention head (query rows ↓, key columns →). Query heads are grouped by the "
         "key/value head they share (grouped-query attention). Click a thumbnail or a statistic cell (or pick a layer and head) for the detail view; "
         "switch the model to **all-minilm-l6-v2** to compare a bidirectional encoder with the causal decoder.")


GUIDE = """
- **A head** turns each token into a query, compares it with every key, and spreads one unit of attention over
  the keys (a softmax row summing to 1). One thumbnail is one head: rows are the attending tokens, columns the
  tokens attended to.
- **Causal vs bidirectional**: a decoder such as SmolLM2 may only look back, so everything above the diagonal is
  empty; the MiniLM encoder reads the whole sentence at once and fills the square.
- **Shared key/value heads (GQA)**: SmolLM2 has 9 query heads but only 3 key/value heads, so heads 0–2, 3–5 and
  6–8 read the same keys and values. This shrinks the KV cache threefold; MQA shares one KV head among all.
- **The first-token sink**: many heads park most of their attention on the first token when they have nothing
  better to do. Hide it to see what the rest of each row does (rows are then renormalised to sum to 1).
- **Rollout** multiplies the head-averaged patterns of successive layers (plus the residual path) to estimate how
  much each output position draws on each input token through the whole stack (Abnar & Zuidema, 2020).
- **Timeline**: the model generates one token at a time; each step adds one new query row, and the tokens it just
  generated become keys for the next steps.
"""


def _summary(result) -> str:
    num_layers, num_heads, q_len, _ = result.shape
    groups = {}
    for h, kv in enumerate(result.kv_head_of_head):
        groups.setdefault(int(kv), []).append(h)
    grouping = ("one per query head: multi-head attention" if len(groups) == num_heads else
                "; ".join(f"KV {kv} ← heads {', '.join(map(str, hs))}" for kv, hs in groups.items()))
    lines = [f"**{result.model}**: {q_len} tokens · {num_layers} layers × {num_heads} query heads · "
             f"{result.num_kv_heads} KV heads ({grouping}) · "
             + ("causal: the upper triangle is masked." if result.causal else "bidirectional: every token sees every token.")]
    for name in ("first_token", "previous_token"):
        values = result.stats[name]
        layer, head = np.unravel_index(int(np.argmax(values)), values.shape)
        lines.append(f"Strongest {name.replace('_', '-')} head: layer {layer}, head {head} "
                     f"({values[layer, head]:.2f} of each row on average).")
    windows = getattr(result, "layer_windows", ())
    if any(windows):
        lines.append(window_summary(["local" if w else "global" for w in windows], windows))
    if result.truncated_from:
        lines.append(f"⚠ Only the first {q_len} of {result.truncated_from} tokens are shown (max_attention_tokens).")
    return "  \n".join(lines)




def _clip(result, layer, head) -> tuple[int, int]:
    return int(min(max(layer, 0), result.num_layers - 1)), int(min(max(head, 0), result.num_heads - 1))


@ui_errors
def _capture(text, model, stat, hide_sink, layer, head, layer_b, head_b, compare=None, progress=gr.Progress()):
    other = second_model(model, compare)
    progress(0.1, desc="Forward pass with eager attention")
    result = attention.run(text, model or None, truncate=True)
    if result.truncated_from:
        gr.Warning(f"The prompt has {result.truncated_from} tokens; attention views show the first "
                   f"{len(result.tokens)} (max_attention_tokens).")
    progress(0.8, desc="Drawing the overview")
    result = result.compact()
    layer, head = _clip(result, layer, head)
    layer_b, head_b = _clip(result, layer_b, head_b)
    max_layer, max_head = result.num_layers - 1, result.num_heads - 1
    summary, compare_fig = _summary(result), gr.update(value=None, visible=False)
    if other:  # the same prompt through the second model: GQA vs MQA, local vs global layers side by side
        progress(0.85, desc=f"Forward pass of {other}")
        second = attention.run(text, other, truncate=True).compact()
        summary += "\n\n**Compare with** " + _summary(second)
        compare_fig = gr.update(value=stamp(overview_figure(second, stat, hide_sink), second.provenance),
                                visible=True)
    return (result, summary, stamp(overview_figure(result, stat, hide_sink), result.provenance),
            gr.Slider(maximum=max_layer, value=layer), gr.Slider(maximum=max_head, value=head),
            gr.Slider(maximum=max_layer, value=layer_b), gr.Slider(maximum=max_head, value=head_b), compare_fig)


@ui_errors
def _pick(clicked, result):
    if result is None or not clicked:
        return gr.skip(), gr.skip()
    layer, head = (int(part) for part in clicked.split(",")[:2])
    layer, head = _clip(result, layer, head)
    return gr.Slider(value=layer), gr.Slider(value=head)


@ui_errors
def _overview(result, stat, hide_sink):
    if result is None:  # nothing captured yet: options only take effect after a run
        return gr.skip()
    return stamp(overview_figure(result, stat, hide_sink), result.provenance)


@ui_errors
def _detail(result, mode, layer, head, hide_sink, residual):
    if result is None:
        return gr.skip(), gr.skip()
    layer, head = _clip(result, layer, head)
    pattern, title = view_pattern(result.attn, result.kv_head_of_head, mode, layer, head, hide_sink, residual)
    line_pattern, line_title = view_pattern(result.attn, result.kv_head_of_head,
                                            "head" if mode == "head" else "mean over heads", layer, head, hide_sink)
    return (stamp(detail_figure(pattern, result.tokens, result.causal, title), result.provenance),
            stamp(lines_figure(line_pattern, result.tokens, line_title), result.provenance))


@ui_errors
def _ab(result, mode, layer, head, layer_b, head_b, hide_sink, residual):
    if result is None:
        return gr.skip()
    layer, head = _clip(result, layer, head)
    layer_b, head_b = _clip(result, layer_b, head_b)
    a, title_a = view_pattern(result.attn, result.kv_head_of_head, mode, layer, head, hide_sink, residual)
    b, title_b = view_pattern(result.attn, result.kv_head_of_head, mode, layer_b, head_b, hide_sink, residual)
    return stamp(ab_figure(a, title_a, b, title_b, result.tokens, result.causal), result.provenance)


def _timeline_plot(timeline, mode, layer, head, hide_sink, step):
    layer, head = _clip(timeline, layer, head)
    rows = timeline_rows(timeline, mode, layer, head, hide_sink)
    title = f"layer {layer} · " + (f"head {head}" if mode == "head" else mode)
    if mode == "mean over KV group":
        title += f" (KV head {int(timeline.kv_head_of_head[head])})"
    return stamp(timeline_figure(timeline, rows, step, title + (" · sink hidden, renormalised" if hide_sink else "")),
                 timeline.provenance)


@ui_errors
def _generate(text, model, new_tokens, chat, mode, layer, head, hide_sink, progress=gr.Progress()):
    timeline = None
    for timeline in progress.tqdm(iter_timeline(text, model or None, int(new_tokens), bool(chat)),
                                  total=int(new_tokens), desc="Generating"):
        yield timeline, _timeline_plot(timeline, mode, layer, head, hide_sink, timeline.steps - 1), gr.skip()
    if timeline is not None:  # moving the step slider re-renders the last step once
        yield gr.skip(), gr.skip(), gr.Slider(maximum=max(1, timeline.steps - 1), value=timeline.steps - 1)


@ui_errors
def _scrub(timeline, mode, layer, head, hide_sink, step):
    if timeline is None:
        return gr.skip()
    return _timeline_plot(timeline, mode, layer, head, hide_sink, int(step))


@ui_errors
def attention_api(text: str, model: str = "smollm2-135m-instruct", layer: int | None = None,
                  head: int | None = None) -> dict:
    """Attention of every layer and head for ``text``.

    Returns ``{"tokens", "shape": [L, H, Q, K], "kv_head_of_head", "head_stats": {"entropy": L×H,
    "first_token": L×H, "mean_distance": L×H, "previous_token": L×H}, "pattern": Q×K or null, "causal", "model"}``;
    ``pattern`` is the (layer, head) probabilities when both are given. Prompts past ``max_attention_tokens``
    (512) are refused with a message stating the cap.
    """
    text, model = check_text(text, "text"), check_optional_text(model, "model")
    layer = None if layer is None else check_int(layer, "layer", minimum=0)
    head = None if head is None else check_int(head, "head", minimum=0)
    return attention.api_payload(attention.run(text, model), layer, head)


def build_attention_tab(ctx) -> dict:
    """Build the Attention tab inside the current ``gr.Tab``; returns its components by name."""
    limits = ctx.limits
    result_state, timeline_state = gr.State(None), gr.State(None)
    gr.Markdown(INTRO)
    with gr.Accordion("How to read these views", open=False):
        gr.Markdown(GUIDE)
    with gr.Row():
        run = gr.Button("Capture attention", variant="primary", elem_id="attention-run", scale=1)
        stop = gr.Button("Stop", variant="stop", scale=0, min_width=80)
        stat = gr.Dropdown([(s.label, key) for key, s in STATS.items()], value="entropy",
                           label="Per-head statistic", scale=2)
        hide_sink = gr.Checkbox(False, label="Hide the first-token sink (rows renormalised)", scale=1)
    summary = gr.Markdown(elem_id="attention-summary")
    overview = gr.Plot(label="Overview: layers × heads", elem_id="attention-main-plot")
    compare_overview = gr.Plot(label="Compare with: layers × heads of the second model", visible=False,
                               elem_id="attention-compare-plot")
    clicked = gr.Textbox(visible="hidden", elem_id="attention-click")
    with gr.Row():
        mode = gr.Radio(list(VIEWS), value="head", label="Detail view")
        layer = gr.Slider(0, 29, value=0, step=1, label="Layer")
        head = gr.Slider(0, 8, value=0, step=1, label="Head")
        residual = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Rollout residual weight r (Ã = (1−r)·A + r·I)")
    detail = gr.Plot(label="Detail", elem_id="attention-detail-plot")
    ablate_head = gr.Button("Ablate this head (opens the Circuits tab)", size="sm", elem_id="attention-ablate")
    with gr.Accordion("Token-to-token lines for this layer (weak edges pruned)", open=False):
        lines = gr.Plot(label="Lines", elem_id="attention-lines-plot")
    with gr.Accordion("A/B: two heads side by side", open=False):
        with gr.Row():
            layer_b = gr.Slider(0, 29, value=1, step=1, label="Layer B")
            head_b = gr.Slider(0, 8, value=0, step=1, label="Head B")
        ab = gr.Plot(label="A/B", elem_id="attention-ab-plot")
    with gr.Accordion("Generation timeline: the new token's attention at every step", open=False):
        with gr.Row():
            new_tokens = gr.Slider(1, limits.max_attention_steps, value=min(12, limits.max_attention_steps), step=1,
                                   label="new tokens (generated)")
            chat = gr.Checkbox(False, label="Use the chat template")
            t_mode = gr.Radio(list(TIMELINE_VIEWS), value="head", label="Rows of")
            generate = gr.Button("Generate and record", variant="primary", elem_id="attention-timeline-run")
            t_stop = gr.Button("Stop", variant="stop", min_width=80)
        step = gr.Slider(0, 1, value=0, step=1, label="Step")
        timeline = gr.Plot(label="Timeline", elem_id="attention-timeline-plot")

    detail_inputs = [result_state, mode, layer, head, hide_sink, residual]
    ab_inputs = [result_state, mode, layer, head, layer_b, head_b, hide_sink, residual]
    scrub_inputs = [timeline_state, t_mode, layer, head, hide_sink, step]
    capture_event = run.click(
        _capture, [ctx.prompt, ctx.model, stat, hide_sink, layer, head, layer_b, head_b]
        + ([ctx.compare_model] if ctx.compare_model is not None else []),
        [result_state, summary, overview, layer, head, layer_b, head_b, compare_overview],
        concurrency_id="attention-model",
    ).success(_detail, detail_inputs, [detail, lines]).success(_ab, ab_inputs, ab)
    stop.click(None, None, None, cancels=[capture_event])
    overview.change(None, None, None, js=CLICK_JS)
    clicked.change(_pick, [clicked, result_state], [layer, head])
    stat.change(_overview, [result_state, stat, hide_sink], overview)
    hide_sink.change(_overview, [result_state, stat, hide_sink], overview).then(
        _detail, detail_inputs, [detail, lines]).then(_ab, ab_inputs, ab)
    gr.on([mode.change, layer.change, head.change, residual.change], _detail, detail_inputs, [detail, lines],
          trigger_mode="always_last").then(_ab, ab_inputs, ab)
    gr.on([layer_b.change, head_b.change], _ab, ab_inputs, ab, trigger_mode="always_last")
    gen_event = generate.click(_generate, [ctx.prompt, ctx.model, new_tokens, chat, t_mode, layer, head, hide_sink],
                               [timeline_state, timeline, step], concurrency_id="attention-model")
    t_stop.click(None, None, None, cancels=[gen_event])
    gr.on([step.change, t_mode.change, layer.change, head.change, hide_sink.change], _scrub, scrub_inputs, timeline,
          trigger_mode="always_last")
    gr.api(attention_api, api_name="attention")
    return {"run": run, "stop": stop, "stat": stat, "hide_sink": hide_sink, "summary": summary,
            "overview": overview, "compare_overview": compare_overview, "clicked": clicked, "mode": mode, "layer": layer, "head": head, "residual": residual,
            "detail": detail, "lines": lines, "layer_b": layer_b, "head_b": head_b, "ab": ab,
            "new_tokens": new_tokens, "chat": chat, "timeline_mode": t_mode, "generate": generate,
            "timeline_stop": t_stop, "step": step, "timeline": timeline, "state": result_state,
            "timeline_state": timeline_state, "result": result_state, "ablate_head": ablate_head}
