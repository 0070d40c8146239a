"""The Circuits tab's "Steering sweep" (inside the Steer section): strength × layer, one batch of greedy rows
(``explorer.circuits.sweep``), drawn as two heatmaps (perplexity under the unsteered model; the marker log-ratio's
shift for the built-in sets) with every cell's text in a table. ``/steer_sweep`` is the JSON API.
"""
from __future__ import annotations

import gradio as gr

from components.badge import badged_table, stamp
from components.errors import ui_errors
from components.stoppable import drive
from components.tabs.circuits import figures as figs
from explorer.circuits import sweep as sw

HEADERS = ["layer", "strength", "perplexity", "Δ marker log-ratio", "text"]


def steer_sweep_api(model: str | None = None, positive: list | str = "sentiment", negative: list | str | None = None,
                    layers: list | str = "4, 10, 16, 22", strengths: list | str = "-1, 0.5, 1, 2",
                    prompt: str = "I think the movie was", max_new_tokens: int = 16,
                    chat_template: bool = False) -> dict:
    """JSON API ``/steer_sweep``: ``{"layers", "strengths", "baseline", "cells": [{"layer", "strength", "text",
    "perplexity", "marker_log_ratio", "overflow"}], "markers", "notices"}`` (``positive`` may name a built-in set)."""
    try:
        return sw.run_sweep(model or None, positive, negative or None, layers, strengths, prompt, max_new_tokens,
                            bool(chat_template)).to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def sweep_rows(result) -> list[list]:
    """Table rows: the baseline first (layer "—"), then every cell; the shift is None for a custom pair."""
    def row(cell, layer):
        shift = (None if cell.marker_log_ratio is None or result.baseline.marker_log_ratio is None
                 else round(cell.marker_log_ratio - result.baseline.marker_log_ratio, 3))
        ppl = None if cell.perplexity is None else round(cell.perplexity, 2)
        return [layer, cell.strength, ppl, shift, cell.text]

    return [row(result.baseline, "— (unsteered)")] + [row(c, c.layer) for c in result.cells]


def build_sweep_section(ctx, chat, positive, negative, prompt, tokens) -> dict:
    """Build the sweep (under the Steer section, sharing its texts, prompt and token count); returns components."""
    gr.Markdown("#### Sweep strength × layer: where steering works and where the text breaks\nEvery cell is one "
                "greedy row of a single batch. Left: the steered text's perplexity under the unsteered model "
                "(fluent text stays low; broken text soars). Right (built-in sets): how much the model's odds of "
                "the set's marker words moved, log Σp(positive markers) − log Σp(negative markers), against the "
                "unsteered run.")
    with gr.Row():
        layers = gr.Textbox("4, 10, 16, 22", label="layers (comma-separated)", elem_id="circuits-sweep-layers")
        strengths = gr.Textbox("-1, 0.5, 1, 2", label="strengths (comma-separated)",
                               elem_id="circuits-sweep-strengths")
        run = gr.Button("Sweep", variant="primary", elem_id="circuits-sweep-run")
        stop = gr.Button("Stop", variant="stop", min_width=80)
    plot = gr.Plot(figs.empty_figure("Pick layers and strengths, then Sweep."), label="Steering sweep",
                   elem_id="circuits-sweep-plot")
    badge, table = badged_table(headers=HEADERS, interactive=False, wrap=True, elem_id="circuits-sweep-table")
    notes = gr.Markdown(elem_id="circuits-sweep-notes")

    @ui_errors
    def _sweep(model, pos, neg, layers_, strengths_, prompt_, n, use_chat, progress=gr.Progress()):
        result = yield from drive(lambda flag: sw.iter_sweep(model, pos, neg, layers_, strengths_, prompt_, int(n),
                                                             bool(use_chat), should_stop=flag.is_set),
                                  progress, (gr.update(),) * 4)
        text = "\n\n".join(f"⚠ {x}" for x in result.notices)
        yield (stamp(figs.sweep_figure(result), result.provenance), result.provenance, sweep_rows(result), text)

    event = run.click(_sweep, [ctx.model, positive, negative, layers, strengths, prompt, tokens, chat],
                      [plot, badge, table, notes], api_visibility="private", concurrency_id="circuits-model")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
    gr.api(steer_sweep_api, api_name="steer_sweep")
    return {"sweep_run": run, "sweep_plot": plot, "sweep_table": table}
