"""The Prompting & agents tab: prompting patterns measured with intervals, benchmark scoring the way the field does,
and benchmark contamination caused and caught. Handlers are module-level: each runs an ``explorer.prompting``
``iter_run`` in a stoppable worker and draws with ``figures``; picking an item re-draws from the stored result.
"""
from __future__ import annotations

import gradio as gr

from components.badge import badge_md, badged_table, stamp
from components.errors import ui_errors
from components.stoppable import drive
from components.tabs.prompting.agents_section import agents_section
from components.tabs.prompting import figures as figs
from explorer.core.progress import run_to_end
from explorer.prompting import benchmark, contamination, lens, stored
from explorer.prompting.patterns import LABELS, PATTERNS
from explorer.prompting.tasks import TASKS, source

FORMS = {"auto: chat for instruct models, plain text for base models": None, "chat turn (chat template)": True,
         "plain text": False}
INTRO = ("How you ask changes what a model answers. Each pattern from the handbook's table runs here on the same "
         "held-out items of a task the project wrote, and is scored with a 95 % bootstrap interval, beside the "
         "tokens it spends. A 135M or 270M model often fails where large models succeed (chain of thought "
         "emerged around 100B parameters): seeing that honestly, with intervals, is the lesson. Click an item to "
         "see the exact prompt the model received.")


def _pattern_choices():
    return [(LABELS[p], p) for p in PATTERNS]


def _runs_key(result) -> tuple:
    return result.task, result.model, result.chat_template


@ui_errors
def run_pattern(prompt_model, task, pattern, k, n_samples, limit, form, runs, progress=gr.Progress()):
    """Score one pattern on the capped sample, streaming each item; the figure compares the session's patterns."""
    runs = dict(runs or {})
    chat = FORMS.get(form)
    heartbeat = tuple(gr.update() for _ in range(7))

    def draw(result):
        shown = {**runs.get(_runs_key(result), {}), result.pattern: result}
        return (gr.update(), runs, stamp(figs.patterns_figure(shown), result.provenance), figs.summary_md(result),
                figs.item_rows(result), result.provenance, gr.update())

    result = yield from drive(lambda flag: lens.iter_run(task, prompt_model, pattern, int(k), int(n_samples),
                                                         int(limit), chat, stop=flag),
                              progress, heartbeat, on_partial=draw)
    if result is None:
        return
    key = _runs_key(result)
    runs[key] = {**runs.get(key, {}), result.pattern: result}
    yield (result, runs, stamp(figs.patterns_figure(runs[key]), result.provenance), figs.summary_md(result),
           figs.item_rows(result), result.provenance, figs.item_md(result, 0))


def show_stored(model):
    """The stored table for the picked model (no model run): figure and the provenance line."""
    table = stored.load_stored()
    if table is None:
        return figs.empty_figure("No stored table yet (python bench/bench_prompting.py --write)."), ""
    model = model or "smollm2-135m-instruct"
    return stamp(figs.stored_figure(table, model), table.provenance), badge_md(table.provenance)


def pick_item(result, evt: gr.SelectData):
    """The clicked item's prompt, output and verdict (from the stored result)."""
    if result is None or evt is None or evt.index is None:
        return gr.update()
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    return figs.item_md(result, int(row))


def owner_of(browser_id, request) -> str:
    """The session's owner id for LoRA runs: the Fine-tuning tab's stored browser id, else the session hash."""
    return (browser_id or "").strip() or (getattr(request, "session_hash", None) or "")


@ui_errors
def run_benchmark(model, task, adapter, form, browser_id, request: gr.Request, progress=gr.Progress()):
    """Score a task as multiple choice by log-likelihood (optionally with one of this session's adapters)."""
    heartbeat = tuple(gr.update() for _ in range(5))
    owner = owner_of(browser_id, request)
    result = yield from drive(lambda flag: benchmark.iter_run(task, model, (adapter or "").strip() or None, owner,
                                                              chat_template=FORMS.get(form), stop=flag),
                              progress, heartbeat)
    if result is not None:
        yield (result, stamp(figs.benchmark_figure(result), result.provenance), figs.benchmark_md(result),
               figs.benchmark_rows(result), result.provenance)


@ui_errors
def run_contamination(model, task, steps, browser_id, request: gr.Request, progress=gr.Progress()):
    """Leak half the items into a LoRA run of this session, then measure inflation and Min-K% detection."""
    heartbeat = tuple(gr.update() for _ in range(4))
    owner = owner_of(browser_id, request)
    result = yield from drive(lambda flag: contamination.iter_run(task, model, owner, int(steps), stop=flag),
                              progress, heartbeat)
    if result is not None:
        yield (result, stamp(figs.contamination_figure(result), result.provenance), figs.contamination_md(result),
               result.run_id)


def prompting_api(task: str, model: str | None = None, pattern: str = "zero_shot", k: int = 0, n_samples: int = 1,
                  limit: int | None = None, chat_template: bool | None = None) -> dict:
    """JSON API ``/prompting``: ``{"accuracy", "interval", "items": [{"prompt", "output", "answer", "correct"}],
    "tokens", "notices"}`` for ``pattern`` on ``task``'s held-out items (a capped sample unless ``limit``)."""
    try:
        return run_to_end(lens.iter_run(task, model or None, pattern, k, n_samples, limit, chat_template)) \
            .to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def benchmark_api(task: str, model: str | None = None, adapter: str | None = None, chat_template: bool | None = None,
                  request: gr.Request = None) -> dict:
    """JSON API ``/benchmark``: ``{"acc", "acc_norm", "interval", "n", "notices"}``; ``adapter`` is a LoRA run id
    of this session (another session's is refused)."""
    try:
        return run_to_end(benchmark.iter_run(task, model or None, adapter or None, owner_of(None, request),
                                                  chat_template=chat_template)).to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def contamination_api(task: str = "capitals", model: str | None = None, steps: int = 40, limit: int | None = None,
                      request: gr.Request = None) -> dict:
    """JSON API ``/contamination``: leak half of ``limit`` test items into a LoRA run of this session; accuracy
    before/after for leaked and unseen items, Min-K% Prob per item, the detection AUROC and the run id."""
    try:
        return run_to_end(contamination.iter_run(task, model or None, owner_of(None, request), steps,
                                                      limit)).to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def _patterns_section(ctx) -> dict:
    limits = ctx.limits
    gr.Markdown("### Prompting patterns, measured\n" + INTRO)
    with gr.Row():
        task = gr.Dropdown(list(TASKS), value="capitals", label="task", scale=1)
        pattern = gr.Dropdown(_pattern_choices(), value="zero_shot", label="pattern", scale=1)
        form = gr.Dropdown(list(FORMS), value=list(FORMS)[0], label="how the prompt reaches the model", scale=2)
    with gr.Row():
        k = gr.Slider(0, limits.prompting_max_shots, value=3, step=1, label="k: few-shot examples (few-shot only)")
        n_samples = gr.Slider(1, limits.prompting_max_samples, value=5, step=1,
                              label="N: sampled chains (self-consistency only)")
        limit = gr.Slider(1, limits.prompting_max_items, value=min(8, limits.prompting_max_items), step=1,
                          label="items scored (held-out split)")
    with gr.Row():
        run = gr.Button("Run the pattern", variant="primary", elem_id="prompting-run")
        stop = gr.Button("Stop", variant="stop")
    source_md = gr.Markdown(f"Items: {source('capitals')}.")
    summary = gr.Markdown(elem_id="prompting-summary")
    plot = gr.Plot(figs.empty_figure("Press 'Run the pattern': its accuracy and tokens appear here, beside the other "
                                     "patterns you run on the same task."),
                   elem_id="prompting-main-plot", label="accuracy and tokens per pattern")
    table_badge, table = badged_table(headers=figs.ITEM_HEADERS, interactive=False, elem_id="prompting-items",
                                      label="items (click one to see its prompt and output)")
    detail = gr.Markdown(elem_id="prompting-item")
    with gr.Accordion("Stored: every pattern on every task (bench)", open=False):
        stored_plot = gr.Plot(elem_id="prompting-stored-plot", label="stored table")
        stored_md = gr.Markdown()
    result, runs = gr.State(None), gr.State({})
    gr.on([gr.context.Context.root_block.load, ctx.model.change], show_stored, ctx.model, [stored_plot, stored_md],
          api_visibility="private", queue=False)
    task.change(lambda t: f"Items: {source(t)}.", task, source_md, api_visibility="private", queue=False)
    event = run.click(run_pattern, [ctx.model, task, pattern, k, n_samples, limit, form, runs],
                      [result, runs, plot, summary, table, table_badge, detail], api_visibility="private")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
    table.select(pick_item, result, detail, api_visibility="private")
    gr.api(prompting_api, api_name="prompting")
    return {"task": task, "pattern": pattern, "k": k, "n_samples": n_samples, "limit": limit, "run": run,
            "plot": plot, "result": result}


def _benchmark_section(ctx, browser_id) -> dict:
    gr.Markdown("### Benchmark scoring, the way lm-evaluation-harness does it\nEach item is multiple choice: the "
                "model is not asked to write an answer; instead the log-likelihood of each option given the question "
                "is summed, and the highest wins (**acc**). **acc_norm** divides by the option's length in bytes, "
                "so long options are not punished for having more tokens. Give the id of one of your Fine-tuning "
                "runs to score with its adapter on.")
    with gr.Row():
        task = gr.Dropdown(list(TASKS), value="capitals", label="task")
        adapter = gr.Textbox(label="LoRA run id of this session (empty = base model)", max_lines=1)
        form = gr.Dropdown(list(FORMS), value=list(FORMS)[0], label="how the question reaches the model")
        run = gr.Button("Score the benchmark", elem_id="prompting-bench-run")
    summary = gr.Markdown()
    plot = gr.Plot(figs.empty_figure("Press 'Score the benchmark' to score every held-out item as multiple choice."),
                   elem_id="prompting-bench-plot", label="acc and acc_norm")
    table_badge, table = badged_table(headers=figs.BENCH_HEADERS, interactive=False, label="items")
    with gr.Accordion("What the field's benchmarks measure (from the concept handbook)", open=False):
        gr.Markdown(figs.handbook_md(benchmark.HANDBOOK_BENCHMARKS))
    result = gr.State(None)
    run.click(run_benchmark, [ctx.model, task, adapter, form, browser_id], [result, plot, summary, table, table_badge],
              api_visibility="private")
    gr.api(benchmark_api, api_name="benchmark")
    return {"bench_task": task, "bench_plot": plot, "bench_adapter": adapter}


def _contamination_section(ctx, browser_id, adapter_box) -> dict:
    limits = ctx.limits
    gr.Markdown("### Contamination: inflate a benchmark, then catch it\nIf test items leak into training, the score "
                "rises without the model getting better. Here a LoRA run (private to you) trains on half of a "
                "task's test items; the benchmark is scored again on the leaked half and the unseen half, and "
                "Min-K% Prob (the Next token tab's membership test) looks for the leak.")
    with gr.Row():
        task = gr.Dropdown(list(TASKS), value="capitals", label="task")
        steps = gr.Slider(5, limits.contamination_max_steps, value=min(40, limits.contamination_max_steps), step=5,
                          label="LoRA steps on the leaked items")
        run = gr.Button("Leak and measure", elem_id="prompting-leak-run")
        stop = gr.Button("Stop", variant="stop")
    summary = gr.Markdown()
    plot = gr.Plot(figs.empty_figure("Press 'Leak and measure': a LoRA run of about a minute, then both halves "
                                     "scored again."), elem_id="prompting-leak-plot", label="inflation and detection")
    result = gr.State(None)
    event = run.click(run_contamination, [ctx.model, task, steps, browser_id], [result, plot, summary, adapter_box],
                      api_visibility="private")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
    gr.api(contamination_api, api_name="contamination")
    return {"leak_plot": plot}


def build_prompting_tab(ctx) -> dict:
    """Build the tab; returns its components by name (``result``: the last pattern run, for the JSON download)."""
    browser_id = ctx.extra.get("lora_owner")
    if browser_id is None:
        browser_id = gr.BrowserState("", storage_key="llm-explorer-lora-owner", render=False)
        ctx.page_level.append(browser_id)
    out = _patterns_section(ctx)
    with gr.Accordion("Benchmark scoring", open=True):
        bench = _benchmark_section(ctx, browser_id)
    with gr.Accordion("Contamination caught", open=True):
        leak = _contamination_section(ctx, browser_id, bench.pop("bench_adapter"))
    with gr.Accordion("Tools, agents and safety", open=True):
        agents = agents_section(ctx)
    return {**out, **bench, **leak, **agents}
