"""The Serving tab: (a) live numbers of this very server, polled from ``explorer.serving.serving_stats``;
(b) one-at-a-time vs static vs continuous batching measured on the embedded model, read from
``data/serving/`` (written by ``python bench/bench_serving.py --write``) and recomputable here.
"""
from __future__ import annotations

import time

import gradio as gr

from components.badge import stamp
from components.errors import ui_errors
from explorer.core.provenance import measured
from components.tabs.serving import figures as figs
from explorer import serving
from explorer.serving import compare

INTRO = ("A room of people asks the same model at once. Three things keep it usable: **identical work once** "
         "(a request identical to one already computed or in flight gets that result, marked *cached*), "
         "**continuous batching** (greedy generations of different users share forward passes, and a short one "
         "leaves the batch when done instead of waiting for the longest), and **fair turns** (a user's single "
         "step goes before a training step, while training keeps at least one turn in three).")


def stats_api() -> dict:
    """JSON API ``/serving_stats()``: ``{"running", "waiting", "batch_sizes": [...last 60 s...], "step_batch_sizes"
    [...rows per shared decode pass, last 60 s...], "tokens_per_s"
    (last 60 s), "cache_hits", "coalesced", "requests" (cumulative since start), "per_model": {...}}``."""
    return serving.serving_stats()


def generate_api(text: str, model: str = "smollm2-135m-instruct", max_new_tokens: int = 32) -> dict:
    """JSON API ``/generate(text, model, max_new_tokens)``: greedy continuation (chat template), batched with
    other users' requests: ``{"text", "token_ids", "prompt_tokens", "batched", "seconds", "notices",
    "provenance"}``."""
    try:
        return serving.generate(text, model or None, max_new_tokens).to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def comparison_summary(data: dict, kind: str) -> str:
    """Markdown beside the comparison figure."""
    rows = {m["method"]: m for m in data["methods"]}
    c, s, o = rows["continuous"], rows["static"], rows["one_at_a_time"]
    return (f"{len(data['max_new_tokens'])} requests of {min(data['max_new_tokens'])}-{max(data['max_new_tokens'])} "
            f"new tokens on {data['model']} ({kind}). Continuous batching: **{c['tokens_per_s']:.1f} tokens/s**, "
            f"static batching {s['tokens_per_s']:.1f}, one at a time {o['tokens_per_s']:.1f} - "
            f"**{data['speedup_continuous_over_static']:.1f}x** over static and "
            f"**{data['speedup_continuous_over_one_at_a_time']:.1f}x** over one at a time. Same tokens from all "
            f"three: **{data['same_tokens']}**. Beside it, the handbook's figure: *{data['handbook']}*. On a few "
            "CPU cores a pass costs more nearly in proportion to the tokens it carries than on a GPU, which "
            "changes the size of the gain."
            + (f"\n\n_Note: {data['settings']['note']}_" if data.get("settings", {}).get("note") else ""))


def build_serving_tab(ctx) -> dict:
    """Build the Serving tab; returns its components by name."""
    gr.Markdown(INTRO)
    started = time.time()
    history = gr.State([])
    with gr.Row():
        numbers = gr.JSON(label="/serving_stats now", elem_id="serving-stats")
        live = gr.Plot(label="this server, live", elem_id="serving-live-plot")
    timer = gr.Timer(2.0)

    def poll(hist):
        now = serving.serving_stats()
        hist = (list(hist or []) + [{**{k: now[k] for k in ("running", "waiting", "tokens_per_s", "batch_sizes",
                                                           "step_batch_sizes")},
                                    "t": round(time.time() - started, 1)}])[-90:]
        return hist, now, stamp(figs.live_figure(hist), measured("this server's /serving_stats, polled every 2 s"))

    timer.tick(poll, history, [history, numbers, live], api_visibility="private", show_progress="hidden")
    gr.Markdown("### One at a time vs static batching vs continuous batching (same requests, same tokens)")
    stored = compare.load_stored()
    start_data = stored.to_api() if stored is not None else None
    with gr.Row():
        run = gr.Button("Show the stored comparison", variant="primary", elem_id="serving-run")
        recompute = gr.Button("Measure again here (both cores, about a minute)", elem_id="serving-measure")
    summary = gr.Markdown(comparison_summary(start_data, "stored") if start_data else "No stored comparison yet.")
    plot = gr.Plot(stamp(figs.comparison_figure(start_data), start_data) if start_data else None,
                   elem_id="serving-main-plot")
    result = gr.State(start_data)

    @ui_errors
    def show():
        found = compare.load_stored()
        if found is None:
            raise ValueError("No stored comparison: run python bench/bench_serving.py --write, or Measure again.")
        data = found.to_api()
        return (data, comparison_summary(data, f"stored: {data['provenance']['source']}"),
                stamp(figs.comparison_figure(data), data))

    @ui_errors
    def measure(model, progress=gr.Progress()):
        progress(0, desc="measuring three ways (about a minute)")
        data = compare.run(model or None).to_api()
        return data, comparison_summary(data, "measured just now"), stamp(figs.comparison_figure(data), data)

    run.click(show, None, [result, summary, plot], api_visibility="private")
    recompute.click(measure, ctx.model, [result, summary, plot], api_visibility="private",
                    concurrency_id="serving-measure", concurrency_limit=1)
    gr.api(stats_api, api_name="serving_stats", concurrency_limit=None)
    gr.api(generate_api, api_name="generate", concurrency_limit=None)  # the batcher, not the queue, paces these
    return {"run": run, "measure": recompute, "numbers": numbers, "live": live, "timer": timer, "summary": summary,
            "plot": plot, "result": result, "state": result}
