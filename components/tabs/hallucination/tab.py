"""The Hallucination tab: probes that show when the model may be making things up, and where answers come from.

Reads the shared prompt as the question. Runs the chosen probes (registry in ``explorer.hallucination``)
with progress and a Stop button, compares a real with an invented entity, attributes the answer to the
question's words (captum), and shows how well each probe works on this model (AUROC table and ROC
curves recomputed from the stored bench results, without the model).
"""
from __future__ import annotations

import functools
import json
import os

import gradio as gr

from components.badge import badged_table, stamp
from components.compare import label as model_label, model_notice, second_model
from components.errors import ui_errors
from components.tabs.hallucination import figures as figs
from explorer import hallucination as H
from explorer.hallucination.attribution import METHODS, UNITS, attribute
from explorer.core.engine import get_engine
from explorer.core.progress import Progress
from explorer.core.provenance import meta_line
from explorer.core.validation import check_choices, check_int, check_optional_text, check_text
from explorer.hallucination.evaluation import (COLLECT_COMMAND, RESULTS_FILE, load_results, scores_from_probes,
                                             stored_table)

PROBE_CHOICES = [(p.label, name) for name, p in H.PROBES.items()]
EXPLANATIONS = "\n".join(f"- **{p.label}** (`{name}`): {p.explanation}" for name, p in H.PROBES.items())
TASKS = [("Wrong answers (questions)", "questions"), ("Invented entities", "entities")]


def summary_markdown(result: H.HallucinationResult) -> str:
    """The answer (flagged when the time cap cut it short), then one line per probe with its main numbers (each
    probe's own summary) or its error / skip message."""
    cut = " *(cut short by the time cap)*" if result.answer.stopped_by_time else ""
    return "\n".join([f"**Answer:** {result.answer.text or '(empty)'}{cut}", *H.summary_lines(result)])


def _views(result: H.HallucinationResult, view: str, picked: str | None):
    """The tab's plots from a result: token confidence (main), sample clusters, logit lens, attribution, and the
    figure of the probe picked in "Figure of a probe" (each drawn from the probe's own figure kind)."""
    prov = result.provenance
    main = stamp(figs.token_confidence(result.answer, view), prov)
    fixed = [stamp(figs.probe_figure(result, name), prov) for name in ("semantic_entropy", "logit_lens", "attribution")]
    return (main, *fixed, stamp(figs.probe_figure(result, picked), prov) if picked else None)


@ui_errors
def run_probes(question, model, probes, n_samples, seed, context, view, compare_with=None, picked=None,
               progress=gr.Progress()):
    """Stream the probes' results after each one (so Stop works between probes); then, with "Compare with",
    the same probes on the second model (base vs instruct: its answer, P(True) ...) under the summary.
    ``picked`` is the probe whose figure the "Figure of a probe" plot shows."""
    names = H.check_probes(probes)
    other = second_model(model, compare_with)
    shown: set[str] = set()
    for item in H.iter_run(question, model, names, context, int(n_samples), int(seed)):
        if isinstance(item, Progress):
            result, label = item.partial, item.message
            if names and label == f"running {H.PROBES['semantic_entropy'].label}":
                label += f" (sampling {min(int(n_samples), gr_limits().max_samples)} answers)"
            progress(item.fraction, desc=label)
        else:
            result = item
        for notice in result.notices:  # caps, a cut answer, skipped probes: each said once, when it happens
            if notice not in shown:
                shown.add(notice)
                gr.Warning(notice)
        yield (result, summary_markdown(result), *_views(result, view, picked), result.to_api())
    if other:
        progress(1.0, desc=f"the same probes on {other}")
        second = H.run(question, other, names, context, int(n_samples), int(seed))
        yield (result, summary_markdown(result) + f"\n\n**Compare with {model_label(other)}**\n\n"
               + summary_markdown(second) + (f"\n\n{note}" if (note := model_notice(other)) else ""),
               *_views(result, view, picked), result.to_api())


@ui_errors
def rerender(result, view):
    """Redraw the token view from the stored result (no model run)."""
    return stamp(figs.token_confidence(result.answer, view), result.provenance) if result is not None else None


@ui_errors
def rerender_probe(result, picked):
    """Redraw the picked probe's figure from the stored result (no model run)."""
    return stamp(figs.probe_figure(result, picked), result.provenance) if result is not None and picked else None


@ui_errors
def compare(template, real, fictitious, model, n_samples, seed, progress=gr.Progress()):
    """Real vs invented entity, same scalar probes, side by side."""
    progress(0.1, desc="asking about both entities")
    pair = H.compare_entities(template, real, fictitious, model, H.DEFAULT_PROBES, int(n_samples), int(seed))
    named = {f"{name} (real)" if i == 0 else f"{name} (invented)": scores_from_probes(r.probes)
             for i, (name, r) in enumerate(zip((real.strip(), fictitious.strip()), pair))}
    answers = "\n".join(f"- **{n}**: {r.answer.text!r}" for n, r in zip(named, pair))
    return (answers, figs.comparison_table(named),
            stamp(figs.probe_comparison(named, "Real vs invented entity"), pair[0].provenance), pair[0].provenance)


@ui_errors
def run_attribution(question, model, method, unit, target, parse_special=True, progress=gr.Progress()):
    """Attribute the answer (or a typed target) to the question's parts; typed special-token text follows the
    Tokens tab's "parse special-token text" toggle (``parse_special``)."""
    progress(0.1, desc=f"captum {method} over {unit}s")
    result = attribute(get_engine(model), question, method=method, unit=unit, target=target or None,
                       max_seconds=gr_limits().max_probe_seconds, parse_special=bool(parse_special))
    return stamp(figs.attribution(result), result.provenance), figs.attribution_html(result), result.to_api()


def gr_limits():
    """The active limits (read once per process)."""
    from explorer.core.config import get_limits

    return get_limits()


@functools.lru_cache(maxsize=8)
def _table(task: str, stamp: tuple):
    return stored_table(task)


def _stored(task: str):
    stamp = (os.path.getmtime(RESULTS_FILE), os.path.getsize(RESULTS_FILE)) if os.path.exists(RESULTS_FILE) else ()
    return _table(task, stamp)


COLLECT_COMMAND = "python bench/bench_hallucination.py collect"


def collection_note(task: str) -> str:
    """How the stored records of ``task`` were collected: model, samples, seed (from the records themselves),
    and the command, dates and library versions from the sidecar ``bench_results.meta.json`` when recorded."""
    records = [r for r in load_results() if r.get("set") == task]
    values = lambda key: ", ".join(str(v) for v in sorted({r.get(key) for r in records}, key=str))  # noqa: E731
    note = (f"Collected by `{COLLECT_COMMAND}` with {values('n_samples')} samples per question, seed "
            f"{values('seed')}, model {values('model')} (this tab's live probes default to 5 samples). ")
    meta_path = os.path.splitext(RESULTS_FILE)[0] + ".meta.json"
    runs = json.load(open(meta_path, encoding="utf-8")).get("runs", []) if os.path.exists(meta_path) else []
    return note + (f"Last collection {meta_line(runs[-1])}." if runs else
                   "Dates and library versions of these records were not recorded.")


@ui_errors
def auroc_view(task):
    """AUROC table and ROC curves from the stored bench results (no model), with where they come from."""
    table = _stored(task)
    rows = table.rows
    if not rows:
        return figs.auroc_frame([]), None, f"No stored bench results yet: run `{COLLECT_COMMAND}`."
    text = (f"{rows[0].n} items, {rows[0].n_positive} positives; AUROC 0.5 = no better than chance. "
            f"Stored results: `{table.provenance.source}`; recomputed by `explorer.hallucination.evaluation`. "
            + collection_note(task))
    return (figs.auroc_frame(rows), stamp(figs.roc_curves(rows, f"ROC curves: detecting {rows[0].task}s"),
                                          table.provenance), text)


def auroc_badged(task):
    """:func:`auroc_view` and the stored table's provenance for its badge (``None`` when nothing is stored)."""
    out = auroc_view(task)
    return (*out, _stored(task).provenance if out[1] is not None else None)


@ui_errors
def probe_api(question: str, model: str, probes: list[str], context: str | None = None, n_samples: int = 5) -> dict:
    """JSON API ``/probe``: ``{"answer", "probes": {name: {..., "score"}}, "elapsed_ms", "notices"}``."""
    question, model = check_text(question, "question", allow_empty=True), check_optional_text(model, "model")
    probes = None if probes is None else check_choices(probes, "probes", None)
    n_samples = check_int(n_samples, "n_samples", minimum=1)  # above the cap: capped with a notice by H.run
    return H.run(question, model, probes, check_optional_text(context, "context"), n_samples).to_api()


@ui_errors
def attribute_api(question: str, model: str, method: str = "feature_ablation", unit: str = "word",
                  target: str | None = None, parse_special: bool = True) -> dict:
    """JSON API ``/attribute``: segments of the question with their attribution to the answer (nats).
    ``parse_special``: special-token text typed in the question is the special token (no credit) or plain text."""
    question, model = check_text(question, "question", allow_empty=True), check_optional_text(model, "model")
    method, unit = check_text(method, "method"), check_text(unit, "unit")  # names checked by attribute()
    target = check_optional_text(target, "target")
    result = attribute(get_engine(model), question, method=method, unit=unit, target=target or None,
                       max_seconds=gr_limits().max_probe_seconds, parse_special=parse_special is not False)
    return result.to_api()


def build_hallucination_tab(ctx) -> dict:
    """Build the Hallucination tab; returns its components by name."""
    limits = ctx.limits
    gr.Markdown("The question is the prompt above. A small model states wrong things with confidence; these "
                "signals correlate with it, and the table at the bottom shows how well each works on this model.")
    with gr.Row():
        probes = gr.CheckboxGroup(PROBE_CHOICES, value=list(H.DEFAULT_PROBES), label="Probes", scale=3,
                                  elem_id="hallucination-probes")
        with gr.Column(scale=1):
            n_samples = gr.Slider(1, 2 * limits.max_samples, value=5, step=1, label="Samples (agreement probe)",
                                  info=f"capped at {limits.max_samples}")
            seed = gr.Number(value=0, precision=0, label="Seed")
    with gr.Accordion("What each probe measures", open=False):
        gr.Markdown(EXPLANATIONS)
    context = gr.Textbox(label="Context passage (for grounded vs ungrounded)", lines=3,
                         placeholder="Paste a passage; tick 'Grounded vs ungrounded'.")
    with gr.Row():
        run_btn = gr.Button("Run probes", variant="primary", elem_id="hallucination-run")
        stop_btn = gr.Button("Stop", variant="stop")
    summary = gr.Markdown()
    view = gr.Radio(list(figs.TOKEN_VIEWS), value="probability", label="Colour tokens by")
    main_plot = gr.Plot(elem_id="hallucination-main-plot", label="Token confidence")
    with gr.Row():
        clusters_plot = gr.Plot(label="Agreement across samples")
        attr_plot = gr.Plot(label="Attribution (when ticked)")
    lens_plot = gr.Plot(label="Logit lens")
    with gr.Row():
        picked = gr.Dropdown(PROBE_CHOICES, value="sequence", label="Figure of a probe", scale=1)
        probe_plot = gr.Plot(label="The picked probe's figure", scale=3)
    raw = gr.JSON(label="All numbers (the /probe JSON)")
    state = gr.State(None)
    compare_input = ctx.compare_model if ctx.compare_model is not None else gr.State(None)
    run_event = run_btn.click(run_probes, [ctx.prompt, ctx.model, probes, n_samples, seed, context, view,
                                           compare_input, picked],
                              [state, summary, main_plot, clusters_plot, lens_plot, attr_plot, probe_plot, raw])
    stop_btn.click(None, None, None, cancels=[run_event])
    view.change(rerender, [state, view], main_plot)
    picked.change(rerender_probe, [state, picked], probe_plot)

    with gr.Accordion("Real vs invented entity", open=False):
        with gr.Row():
            template = gr.Textbox(value="Who was {entity}?", label="Question with {entity}")
            real = gr.Textbox(value="Marie Curie", label="Real entity")
            fake = gr.Textbox(value="Zorvak Melindrel", label="Invented entity")
        cmp_btn = gr.Button("Compare")
        cmp_answers = gr.Markdown()
        cmp_badge, cmp_table = badged_table(label="Scores side by side (higher = more likely wrong)")
        cmp_plot = gr.Plot()
        cmp_event = cmp_btn.click(compare, [template, real, fake, ctx.model, n_samples, seed],
                                  [cmp_answers, cmp_table, cmp_plot, cmp_badge])

    with gr.Accordion("Attribution: which words drove the answer (captum)", open=False):
        with gr.Row():
            method = gr.Radio(list(METHODS), value="feature_ablation", label="Method")
            unit = gr.Radio(list(UNITS), value="word", label="Segments")
            target = gr.Textbox(label="Target answer (empty = the model's own)")
        attr_btn = gr.Button("Attribute")
        attr_fig = gr.Plot()
        attr_chips = gr.HTML()
        attr_json = gr.JSON(label="/attribute JSON")
        parse_special = (ctx.extra.get("tokens") or {}).get("parse_special")  # the Tokens tab's toggle
        attr_event = attr_btn.click(run_attribution, [ctx.prompt, ctx.model, method, unit, target]
                                    + ([parse_special] if parse_special is not None else []),
                                    [attr_fig, attr_chips, attr_json])
    stop_btn.click(None, None, None, cancels=[cmp_event, attr_event])

    with gr.Accordion("How good is each probe on this model (AUROC on the labelled set)", open=True):
        task = gr.Radio(TASKS, value="questions", label="Task")
        # read once when the page is built (this also imports what the evaluation needs in the main thread,
        # not racing the page's load handlers); "Reload stored results" reads the file again
        frame, roc, note, prov = auroc_badged("questions")
        auroc_note = gr.Markdown(note)
        auroc_badge, auroc_df = badged_table(prov, value=frame,
                                             label="AUROC with bootstrap 95% interval and shuffled-score control")
        roc_plot = gr.Plot(roc, label="ROC curves")
        refresh = gr.Button("Reload stored results")
        gr.on([task.change, refresh.click], auroc_badged, task, [auroc_df, roc_plot, auroc_note, auroc_badge])

    gr.api(probe_api, api_name="probe")
    gr.api(attribute_api, api_name="attribute")
    return {"probes": probes, "n_samples": n_samples, "seed": seed, "context": context, "run": run_btn,
            "stop": stop_btn, "summary": summary, "view": view, "main_plot": main_plot, "clusters_plot": clusters_plot,
            "lens_plot": lens_plot, "attr_plot": attr_plot, "picked": picked, "probe_plot": probe_plot, "raw": raw,
            "state": state, "result": state, "auroc_table": auroc_df, "auroc_badge": auroc_badge,
            "roc_plot": roc_plot, "task": task}
