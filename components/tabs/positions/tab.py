"""The Positions tab: (1) RoPE read from the model and its shift invariance measured on real query/key vectors,
(2) perplexity past the trained length with transformers' RoPE scaling, (3) eager vs SDPA attention cost.

Handlers call ``explorer.positions`` and draw with ``components.tabs.positions.figures``; results live in
``gr.State``. The three JSON APIs (/rope, /context_extension, /attention_cost) are registered here.
"""
from __future__ import annotations

import gradio as gr

from components.badge import badged_table, stamp
from components.errors import ui_errors
from components.tabs.positions import figures as figs
from explorer.core.engine import get_engine
from explorer.positions import cost as pos_cost
from explorer.positions import extension as pos_ext
from explorer.positions import rope as pos_rope

EXT_HEADERS = ["offset (gap, tokens)", "scaling", "factor", "perplexity", "longest distance (tokens)"]
COST_HEADERS = ["length", "eager ms", "sdpa ms", "eager peak bytes", "sdpa peak bytes", "bytes ratio",
                "formula n^2 bytes (one layer)"]


def parse_ints(text: str, name: str) -> list[int]:
    """``"128, 256 512"`` -> ``[128, 256, 512]``.

    Raises:
        ValueError: a part is not a whole number (message names ``name``).
    """
    parts = [p for p in str(text or "").replace(",", " ").split() if p]
    try:
        return [int(p.replace("_", "")) for p in parts]
    except ValueError:
        raise ValueError(f"{name} must be whole numbers separated by commas (got {text!r}).") from None


def rope_summary(r) -> str:
    """Markdown under the RoPE figures."""
    i, j = r.positions
    bases = "; ".join(f"{b.label}: base {b.rope_theta:,.0f}, {len(b.inv_freq)} pairs, layers "
                      f"{b.layers[0]}..{b.layers[-1]}" if len(b.layers) > 3 else f"{b.label}: base "
                      f"{b.rope_theta:,.0f}, layers {list(b.layers)}" for b in r.bases)
    return (f"Rotary frequencies read from the model ({bases}). The query of token {r.query_token!r} was rotated to "
            f"position **{i:,}**, the key of {r.key_token!r} to **{j:,}**; score (layer {r.layer}, head {r.head}) "
            f"**{r.rope.scores[r.layer, r.head]:.6f}**, after shifting both by {r.offset:,}: "
            f"**{r.rope.shifted[r.layer, r.head]:.6f}**. Over every layer and head the largest relative change is "
            f"**{r.rope.max_relative_change:.1e}** (float error only). Adding absolute sinusoidal positions to the "
            f"same vectors instead changes scores by up to **{r.absolute.max_relative_change:.2f}** (relative): "
            f"absolute positions are not shift invariant." + "".join(f"\n\n_{n}_" for n in r.notices))


def _rope_section(ctx) -> dict:
    gr.Markdown("A real query (last token of the prompt) and key (first token) from every layer, rotated with the "
                "model's own `apply_rotary_pos_emb` to positions i and j, then both shifted by the same offset.")
    with gr.Row():
        pos_i = gr.Number(100, label="query position i", precision=0)
        pos_j = gr.Number(40, label="key position j", precision=0)
        offset = gr.Number(1000, label="shift both by (offset)", precision=0)
        run = gr.Button("Rotate and compare", variant="primary", elem_id="positions-run")
    plot = gr.Plot(elem_id="positions-main-plot", label="rotation angles")
    summary = gr.Markdown()
    shift_plot = gr.Plot(label="scores before and after the shift")
    growth_plot = gr.Plot(label="float error against position")
    state = gr.State(None)

    @ui_errors
    def rotate_and_compare(text, model, i, j, off):
        r = pos_rope.run(text or None, model, [i, j], off)
        return (r, stamp(figs.angles_figure(r), r.angles_provenance), rope_summary(r),
                stamp(figs.shift_figure(r), r.provenance), stamp(figs.growth_figure(r), r.provenance))

    run.click(rotate_and_compare, [ctx.prompt, ctx.model, pos_i, pos_j, offset],
              [state, plot, summary, shift_plot, growth_plot], api_visibility="private")
    return {"pos_i": pos_i, "pos_j": pos_j, "offset": offset, "run": run, "plot": plot, "result": state}


def _extension_section(ctx) -> dict:
    gr.Markdown("A fixed passage whose second half is placed `offset` positions further on (positional skipping), "
                "so it looks back across distances past the trained length at the cost of a short passage. A plain "
                "shift of all positions would change nothing: RoPE only sees distances. Scaling types are "
                "transformers' own (`rope_parameters`); a rotary module is built from the scaled config and swapped "
                "in for each pass, then restored.")
    with gr.Row():
        offsets = gr.Textbox("0, 4096, 8192, 16384, 32768", label="offsets (tokens)")
        kinds = gr.CheckboxGroup(list(pos_ext.SCALING_TYPES), value=list(pos_ext.SCALING_TYPES), label="scaling")
        factor = gr.Slider(1, 16, value=4, step=0.5, label="factor")
    with gr.Row():
        run, stop = gr.Button("Measure perplexity"), gr.Button("Stop", variant="stop")
    summary = gr.Markdown()
    plot = gr.Plot(label="perplexity past the trained length")
    table_badge, table = badged_table(headers=EXT_HEADERS, interactive=False, label="measurements")

    @ui_errors
    def extend(model, offs, types, f, progress=gr.Progress()):
        if not types:
            raise ValueError("Choose at least one scaling type.")
        scalings = [{"type": t, "factor": float(f)} for t in types]
        for item in pos_ext.iter_run(parse_ints(offs, "offsets"), scalings, model):
            if isinstance(item, tuple):
                progress(item[0] / item[1], desc=f"pass {item[0]} of {item[1]}")
                continue
            notes = "".join(f"\n\n_{n}_" for n in item.notices)
            yield (f"Passage of {item.tokens} tokens; trained length {item.trained_length:,}. Scaling applies to "
                   f"{item.scaled_layers}.{notes}", stamp(figs.extension_figure(item), item.provenance),
                   pos_ext.rows_table(item).tolist(), item.provenance)

    event = run.click(extend, [ctx.model, offsets, kinds, factor], [summary, plot, table, table_badge],
                      api_visibility="private")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
    return {"ext_offsets": offsets, "ext_factor": factor, "ext_plot": plot}


def _cost_section(ctx) -> dict:
    gr.Markdown("Eager attention builds the full n x n score matrix for every head; PyTorch's SDPA uses a fused "
                "kernel (FlashAttention-style) that never stores it. Time is a whole forward pass; memory is the "
                "peak the profiler (`profile_memory=True`) sees while the first layer's attention step runs.")
    with gr.Row():
        lengths = gr.Textbox("128, 256, 512, 1024", label="sequence lengths (tokens)")
        run, stop = gr.Button("Measure eager vs SDPA"), gr.Button("Stop", variant="stop")
    summary = gr.Markdown()
    plot = gr.Plot(label="attention cost")
    table_badge, table = badged_table(headers=COST_HEADERS, interactive=False, label="measurements")

    @ui_errors
    def measure(model, text, progress=gr.Progress()):
        for item in pos_cost.iter_run(parse_ints(text, "lengths"), model):
            if isinstance(item, tuple):
                progress(item[0] / item[1], desc=f"measurement {item[0]} of {item[1]}")
                continue
            worst = max(item.max_rel_diff.values())
            notes = "".join(f"\n\n_{n}_" for n in item.notices)
            yield (f"On {item.device}: eager and SDPA outputs agree to {worst:.1e} (relative, final hidden "
                   f"states).{notes}", stamp(figs.cost_figure(item), item.provenance),
                   pos_cost.ratio_table(item).tolist(), item.provenance)

    event = run.click(measure, [ctx.model, lengths], [summary, plot, table, table_badge], api_visibility="private")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
    return {"cost_lengths": lengths, "cost_plot": plot}


def rope_api(model: str = "smollm2-135m-instruct", positions: list[int] = (100, 40), offset: int = 1000) -> dict:
    """JSON API /rope: ``{"inv_freq", "angles_i", "angles_j", "score", "shifted_score",
    "max_score_change_under_shift" (relative, over layers and heads), "absolute_max_score_change", "error_growth",
    "bases", "notices", "provenance"}``."""
    try:
        return pos_rope.run(None, model or None, list(positions) if isinstance(positions, tuple) else positions,
                            offset).to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def context_extension_api(model: str = "smollm2-135m-instruct", offsets: list[int] = (0, 8192, 32768),
                          scalings: list[dict] = ({"type": "none", "factor": 1.0},)) -> dict:
    """JSON API /context_extension: ``{"rows": [{"offset", "scaling", "factor", "perplexity", "last_position"}],
    "tokens", "trained_length", "scaled_layers", "notices", "provenance"}``."""
    try:
        return pos_ext.run(list(offsets), list(scalings) if isinstance(scalings, tuple) else scalings,
                           model or None).to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def attention_cost_api(model: str = "smollm2-135m-instruct", lengths: list[int] = (128, 256)) -> dict:
    """JSON API /attention_cost: ``{"rows": [{"length", "implementation" ("eager" | "sdpa"), "ms", "peak_bytes",
    "formula_bytes"}], "max_abs_diff", "max_rel_diff", "device", "notices", "provenance"}``."""
    try:
        return pos_cost.run(list(lengths) if isinstance(lengths, tuple) else lengths, model or None).to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def build_positions_tab(ctx) -> dict:
    """Build the Positions tab; returns its components by name (``run``, ``plot``, ``result``)."""
    parts: dict = {}
    with gr.Accordion("1. RoPE from the model: why it is relative", open=True):
        parts.update(_rope_section(ctx))
    with gr.Accordion("2. Beyond the training context: RoPE scaling", open=False):
        parts.update(_extension_section(ctx))
    with gr.Accordion("3. What attention costs: eager vs SDPA (FlashAttention-style)", open=False):
        parts.update(_cost_section(ctx))
    gr.api(rope_api, api_name="rope")
    gr.api(context_extension_api, api_name="context_extension")
    gr.api(attention_cost_api, api_name="attention_cost")
    return parts
