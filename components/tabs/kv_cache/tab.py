"""The KV cache tab: bytes measured from the real cache while generating, beside the formula; why the
cache matters (decode time with vs without it); a what-if calculator for famous model shapes; prompt
caching; paged attention; a quantised cache. Handlers call ``explorer.kv_cache*`` and draw with
``components.tabs.kv_cache.figures*``; results live in ``gr.State`` and the step slider re-draws from them.
"""
from __future__ import annotations

import importlib.util

import gradio as gr
import numpy as np

from components.badge import badged_table, stamp
from components.compare import second_model
from components.errors import ui_errors
from components.tabs.kv_cache import figures as figs
from components.tabs.kv_cache import figures_extra as xfigs
from explorer import kv_cache
from explorer.kv_cache import paged as kv_cache_paged
from explorer.kv_cache import prefix as kv_cache_prefix
from explorer.kv_cache import quantized as kv_cache_quant
from explorer.kv_cache import timing as kv_cache_timing
from explorer.kv_cache import whatif as kv_cache_whatif
from explorer.core.engine import get_engine
from explorer.core.validation import check_optional_text, check_text
from explorer.core.progress import Progress
from explorer.kv_cache.whatif import DTYPE_BITS, PRESETS, format_bytes
from components.tabs.kv_cache.compare import compare_growth, windowed_note

TABLE_HEADERS = ["step", "phase", "tokens", "measured bytes", "formula bytes", "equal", "ms"]
PAGED_HEADERS = ["sequence", "tokens", "blocks", "block table (physical ids)", "last-block waste (tokens)"]


def _new_tokens(value) -> int:
    """Cap ``max_new_tokens`` with a notice (gr.Warning) instead of an error."""
    n, capped_from = kv_cache.cap_new_tokens(value)
    if capped_from is not None:
        gr.Warning(f"max_new_tokens {capped_from:,} is above the cap; using {n:,}.")
    return n


def _run_and_stop(label: str, **kwargs):
    """A run button and a Stop button beside it (inside the current row)."""
    return gr.Button(label, **kwargs), gr.Button("Stop", variant="stop")


def _stoppable(run, stop, fn, inputs, outputs):
    """Wire ``run`` to ``fn`` and ``stop`` to cancel it; returns the click event."""
    event = run.click(fn, inputs, outputs, api_visibility="private")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
    return event


def growth_summary(result) -> str:
    """Markdown under the growth figure."""
    s = result.shape
    last = result.steps[-1]
    verdict = "equals the formula at every step" if result.matches_formula else "**differs from the formula**"
    return (f"Prefill of {result.prompt_tokens} tokens, then {len(result.steps) - 1} decode steps. The cache grew "
            f"to **{last.measured_bytes:,} bytes** ({format_bytes(last.measured_bytes)}) for {last.tokens} tokens "
            f"and {verdict}: 2 x {s.num_layers} x {s.num_kv_heads} x {s.head_dim} x {s.bytes_per_element} = "
            f"**{s.bytes_per_token:,} bytes per token**. Decode steps took a median of "
            f"{float(np.median(result.ms[1:])) if len(result.ms) > 1 else 0.0:.1f} ms. "
            f"Generated: _{result.text.strip()[:300]}_" + (f"\n\n{note}" if (note := windowed_note(result)) else ""))


def _growth_section(ctx) -> dict:
    gr.Markdown("Generates greedily and, after the prefill and after every decode step, sums the bytes of every "
                "layer's key and value tensors in the real `DynamicCache`. The dashed line is the formula "
                "`2 x layers x KV heads x head dim x bytes x tokens`.")
    with gr.Row():
        new_tokens = gr.Slider(1, ctx.limits.max_new_tokens, value=min(24, ctx.limits.max_new_tokens), step=1,
                               label="new tokens (generated)")
        run, stop = _run_and_stop("Generate and measure", variant="primary", elem_id="kv_cache-run")
    plot = gr.Plot(elem_id="kv_cache-main-plot", label="KV cache bytes vs tokens")
    compare_plot = gr.Plot(label="Compare with: both models' KV cache", visible=False, elem_id="kv_cache-compare-plot")
    summary = gr.Markdown()
    step = gr.Slider(1, 2, value=2, step=1, label="show steps up to", interactive=True)
    table_badge, table = badged_table(headers=TABLE_HEADERS, interactive=False, label="measurements", max_height=300)
    state = gr.State(None)

    def outputs(engine, ids, steps):
        result = kv_cache.collect(engine, ids, steps)
        return (result, stamp(figs.growth_figure(result), result.provenance), growth_summary(result),
                figs.step_table(result), gr.update(maximum=max(2, len(steps)), value=len(steps)), result.provenance)

    @ui_errors
    def measure(text, model, n, compare=None):
        n = _new_tokens(n)
        other = second_model(model, compare)
        engine = get_engine(model)
        ids = kv_cache.prompt_ids(engine, text)
        steps = []
        for item in kv_cache.iter_growth(engine, ids, n):
            steps.append(item)
            if len(steps) % max(1, n // 12) == 0:  # redraw about a dozen times while generating
                yield outputs(engine, ids, steps) + (gr.update(),)
        first = outputs(engine, ids, steps)
        if not other:
            yield first + (gr.update(value=None, visible=False),)
            return
        yield first + (gr.update(),)
        second = kv_cache.run(text, other, n)  # same prompt, same number of decode steps
        yield first[:2] + (first[2] + f"\n\n**Compare with {other}:** " + growth_summary(second),) + first[3:] + (
            gr.update(value=stamp(compare_growth([first[0], second]), second.provenance), visible=True),)

    def replay(result, upto):
        if result is None:
            return gr.update(), gr.update(), gr.update()
        return (stamp(figs.growth_figure(result, upto), result.provenance), figs.step_table(result, upto),
                result.provenance)

    _stoppable(run, stop, measure, [ctx.prompt, ctx.model, new_tokens]
               + ([ctx.compare_model] if ctx.compare_model is not None else []),
               [state, plot, summary, table, step, table_badge, compare_plot])
    step.release(replay, [state, step], [plot, table, table_badge], api_visibility="private")
    return {"new_tokens": new_tokens, "run": run, "stop": stop, "plot": plot, "compare_plot": compare_plot,
            "summary": summary, "step": step,
            "table": table, "state": state, "result": state}


def _compare_section(ctx) -> dict:
    gr.Markdown("Without a cache every step recomputes keys and values for the whole prefix, so each token costs "
                "more than the last; with it each step runs one token. Both runs pick the same greedy tokens.")
    with gr.Row():
        new_tokens = gr.Slider(1, min(64, ctx.limits.max_new_tokens), value=min(16, ctx.limits.max_new_tokens), step=1,
                               label="new tokens (generated)")
        run, stop = _run_and_stop("Time with and without cache")
    status = gr.Markdown()
    plot = gr.Plot(label="ms per token vs position")

    @ui_errors
    def compare(text, model, n):
        n = _new_tokens(n)
        engine = get_engine(model)
        ids = kv_cache.prompt_ids(engine, text)
        for item in kv_cache_timing.iter_compare(engine, ids, n):
            if isinstance(item, Progress):
                yield f"timing {item.message} ...", gr.update()
            else:
                ratio = item.cached_tokens_per_s / item.uncached_tokens_per_s if item.uncached_tokens_per_s else 0
                yield (f"With the cache: **{item.cached_tokens_per_s:.1f} tokens/s**; without: "
                       f"**{item.uncached_tokens_per_s:.1f} tokens/s** ({ratio:.1f}x). Same tokens: "
                       f"{item.identical_tokens}.", stamp(figs.timing_figure(item), item.provenance))

    _stoppable(run, stop, compare, [ctx.prompt, ctx.model, new_tokens], [status, plot])
    return {"compare_run": run, "compare_plot": plot}


def _whatif_section() -> dict:
    gr.Markdown("No model is loaded: the shapes come from each model's published config (see `models/shapes.py`).")
    names = kv_cache_whatif.shape_names()
    with gr.Row():
        model = gr.Dropdown(names, value="Llama-3 8B", label="model shape")
        context = gr.Number(8192, label="context length (tokens)", precision=0)
        batch = gr.Number(1, label="batch size (sequences)", precision=0)
    with gr.Row():
        cache_dtype = gr.Radio(list(DTYPE_BITS), value="bf16", label="KV cache dtype")
        weight_dtype = gr.Radio(list(DTYPE_BITS), value="bf16", label="weights dtype")
        kv_heads = gr.Number(0, label="override KV heads (0 = the model's own)", precision=0)
    with gr.Row():
        preset = gr.Dropdown(list(PRESETS), value=next(iter(PRESETS)), label="preset")
        apply = gr.Button("Apply preset")
    explanation = gr.Markdown()
    start = kv_cache_whatif.calculate("Llama-3 8B", 8192, 1, "bf16", "bf16")
    summary = gr.Markdown(start.summary())
    plot = gr.Plot(stamp(figs.whatif_figure(start), start.provenance), label="KV cache vs weights")

    @ui_errors
    def calculate(name, ctx_len, n_batch, c_dtype, w_dtype, heads):
        heads = heads or None
        result = kv_cache_whatif.calculate(name, ctx_len, n_batch, c_dtype, w_dtype, num_kv_heads=heads)
        return result.summary(), stamp(figs.whatif_figure(result), result.provenance)

    def use_preset(name):
        if not name:
            raise gr.Error("Choose a preset first.")
        p = PRESETS[name]
        return p.model, p.context, p.batch, p.cache_dtype, p.weight_dtype, p.num_kv_heads or 0, p.explanation

    inputs = [model, context, batch, cache_dtype, weight_dtype, kv_heads]
    for control in inputs:
        control.change(calculate, inputs, [summary, plot], api_visibility="private", trigger_mode="always_last")
    apply.click(use_preset, preset, inputs + [explanation], api_visibility="private").then(
        calculate, inputs, [summary, plot], api_visibility="private")
    return {"whatif_model": model, "whatif_context": context, "whatif_batch": batch, "whatif_cache_dtype": cache_dtype,
            "whatif_weight_dtype": weight_dtype, "whatif_kv_heads": kv_heads, "whatif_summary": summary,
            "whatif_plot": plot, "whatif_inputs": inputs}


def _prefix_section(ctx) -> dict:
    system = gr.Textbox(kv_cache_prefix.DEFAULT_SYSTEM_PROMPT, lines=4, label="shared prefix (system prompt)")
    with gr.Row():
        repeats = gr.Slider(1, 5, value=2, step=1, label="timing repeats")
        run, stop = _run_and_stop("Answer twice: compute vs reuse the prefix")
    summary = gr.Markdown()
    plot = gr.Plot(label="time to first token")

    @ui_errors
    def prefix(text, model, sys_prompt, n, progress=gr.Progress()):
        progress(0, desc="prefill and reuse")
        r = kv_cache_prefix.run(text, sys_prompt, model, int(n))
        return (f"Prefix: **{r.prefix_tokens} tokens** saved as {format_bytes(r.saved_cache_bytes)} of cache; the "
                f"question adds {r.total_tokens - r.prefix_tokens}. Time to first token: computing "
                f"{float(r.full_ms.min()):.0f} ms, reusing {float(r.reuse_ms.min()):.0f} ms "
                f"(best of {len(r.full_ms)}). "
                f"Next-token logits computed vs reused differ by at most **{r.max_abs_logit_diff:.2g}**; "
                f"vs one single pass over the whole prompt by {r.one_pass_max_abs_diff:.2g} (float summation order). "
                f"Same next token ({r.next_token!r}): {r.same_next_token}."), \
            stamp(xfigs.prefix_figure(r), r.provenance)

    _stoppable(run, stop, prefix, [ctx.prompt, ctx.model, system, repeats], [summary, plot])
    return {"prefix_run": run, "prefix_plot": plot}


def _paged_section(ctx) -> dict:
    with gr.Row():
        lengths = gr.Textbox("700, 35, 240, 1500, 90, 410", label="sequence lengths (tokens)")
        block = gr.Slider(1, 256, value=16, step=1, label="block size (tokens)")
        max_len = gr.Number(2048, label="contiguous reservation per sequence (tokens)", precision=0)
        run = gr.Button("Simulate")
    summary = gr.Markdown()
    plot = gr.Plot(label="contiguous vs paged")
    table_badge, table = badged_table(headers=PAGED_HEADERS, interactive=False, label="block tables")

    @ui_errors
    def paged(model, text, size, reserve):
        per_token = kv_cache.measured_bytes_per_token(get_engine(model))
        r = kv_cache_paged.simulate(kv_cache_paged.parse_lengths(text), int(size), per_token, reserve or None)
        return (f"Real data: {format_bytes(r.used_bytes)}. Contiguous reserves {format_bytes(r.contiguous_bytes)} "
                f"({r.contiguous_waste_pct:.1f} % wasted); paged reserves {format_bytes(r.paged_bytes)} "
                f"({r.paged_waste_pct:.1f} % wasted)."), stamp(xfigs.paged_figure(r), r.provenance), \
            xfigs.block_table_rows(r), r.provenance

    run.click(paged, [ctx.model, lengths, block, max_len], [summary, plot, table, table_badge],
              api_visibility="private")
    return {"paged_run": run, "paged_plot": plot}


def _quant_section(ctx) -> dict:
    status = kv_cache_quant.backend_status()
    notes = [f"- `{k}`: {b.description}" + (f" - **not available here: {status[k]}**" if status[k] else "")
             for k, b in kv_cache_quant.BACKENDS.items()]
    hqq = "" if importlib.util.find_spec("hqq") else " HQQ, the other integer backend, is not installed."
    gr.Markdown(f"Maintained backends through `transformers.QuantizedCache`.{hqq}\n" + "\n".join(notes))
    with gr.Row():
        backends = gr.CheckboxGroup(list(kv_cache_quant.BACKENDS), value=[k for k in status if not status[k]],
                                    label="backends")
        residual = gr.Slider(1, 128, value=16, step=1, label="full-precision residual window (tokens)")
        new_tokens = gr.Slider(1, min(64, ctx.limits.max_new_tokens), value=min(12, ctx.limits.max_new_tokens), step=1,
                               label="new tokens (generated)")
        run, stop = _run_and_stop("Compare quantised caches")
    summary = gr.Markdown()
    plot = gr.Plot(label="quantised cache")

    @ui_errors
    def quant(text, model, keys, window, n):
        if not keys:
            raise ValueError("Choose at least one backend.")
        for item in kv_cache_quant.iter_run(text, model, _new_tokens(n), keys, int(window)):
            if isinstance(item, Progress):
                yield item.message, gr.update()
            else:
                rows = [f"- `{r.key}`: {format_bytes(r.cache_bytes)} ({r.cache_bytes / item.reference_bytes:.0%} of "
                        f"full precision), mean KL {r.kl_nats.mean():.4f} nats, max |logit diff| "
                        f"{r.max_abs_diff.max():.3f}, top-1 agreement {r.top1_agree.mean():.0%}" for r in item.runs]
                rows += [f"- `{k}` not run: {why}" for k, why in item.unavailable.items()]
                yield (f"Full-precision cache: {format_bytes(item.reference_bytes)} (formula "
                       f"{format_bytes(item.formula_bytes)}).\n" + "\n".join(rows)), \
                    stamp(xfigs.quant_figure(item), item.provenance)

    _stoppable(run, stop, quant, [ctx.prompt, ctx.model, backends, residual, new_tokens], [summary, plot])
    return {"quant_run": run, "quant_plot": plot}


def build_kv_cache_tab(ctx) -> dict:
    """Build the KV cache tab; returns its components by name (``run`` and ``plot`` are the main ones)."""
    parts: dict = {}
    with gr.Accordion("1. Measured growth", open=True):
        parts.update(_growth_section(ctx))
    with gr.Accordion("2. Why caching matters: decode time with vs without the cache", open=False):
        parts.update(_compare_section(ctx))
    with gr.Accordion("3. What-if calculator for real model shapes", open=False):
        parts.update(_whatif_section())
    with gr.Accordion("4. Prompt caching: reuse a shared prefix", open=False):
        parts.update(_prefix_section(ctx))
    with gr.Accordion("5. Paged attention: contiguous vs block allocation", open=False):
        parts.update(_paged_section(ctx))
    with gr.Accordion("6. Quantised KV cache", open=False):
        parts.update(_quant_section(ctx))

    def kv_cache_api(text: str, model: str = "smollm2-135m-instruct", max_new_tokens: int = 16) -> dict:
        """JSON API: ``{"bytes_per_token_formula", "steps": [{"tokens", "measured_bytes", "formula_bytes", "ms"}],
        "phase": ["prefill", "decode", ...], "notices": [...]}`` (one phase per step); max_new_tokens above the cap
        is capped and a notice says so."""
        try:
            text, model = check_text(text, "text"), check_optional_text(model, "model")
            n, capped_from = kv_cache.cap_new_tokens(max_new_tokens)
            out = kv_cache.run(text, model, n).to_api()
            out["notices"] = [] if capped_from is None else [
                f"max_new_tokens {capped_from:,} is above the cap; using {n:,}."]
            return out
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    gr.api(kv_cache_api, api_name="kv_cache")
    return parts
