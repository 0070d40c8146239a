"""The Decoding tab: up to six strategies side by side, step by step, temperature live, the beam tree, and
speculative decoding. Runs call ``explorer.decoding`` once; the result lives in ``gr.State`` and every
slider or picker re-renders from it without running the model again. ``/decode`` is the JSON API.
"""
from __future__ import annotations

import dataclasses
import time

import gradio as gr

from components import branching, commitment
from components.compare import label, model_notice, second_model
from components.badge import INPUT_TABLE, stamp
from components.errors import ui_errors
from components.stoppable import iterate_in_thread
from components.tabs.decoding.chain_ui import build_chain_section
from components.tabs.decoding.figures import columns_html, empty_figure, step_figure, temperature_figure
from components.tabs.decoding.views import beam_tree_figure, speculative_figure, speculative_html
from explorer import decoding
from explorer.core.config import get_limits
from explorer.core.validation import check_optional_text, check_records, check_text
from explorer.decoding.speculative import DRAFTERS, run_speculative
from explorer.decoding.strategies import MAX_STRATEGIES, PRESETS, STRATEGIES, new_seed
from models.registry import DEFAULT_MODEL

PARAMS = ["temperature", "top_k", "top_p", "min_p", "typical_p", "repetition_penalty", "no_repeat_ngram_size",
          "num_beams", "length_penalty", "seed"]
HEADERS = ["strategy"] + PARAMS
DEFAULT_PRESETS = ["Greedy", "Beam search, 4 beams", "Recommended sampling (T 0.7, top-p 0.95)", "Min-p 0.05 (T 1.0)"]
QUOTE_PROMPT = ("Copy this sentence exactly, then explain it in one line: The committee approved the new budget "
                "for public libraries, parks and school buses on Tuesday evening.")
INTRO = ("The model gives a probability for every possible next token; a **decoding strategy** turns those "
         "distributions into text. Each row of the table is one column below (up to six), with parameters named "
         "as in transformers' `GenerationConfig` (blank = transformers' default). Sampled rows show their seed: "
         "the same seed gives the same text; **Re-roll** draws new seeds. Presets use the handbook's starting "
         "values (temperature 0.7, top-p 0.95, top-k 40-50, repetition penalty 1.1, 4 beams).")
BRANCH_INTRO = ("#### Continue from here with another token\nThe column's most probable tokens at this step (raw "
                "probabilities): click one to force it there and continue with the column's strategy and seed. "
                "Branches of this session form the tree below; pick two to compare them token by token.")
SPEC_INTRO = ("**Speculative decoding**: a cheap drafter proposes several tokens, the model checks them all in one "
              "forward pass and keeps those it agrees with, so greedy output is unchanged but needs fewer passes. "
              "*Prompt lookup* drafts by copying text that follows the same n-gram earlier in the prompt (best when the "
              "answer quotes the prompt). *Assisted* uses a small draft model with the same tokenizer; it needs a "
              "bigger target model picked above (e.g. `HuggingFaceTB/SmolLM2-360M-Instruct` with "
              "`smollm2-135m-instruct` drafting), which must be downloaded from the Hugging Face Hub: this server "
              "may be offline, in which case loading the bigger model fails with a message.")


def preset_row(name: str) -> list[str]:
    """One table row (strings) for a preset; a sampled preset gets a fresh seed."""
    preset = PRESETS[name]
    row = [preset["name"]] + [str(preset.get(p, "")) for p in PARAMS]
    if STRATEGIES[preset["name"]].do_sample:
        row[-1] = str(new_seed())
    return row


def rows_to_strategies(rows) -> tuple[list[dict], list[str]]:
    """Table rows -> strategy dicts; blank cells are left to the defaults, cells a strategy does not use are
    dropped with a notice. Raises ``ValueError`` for an empty table."""
    strategies, notices = [], []
    for row in rows or []:
        cells = [("" if c is None else str(c)).strip() for c in list(row) + [""] * len(HEADERS)][:len(HEADERS)]
        if not cells[0]:
            continue
        strategy = {"name": cells[0].lower()}
        accepted = STRATEGIES[strategy["name"]].params if strategy["name"] in STRATEGIES else PARAMS
        for key, cell in zip(PARAMS, cells[1:]):
            if cell and key in accepted:
                strategy[key] = cell
            elif cell:
                notices.append(f"Row {len(strategies) + 1} ({cells[0]}): {key} does not apply and is ignored.")
        strategies.append(strategy)
    if not strategies:
        raise ValueError("The strategy table is empty: add a preset or type a strategy name (greedy, beam, sampling).")
    return strategies, notices


def _with_seeds(rows, result) -> list[list[str]]:
    kept = [list(r) for r in rows if str(r[0] or "").strip()]
    for row, run in zip(kept, result.runs):
        row[-1] = "" if run.seed is None else str(run.seed)
    return kept


def _choices(result, kind: str) -> list[tuple[str, int]]:
    return [(f"{i + 1}. {r.label}", i) for i, r in enumerate(result.runs) if getattr(r, kind) is not None]


def _outputs(result, rows, temperature):
    steps, beams = _choices(result, "steps"), _choices(result, "beam")
    col = steps[0][1] if steps else None
    n_steps = result.runs[col].steps.num_steps if col is not None else 1
    beam_col = beams[0][1] if beams else None
    return (result, columns_html(result), _with_seeds(rows, result),
            gr.update(choices=steps, value=col), gr.update(maximum=max(n_steps, 1), value=1),
            stamp(step_figure(result.runs[col] if col is not None else None, 0, result.vocab_text),
                  result.provenance if col is not None else None),
            stamp(temperature_figure(result.first_logits, temperature, result.vocab_text), result.provenance),
            gr.update(choices=beams, value=beam_col),
            stamp(beam_tree_figure(result.runs[beam_col] if beam_col is not None else None, result.vocab_text),
                  result.provenance if beam_col is not None else None))


RUN_OUTPUTS = 9  # components a decoding run updates: state, columns, table, column, step, plots, beam picker, tree
_clock = time.perf_counter  # seconds; replaced in tests


class _TimeCapReached(Exception):
    """Raised inside the decoding worker once ``Limits.max_run_seconds`` is spent."""


@ui_errors
def _run(prompt, model, rows, max_new_tokens, temperature, progress=gr.Progress()):
    """Decode the table's strategies column by column, with progress per token and the run-time cap
    (``Limits.max_run_seconds``): a run past it keeps the finished columns and says it was cut short."""
    strategies, notices = rows_to_strategies(rows)
    for notice in notices:
        gr.Warning(notice)
    done, cut, last = [0], [False], [None]
    cap = get_limits().max_run_seconds
    started = _clock()

    def produce(flag):
        def on_step(step, total):
            flag.check()  # Stop ends the run at the next token, not at the end of the column
            if _clock() - started > cap:
                raise _TimeCapReached()
            progress((done[0] + step / total) / len(strategies), desc=f"column {done[0] + 1}/{len(strategies)}")

        try:
            yield from decoding.iter_runs(prompt, model or None, strategies, max_new_tokens, on_step=on_step)
        except _TimeCapReached:
            cut[0] = True

    for result in iterate_in_thread(produce):
        if result is None:  # heartbeat while a column is being generated
            yield tuple(gr.update() for _ in range(RUN_OUTPUTS))
            continue
        if done[0] == 0:
            for notice in result.notices:
                gr.Warning(notice)
        done[0], last[0] = len(result.runs), result
        yield _outputs(result, rows, temperature)
    if cut[0]:
        notice = (f"Cut short by the {cap:g} s run-time cap (max_run_seconds): {done[0]} of {len(strategies)} "
                  "column(s) finished; the column being generated was stopped and the rest were not run.")
        if last[0] is None:
            raise ValueError(notice)
        gr.Warning(notice)
        yield _outputs(dataclasses.replace(last[0], notices=last[0].notices + (notice,)), rows, temperature)
    else:
        progress(1.0, desc="done")


@ui_errors
def _compare_run(prompt, model, compare, rows, max_new_tokens, progress=gr.Progress()):
    """The same strategies (same seeds) on the "Compare with" model, as a second row of columns."""
    other = second_model(model, compare)
    if not other:
        return "Pick a second model in **Compare with** at the top of the page to run these strategies on it too."
    strategies, _ = rows_to_strategies(rows)
    progress(0.1, desc=f"the same strategies on {other}")
    result = decoding.run(prompt, other, strategies, max_new_tokens)
    note = model_notice(other).replace("**", "")
    return (f"<p><b>{label(other)}</b>, same strategies and seeds. {note}</p>" + columns_html(result))


@ui_errors
def _reroll(rows):
    out = [list(r) for r in rows]
    for row in out:
        if str(row[0]).strip().lower() == "sampling":
            row[-1] = str(new_seed())
    return out


@ui_errors
def _add_preset(rows, name):
    rows = [list(r) for r in rows if str(r[0] or "").strip()]
    if len(rows) >= MAX_STRATEGIES:
        gr.Warning(f"At most {MAX_STRATEGIES} columns; remove a row first.")
        return rows
    return rows + [preset_row(name)]


@ui_errors
def _pick_column(result, col):
    if result is None or col is None:
        return gr.update(), empty_figure("Run the strategies first.")
    run = result.runs[int(col)]
    return (gr.update(maximum=max(run.steps.num_steps, 1), value=1),
            stamp(step_figure(run, 0, result.vocab_text), result.provenance))


@ui_errors
def _scrub(result, col, step):
    if result is None or col is None:
        return empty_figure("Run the strategies first.")
    return stamp(step_figure(result.runs[int(col)], int(step) - 1, result.vocab_text), result.provenance)


def commitment_api(text: str, model: str | None = None, max_new_tokens: int = 16, chat_template: bool = True) -> dict:
    """JSON API ``/commitment``: ``{"tokens": [{"text", "layer"}], "num_layers", "notices"}`` (``layer``: the first
    ``hidden_states`` index from which the logit lens keeps the greedy token as its top-1, null if never)."""
    return commitment.commitment_json(text, model, max_new_tokens, chat_template)


@ui_errors
def _commitment(text, model, n):
    return commitment.strip_for(text, model, n, True)


@ui_errors
def _branch(fork_state, n, evt: gr.SelectData, request: gr.Request):
    return branching.on_select(fork_state, n, evt, request)


def column_strategy(run) -> dict:
    """The ``/decode`` strategy dict a column ran with (its name, resolved parameters and seed)."""
    return {"name": run.strategy, **run.params, **({} if run.seed is None else {"seed": int(run.seed)})}


def _alternatives(result, col, step, prompt):
    """The branch panel's alternatives at the step view's column and step: continuing from a click replays the
    column (its strategy and seed) up to that step, forces the clicked token and continues with the strategy."""
    if result is None or col is None or result.runs[int(col)].steps is None:
        return branching.offer(None, [], None)
    run, index = result.runs[int(col)], max(0, int(step) - 1)
    records = run.steps
    index = min(index, records.num_steps - 1)
    top = [(t, result.vocab_text.get(int(t), str(t)), p) for t, p in zip(records.top_ids[index].tolist(),
                                                                          records.raw_probs[index].tolist())]
    fork = {"text": prompt, "model": result.model, "chat": True, "position": index,
            "strategy": column_strategy(run)}
    return branching.offer(fork, top[:10], result.provenance)


@ui_errors
def _temperature(result, temperature):
    return stamp(temperature_figure(result.first_logits if result else None, temperature,
                                    result.vocab_text if result else {}), result)


@ui_errors
def _beam(result, col):
    run = result.runs[int(col)] if result is not None and col is not None else None
    return stamp(beam_tree_figure(run, result.vocab_text if result else {}), result if run is not None else None)


@ui_errors
def _speculate(prompt, model, method, num_draft, ngram_size, draft_model, max_new_tokens, progress=gr.Progress()):
    progress(0.05, desc="speculative decoding, then plain greedy for comparison")
    result = run_speculative(prompt, model or None, method, max_new_tokens, num_draft, ngram_size,
                             draft_model or None)
    summary = (f"**{len(result.token_ids)} tokens** in {result.forward_passes} verification passes "
               f"(plain greedy: {len(result.baseline_ids)} passes) · drafted {result.num_drafted}, accepted "
               f"{int(result.accepted.sum())} (**{result.acceptance_rate:.0%}**) · {result.seconds:.2f} s vs "
               f"{result.baseline_seconds:.2f} s plain greedy → **speed-up {result.speedup:.2f}×** · output "
               + ("identical to plain greedy." if result.identical else "differs from plain greedy."))
    return (result, stamp(speculative_figure(result, result.vocab_text), result.provenance), speculative_html(result),
            summary)


@ui_errors
def decode_api(text: str, model: str, strategies: list[dict], max_new_tokens: int) -> dict:
    """Decode ``text`` with each strategy in order.

    Returns ``{"runs": [{"strategy", "params", "seed", "text", "token_ids", "token_logprobs", "seconds"}],
    "notices": [...]}``; ``token_logprobs`` are the model's raw log-probabilities of the chosen tokens.
    """
    text, model = check_text(text, "text"), check_optional_text(model, "model")
    return decoding.to_api(decoding.run(text, model, check_records(strategies, "strategies"), max_new_tokens))


def build_decoding_tab(ctx) -> dict:
    """Build the Decoding tab; returns its components by name."""
    limits = ctx.limits
    result_state, spec_state = gr.State(None), gr.State(None)
    gr.Markdown(INTRO)
    table = gr.Dataframe(value=[preset_row(n) for n in DEFAULT_PRESETS], headers=HEADERS, datatype="str",
                         type="array", column_count=len(HEADERS),
                         interactive=True, label="Strategies (one row per column)", elem_id="decoding-table",
                         elem_classes=[INPUT_TABLE])
    with gr.Row():
        preset = gr.Dropdown(list(PRESETS), value=list(PRESETS)[2], label="Preset", scale=3)
        add = gr.Button("Add preset row", scale=1)
        reroll = gr.Button("Re-roll seeds and run", scale=1)
    with gr.Row():
        max_new = gr.Slider(1, limits.max_new_tokens, value=min(32, limits.max_new_tokens), step=1,
                            label="new tokens (generated)", scale=3)
        run = gr.Button("Run strategies", variant="primary", elem_id="decoding-run", scale=1)
        stop = gr.Button("Stop", variant="stop", scale=1, min_width=80)
    columns = gr.HTML(columns_html(None), elem_id="decoding-columns")
    with gr.Row():
        compare_btn = gr.Button("Run the same strategies on the Compare-with model", scale=0)
    compare_columns = gr.HTML(elem_id="decoding-compare-columns")
    gr.Markdown("### Step by step: what each setting keeps at every step of the run above")
    with gr.Row():
        column = gr.Dropdown([], label="Column (greedy or sampling)", scale=2)
        step = gr.Slider(1, 2, value=1, step=1, label="Step", scale=3)
    main_plot = gr.Plot(empty_figure("Run the strategies to scrub through their steps."), label="Step by step",
                        elem_id="decoding-main-plot")
    branch = branching.build_branch_panel(ctx, "decoding", BRANCH_INTRO, _branch)
    gr.Markdown("### Temperature, live: the distribution after the prompt, reshaped")
    temperature = gr.Slider(0.0, 3.0, value=0.7, step=0.05, label="Temperature (0 = greedy, 1 = unchanged, >1 flatter)")
    temp_plot = gr.Plot(empty_figure("Run the strategies first."), label="Temperature",
                        elem_id="decoding-temperature-plot")
    gr.Markdown("### Beam search tree: the beams at each step, pruned candidates faded, the winner in orange")
    beam_column = gr.Dropdown([], label="Beam-search column")
    beam_plot = gr.Plot(empty_figure("Add a beam-search row and run."), label="Beam tree",
                        elem_id="decoding-beam-plot")
    gr.Markdown(SPEC_INTRO)
    with gr.Row():
        method = gr.Radio(list(DRAFTERS), value="prompt_lookup", label="Drafter")
        num_draft = gr.Slider(1, 16, value=8, step=1, label="Draft tokens per step")
        ngram = gr.Slider(1, 5, value=3, step=1, label="Prompt lookup: longest n-gram matched")
        draft_model = gr.Textbox(DEFAULT_MODEL, label="Assisted: draft model (same tokenizer, smaller)")
    with gr.Row():
        quote = gr.Button("Use a quoting example prompt")
        spec_run = gr.Button("Run speculative decoding", variant="primary", elem_id="decoding-spec-run")
        spec_stop = gr.Button("Stop", variant="stop", min_width=80)
    spec_summary = gr.Markdown()
    spec_plot = gr.Plot(empty_figure("Run speculative decoding."), label="Speculative decoding",
                        elem_id="decoding-spec-plot")
    spec_tokens = gr.HTML()

    run_inputs = [ctx.prompt, ctx.model, table, max_new, temperature]
    run_outputs = [result_state, columns, table, column, step, main_plot, temp_plot, beam_column, beam_plot]
    assert len(run_outputs) == RUN_OUTPUTS, "the heartbeat of _run must update every output"
    run_event = run.click(_run, run_inputs, run_outputs, concurrency_id="decoding")
    reroll_event = reroll.click(_reroll, table, table).then(_run, run_inputs, run_outputs, concurrency_id="decoding")
    compare_event = compare_btn.click(_compare_run, [ctx.prompt, ctx.model, ctx.compare_model, table, max_new],
                                      compare_columns, concurrency_id="decoding") if ctx.compare_model is not None \
        else None
    stop.click(None, None, None, cancels=[e for e in (run_event, reroll_event, compare_event) if e is not None])
    add.click(_add_preset, [table, preset], table)
    column.input(_pick_column, [result_state, column], [step, main_plot])
    step.change(_scrub, [result_state, column, step], main_plot)
    alts = [branch["branch_state"], branch["branch_badge"], branch["branch_alts"]]
    for trigger in (column.input, step.change):
        trigger(_alternatives, [result_state, column, step, ctx.prompt], alts, api_visibility="private")
    run_event.success(_alternatives, [result_state, column, step, ctx.prompt], alts, api_visibility="private")
    temperature.change(_temperature, [result_state, temperature], temp_plot)
    beam_column.input(_beam, [result_state, beam_column], beam_plot)
    quote.click(lambda: QUOTE_PROMPT, None, ctx.prompt)
    spec_event = spec_run.click(_speculate, [ctx.prompt, ctx.model, method, num_draft, ngram, draft_model, max_new],
                                [spec_state, spec_plot, spec_tokens, spec_summary], concurrency_id="decoding")
    spec_stop.click(None, None, None, cancels=[spec_event])
    # /decode's steps share forward passes with other requests' (explorer/core/step_batcher.py), so more of them
    # may run at once than the app's default concurrency: waiting rows cost a turn's wait, not a pass each.
    gr.api(decode_api, api_name="decode", concurrency_limit=get_limits().step_concurrency)
    gr.Markdown("### Where each token is decided: the layer from which the logit lens keeps it as the top-1")
    commit = commitment.build_commitment_section(ctx, _commitment, None, "decoding")
    gr.api(commitment_api, api_name="commitment")
    chain = build_chain_section(ctx)
    return {**chain, **commit, **branch, "run": run, "stop": stop, "table": table, "preset": preset, "add": add, "reroll": reroll,
            "max_new_tokens": max_new, "columns": columns, "column": column, "step": step, "main_plot": main_plot,
            "temperature": temperature, "temperature_plot": temp_plot, "beam_column": beam_column,
            "beam_plot": beam_plot, "method": method, "num_draft": num_draft, "ngram": ngram,
            "draft_model": draft_model, "spec_run": spec_run, "spec_stop": spec_stop, "spec_plot": spec_plot,
            "spec_tokens": spec_tokens, "spec_summary": spec_summary, "state": result_state, "spec_state": spec_state,
            "compare_columns": compare_columns, "result": result_state}
