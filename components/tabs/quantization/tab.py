"""The Quantisation tab: fp32/bf16/fp16 vs LLM.int8 vs NF4/FP4 on the same prompt, measured.

One click runs the prompt through every chosen method (each a separate cached copy; the shared model is
only read) and keeps the result in ``gr.State``; the position slider re-renders from it. The quality
table on the reference passage is shown from the file the benchmark wrote and can be recomputed live.
"""
from __future__ import annotations

import gradio as gr

from components.badge import badged_table, stamp
from components.compare import label, second_model
from components.errors import ui_errors
from components.tabs.quantization import figures as fig
from explorer import quantization
from explorer.core.provenance import meta_line
from explorer.core.validation import check_choices, check_optional_text, check_text
from explorer.quantization.quality import load_precomputed
from explorer.quantization.methods import BLOCK_SIZES, COMPUTE_DTYPES, METHODS, QuantOptions, get_variant

INTRO = (
    "Storing weights in fewer bits saves memory at some cost in quality. Each method below is a **separate copy** "
    "of the model (the shared one is never changed): bf16/fp16 casts, bitsandbytes **LLM.int8** (row-wise int8, "
    "outlier activations in 16 bit) and **NF4/FP4** (4-bit codes, one absmax scale per block). Quality follows "
    "llama.cpp's `perplexity --kl-divergence` report: KL divergence to the reference per token, same top-1 token, "
    "perplexity ratio.\n\n"
    "⚠ The embedded **SmolLM2** ships as a **Q4_1 GGUF**, so its \"reference\" is those 4-bit weights dequantised "
    "to fp32, not the original 16-bit checkpoint; a Hub model gives a true 16-bit reference."
)
PROJECTIONS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def _options(threshold, block, double, compute) -> QuantOptions:
    return QuantOptions(int8_threshold=float(threshold), blocksize=int(block), double_quant=bool(double),
                        compute_dtype=compute).validate()


def _status(result) -> str:
    lines = [f"**{result.model}** on {result.device}, reference dtype {result.reference_dtype}, "
             f"{result.n_params:,} parameters. Scored on {len(result.sequence_ids)} tokens "
             f"({result.n_prompt} prompt + the reference's greedy continuation)."]
    lines += [f"⚠ **{m.name}**: {m.error}" for m in result.methods if m.error]
    lines += [f"ℹ **{m.name}**: {m.note}" for m in result.methods if m.note]
    return "  \n".join(lines)


@ui_errors
def _run(prompt, model, methods, new_tokens, threshold, block, double, compute, progress=gr.Progress()):
    options = _options(threshold, block, double, compute)
    result = quantization.run(prompt, model or None, methods, options, max_new_tokens=int(new_tokens),
                              progress=lambda f, m: progress(f, desc=m))
    n_pos = result.methods[0].topk_ids.shape[0]
    position = max(result.n_prompt - 1, 0)
    prov = result.provenance
    return (result, _status(result), fig.summary_rows(result), stamp(fig.kl_figure(result), prov),
            fig.text_diff_html(result), gr.update(maximum=n_pos - 1, value=position),
            stamp(fig.distribution_figure(result, position), prov), stamp(fig.memory_figure(result), prov),
            fig.bits_table_rows(result), gr.update(maximum=max(result.n_layers - 1, 0)), prov,
            fig.bits_provenance(result))


@ui_errors
def _compare_run(prompt, model, compare, methods, new_tokens, threshold, block, double, compute,
                 progress=gr.Progress()):
    """The same methods and settings on the "Compare with" model: its side-by-side rows and status."""
    other = second_model(model, compare)
    if not other:
        return "Pick a second model in **Compare with** at the top of the page to quantise it too.", None, None
    result = quantization.run(prompt, other, methods, _options(threshold, block, double, compute),
                              max_new_tokens=int(new_tokens), progress=lambda f, m: progress(f, desc=m))
    return f"**{label(other)}**  \n" + _status(result), fig.summary_rows(result), result.provenance


@ui_errors
def _position(result, position):
    if result is None:
        return gr.update()
    return stamp(fig.distribution_figure(result, int(position)), result.provenance)


@ui_errors
def _passage(model, methods, max_tokens, smooth, threshold, block, double, compute, progress=gr.Progress()):
    pq = quantization.run_passage(model or None, methods, _options(threshold, block, double, compute),
                                  max_tokens=int(max_tokens) or None, progress=lambda f, m: progress(f, desc=m))
    data = {**pq.to_api(), "provenance": pq.provenance}
    return (data, _passage_note(data, live=True), fig.passage_rows(data),
            stamp(fig.passage_figure(data, int(smooth)), data), data.get("provenance"))


WRITE_COMMAND = "python bench/bench_quantization.py --write"


def _passage_note(data, live: bool) -> str:
    """Where the passage table comes from: computed live, or stored with the command, date and versions."""
    if data is None:
        return f"No stored table yet: run `{WRITE_COMMAND}` or press *Compute live*."
    if live:
        return (f"Reference passage ({data['n_tokens']} tokens of {data['model']}, windows of {data['window']}, "
                f"computed live on {data['device']}).")
    how = meta_line(data.get("meta"))
    if not data.get("meta"):
        how += f"; `{WRITE_COMMAND}` rewrites the table and records them"
    return (f"Reference passage ({data['n_tokens']} tokens of {data['model']}, windows of {data['window']}, "
            f"stored on {data['device']}): {how}.")


def _smooth(data, smooth):
    return gr.update() if data is None else stamp(fig.passage_figure(data, int(smooth)), data)


@ui_errors
def _where(result, model, method, layer, projection, threshold, block, double, compute, progress=gr.Progress()):
    from explorer.core.engine import get_engine
    from explorer.quantization.error import error_map, int8_outliers, matrix_error

    if result is None:
        raise ValueError("Run the comparison first (the button at the top of this tab).")
    engine = get_engine(model or None)
    progress(0.1, desc=f"preparing {method}")
    variant = get_variant(engine, method, _options(threshold, block, double, compute))
    name = f"model.layers.{int(layer)}.{projection}"
    progress(0.4, desc="dequantising")
    err = matrix_error(engine.model, variant.engine.model, name)
    emap = error_map(engine.model, variant.engine.model)
    progress(0.8, desc="counting int8 outlier features")
    outliers = int8_outliers(engine, result.sequence_ids.tolist(), float(threshold))
    return (stamp(fig.error_histogram(err), err.provenance), stamp(fig.error_scatter(err), err.provenance),
            stamp(fig.error_heatmap(emap, f"Relative weight error of {method}, every layer × projection"),
                  emap.provenance),
            stamp(fig.outlier_heatmap(outliers), outliers.provenance))


@ui_errors
def quantize_api(text: str, model: str, methods: list[str], chat_template: bool = True) -> dict:
    """``/quantize``: ``(text, model, methods, chat_template=True) -> {"methods": {name: {"weight_bytes", "kld_mean",
    "kld_p99", "same_top_pct", "ppl", "ppl_ratio", "text", "kld", "same_top"}}, "positions": {"ids", "tokens",
    "n_prompt"}}`` (default options, 24 new tokens; ``kld``/``same_top`` per position of ``positions``;
    ``chat_template=False`` scores the plain text's tokens)."""
    text, model = check_text(text, "text"), check_optional_text(model, "model")
    methods = check_choices(methods, "methods", None) if methods else ["reference", "int8", "nf4"]
    return quantization.to_api(quantization.run(text, model, methods, chat=chat_template is not False))


def build_quantization_tab(ctx) -> dict:
    """Build the Quantisation tab inside the current ``gr.Tab``; returns its components by name."""
    stored = load_precomputed()
    result_state = gr.State(None)
    passage_state = gr.State(stored)
    gr.Markdown(INTRO)
    with gr.Row():
        methods = gr.CheckboxGroup(list(METHODS), value=["reference", "int8", "nf4", "fp4"], label="Methods", scale=3)
        new_tokens = gr.Slider(1, min(64, ctx.limits.max_new_tokens), value=min(24, ctx.limits.max_new_tokens),
                               step=1, label="new tokens (generated) per method", scale=1)
    with gr.Accordion("Method settings", open=False):
        with gr.Row():
            threshold = gr.Slider(0, 20, value=6.0, step=0.5, label="LLM.int8 outlier threshold (0 = no 16-bit part)")
            block = gr.Dropdown(list(BLOCK_SIZES), value=64, label="4-bit block size (weights per absmax scale)")
            double = gr.Checkbox(True, label="Double quantisation (8-bit scales)")
            compute = gr.Dropdown(list(COMPUTE_DTYPES), value="auto", label="4-bit compute dtype")
    with gr.Row():
        run = gr.Button("Compare methods", variant="primary", elem_id="quantization-run", scale=1)
        stop = gr.Button("Stop", variant="stop", scale=0, min_width=80)
    status = gr.Markdown()
    table_badge, table = badged_table(headers=fig.SUMMARY_HEADERS, label="Side by side on the prompt",
                                      interactive=False, wrap=True)
    with gr.Accordion("Compare with: the same methods on the second model", open=False):
        compare_btn = gr.Button("Quantise the Compare-with model too")
        compare_status = gr.Markdown()
        compare_badge, compare_table = badged_table(headers=fig.SUMMARY_HEADERS, interactive=False, wrap=True,
                                     label="The second model, same methods and settings")
    main_plot = gr.Plot(label="KL divergence per position", elem_id="quantization-main-plot")
    diff = gr.HTML(label="Greedy text (tokens that differ from the reference are red)")
    position = gr.Slider(0, 1, value=0, step=1, label="Position for the next-token distribution")
    dist = gr.Plot(label="Next-token distribution", elem_id="quantization-dist-plot")
    with gr.Accordion("Memory and speed", open=True):
        memory = gr.Plot(label="Memory and speed", elem_id="quantization-memory-plot")
        bits_badge, bits = badged_table(fig.bits_provenance(None), value=fig.bits_table_rows(None),
                                        headers=fig.BITS_HEADERS, interactive=False,
                                        label="Bits per weight → model size (size = parameters × bits / 8)")
    with gr.Accordion("Quality on the reference passage (~2,000 tokens)", open=True):
        passage_note = gr.Markdown(_passage_note(stored, live=False))
        with gr.Row():
            max_tokens = gr.Slider(0, 2048, value=0, step=64, label="Tokens to score live (0 = the whole passage)")
            smooth = gr.Slider(1, 64, value=16, step=1, label="Running mean over tokens")
            live = gr.Button("Compute live", elem_id="quantization-passage-run")
            live_stop = gr.Button("Stop", variant="stop", min_width=80)
        passage_badge, passage_table = badged_table(
            stored, value=fig.passage_rows(stored) if stored else None, headers=fig.PASSAGE_HEADERS,
            interactive=False, label="llama.cpp-style KL report")
        passage_plot = gr.Plot(value=stamp(fig.passage_figure(stored, 16), stored) if stored else None,
                               label="KL per token on the passage", elem_id="quantization-passage-plot")
    with gr.Accordion("Where the error is", open=False):
        with gr.Row():
            method = gr.Dropdown([m for m in METHODS if m != "reference"], value="nf4", label="Method")
            layer = gr.Slider(0, 29, value=0, step=1, label="Layer")
            projection = gr.Dropdown(PROJECTIONS, value="self_attn.q_proj", label="Weight matrix")
            show = gr.Button("Show the error", elem_id="quantization-error-run")
        with gr.Row():
            hist = gr.Plot(label="Error histogram", elem_id="quantization-error-hist")
            scatter = gr.Plot(label="Original vs dequantised", elem_id="quantization-error-scatter")
        with gr.Row():
            heat = gr.Plot(label="Relative error per layer × projection", elem_id="quantization-error-heatmap")
            outliers = gr.Plot(label="LLM.int8 outlier features", elem_id="quantization-outliers")

    settings = [threshold, block, double, compute]
    run_event = run.click(_run, [ctx.prompt, ctx.model, methods, new_tokens, *settings],
                          [result_state, status, table, main_plot, diff, position, dist, memory, bits, layer,
                           table_badge, bits_badge],
                          concurrency_id="quantization", api_name="quantize_compare")
    cancels = [run_event]
    if ctx.compare_model is not None:
        cancels.append(compare_btn.click(_compare_run, [ctx.prompt, ctx.model, ctx.compare_model, methods, new_tokens,
                                                        *settings], [compare_status, compare_table, compare_badge],
                                         concurrency_id="quantization", api_visibility="private"))
    stop.click(None, None, None, cancels=cancels)
    position.change(_position, [result_state, position], dist)
    live_event = live.click(_passage, [ctx.model, methods, max_tokens, smooth, *settings],
                            [passage_state, passage_note, passage_table, passage_plot, passage_badge],
                            concurrency_id="quantization",
                            api_name="quantize_passage")
    live_stop.click(None, None, None, cancels=[live_event])
    smooth.change(_smooth, [passage_state, smooth], passage_plot)
    show_event = show.click(_where, [result_state, ctx.model, method, layer, projection, *settings],
                            [hist, scatter, heat, outliers], concurrency_id="quantization",
                            api_name="quantize_error")
    stop.click(None, None, None, cancels=[show_event])
    gr.api(quantize_api, api_name="quantize")
    return {"run": run, "stop": stop, "methods": methods, "new_tokens": new_tokens, "threshold": threshold,
            "block": block, "double": double, "compute": compute, "status": status, "table": table,
            "main_plot": main_plot, "diff": diff, "position": position, "dist": dist, "memory": memory,
            "bits": bits, "passage_table": passage_table, "passage_plot": passage_plot, "live": live,
            "method": method, "layer": layer, "projection": projection, "show": show, "hist": hist,
            "scatter": scatter, "heatmap": heat, "outliers": outliers, "state": result_state,
            "result": result_state}
