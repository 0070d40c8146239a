"""The Training & scale tab: a tiny model pretrained live, induction heads forming, hyperparameters and data quality.

Every run is a background job of :mod:`explorer.pretrain` keyed by the session's owner id (a random id kept in
the browser, so a reload re-attaches to a job still training; API callers use their ``gr.Request.session_hash``).
One job per session at a time; the server trains ``Limits.max_pretrain_runs`` at once and queues the rest.
"""
from __future__ import annotations

import threading
import time
import uuid

import gradio as gr
import pandas as pd
from gradio.context import Context

from components.badge import badge_html, badged_table, stamp
from components.errors import ui_errors
from components.tabs.training import figures as figs
from components.tabs.training.scaling_ui import build_scaling_section
from explorer import pretrain
from explorer.core.provenance import formula
from explorer.core.validation import check_mapping
from explorer.pretrain import experiments, stored
from explorer.pretrain.model import PretrainSettings, build_model, count_parameters
from explorer.pretrain.tokenizer import VOCAB_SIZE

POLL_S = 0.5
DEFAULTS = PretrainSettings()
SAMPLE_COLUMNS = ["step", "sample (prompt: 'Once upon a time')"]
HYPER_COLUMNS = ["hyperparameter", "typical (handbook)", "tiny model: run A", "tiny model: run B", "trace"]
ROW_CHOICES = [(row.name, row.key) for row in experiments.HYPER_ROWS]


def owner_of(browser_id: str | None, request: gr.Request | None) -> str:
    """The session's owner id: the browser's stored id, else Gradio's session hash."""
    return (browser_id or "").strip() or (getattr(request, "session_hash", None) or "")


def hyper_table() -> pd.DataFrame:
    """The handbook's hyperparameter rows with the tiny model's pair beside each."""
    return pd.DataFrame([[r.name, r.typical, r.a[0], r.b[0], figs.TRACES[r.trace][1]] for r in experiments.HYPER_ROWS],
                        columns=HYPER_COLUMNS)


def samples_frame(curve) -> pd.DataFrame:
    """The samples of a run, one row per sampling step."""
    return pd.DataFrame([[s, t] for s, t in (curve.samples if curve is not None else [])], columns=SAMPLE_COLUMNS)


def settings_dict(*values) -> dict:
    """The settings controls as a ``/pretrain`` settings dict."""
    keys = ("layers", "d_model", "heads", "seq_len", "batch_size", "steps", "lr", "warmup", "weight_decay", "clip",
            "dropout", "seed")
    return dict(zip(keys, values))


def view(owner: str, result) -> tuple:
    """Outputs for a job's snapshot: status, and the figures of its section (other sections unchanged)."""
    skip = gr.update()
    out = {"status": figs.status_html(result), "main": skip, "samples": skip, "samples_badge": skip, "runs": skip,
           "induction": skip, "pair": skip, "data": skip, "result": result}
    prov = result.provenance if result is not None and result.steps_done else None
    curve = result.curves[0] if result is not None and result.curves else None
    if result is None or result.kind == "pretrain":
        out["main"] = stamp(figs.live_figure(curve, f"Run {result.run_id}: {result.status}" if result else ""), prov)
        out["samples"], out["samples_badge"] = samples_frame(curve), prov
        done = [(j.run_id, j.curves[0]) for j in pretrain.jobs_for(owner, "pretrain") if j.curves]
        out["runs"] = stamp(figs.runs_figure(done), prov if done else None)
    elif result.kind == "induction":
        out["induction"] = stamp(figs.induction_figure(curve), prov)
    elif result.kind == "hyper":
        out["pair"] = stamp(figs.pair_figure(result, experiments.hyper_row(result.info["row"])), prov)
    else:
        out["data"] = stamp(figs.data_figure(result), prov)
    return tuple(out.values())


def stream(owner: str, job):
    """Yield :func:`view` outputs whenever the job moves, until it ends."""
    last = None
    while True:
        result = pretrain.snapshot(job)
        key = (result.status, result.steps_done, result.queue_position)
        if key != last:
            last = key
            yield view(owner, result)
        if not result.active:
            if result.status in ("failed", "diverged"):
                gr.Warning(result.message)
            return
        time.sleep(POLL_S)


def stored_figures() -> tuple:
    """The stored long runs' figures and their 'how it was made' lines (placeholders if a file is missing)."""
    out = []
    for kind, draw in (("pretrain", figs.live_figure), ("induction", figs.induction_figure)):
        try:
            curve, prov, how = stored.load(kind)
        except FileNotFoundError:
            out += [draw(None, "stored run missing: python -m explorer.pretrain.stored"), ""]
            continue
        out += [stamp(draw(curve, f"Stored longer run ({len(curve.losses)} steps)"), prov), f"Stored run {how}."]
    return tuple(out)


def build_training_tab(ctx) -> dict:
    """Build the Training & scale tab; returns its components by name."""
    limits = ctx.limits
    threading.Thread(target=pretrain_data_warm, daemon=True).start()  # the corpus is encoded once per process
    browser_id = gr.BrowserState("", storage_key="llm-explorer-training-owner", render=False)
    ctx.page_level.append(browser_id)
    result = gr.State(None)
    gr.Markdown("A model of about 130 thousand parameters learns English from random weights, on this server's CPU, "
                "while you watch. The corpus is stories from a seeded grammar (the same text on every machine); the "
                f"tokenizer a {VOCAB_SIZE}-token byte-level BPE trained on it. Runs are private to this browser "
                "session; the server trains a few at once and queues the rest.")
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                layers = gr.Slider(1, limits.max_pretrain_layers, DEFAULTS.layers, step=1, label="layers")
                d_model = gr.Slider(16, limits.max_pretrain_d_model, DEFAULTS.d_model, step=16, label="d_model")
                heads = gr.Slider(1, 16, DEFAULTS.heads, step=1, label="heads")
            with gr.Row():
                seq_len = gr.Slider(8, limits.max_pretrain_seq_len, DEFAULTS.seq_len, step=8, label="seq_len")
                batch_size = gr.Slider(1, limits.max_pretrain_batch_size, DEFAULTS.batch_size, step=1,
                                       label="batch size")
                steps = gr.Slider(1, limits.max_pretrain_steps, DEFAULTS.steps, step=1, label="steps")
        with gr.Column(scale=1):
            with gr.Row():
                lr = gr.Number(DEFAULTS.lr, label="learning rate")
                warmup = gr.Number(DEFAULTS.warmup, precision=0, label="warmup steps")
                weight_decay = gr.Number(DEFAULTS.weight_decay, label="weight decay")
            with gr.Row():
                clip = gr.Number(DEFAULTS.clip, label="gradient clipping (0 = off)")
                dropout = gr.Slider(0, 0.5, DEFAULTS.dropout, step=0.05, label="dropout")
                seed = gr.Number(DEFAULTS.seed, precision=0, label="seed")
            params = gr.Markdown(elem_id="training-params")
            with gr.Row():
                run_btn = gr.Button("Pretrain from random weights", variant="primary", elem_id="training-run")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="training-stop")
    status = gr.HTML(figs.status_html(None), elem_id="training-status")
    main_plot = gr.Plot(figs.live_figure(None), elem_id="training-main-plot", label="Loss")
    samples_badge, samples = badged_table(headers=SAMPLE_COLUMNS, wrap=True, interactive=False,
                                          label="Samples: gibberish becoming words", elem_id="training-samples")
    with gr.Accordion("Runs compared, and a longer stored run", open=False):
        runs_plot = gr.Plot(label="This session's runs")
        stored_plot = gr.Plot(label="Stored longer run")
        stored_md = gr.Markdown()
    with gr.Accordion("Emergence: induction heads form during training", open=True):
        gr.Markdown("A 2-layer attention-only model on random tokens with a repeated span. Random tokens cannot be "
                    "predicted; the repeat can, once a layer-1 head that looks at the previous token and a layer-2 "
                    "head that finds the earlier occurrence and copies what followed it have formed (Olsson et al. "
                    "2022). The in-context loss falls suddenly, at the step the induction score rises.")
        induction_btn = gr.Button("Train the pinned configuration (under a minute)", elem_id="training-induction")
        induction_plot = gr.Plot(label="Induction heads: live")
        stored_induction_plot = gr.Plot(label="Induction heads: stored longer run")
        stored_induction_md = gr.Markdown()
    with gr.Accordion("The hyperparameter table, made live", open=False):
        hyper_badge, hyper = badged_table(value=hyper_table(), headers=HYPER_COLUMNS, wrap=True, interactive=False,
                                          provenance=formula("concept handbook, Key Hyperparameters table; tiny "
                                                             "values: explorer/pretrain/experiments.py"))
        with gr.Row():
            row_pick = gr.Dropdown(ROW_CHOICES, value="lr", label="row", elem_id="training-row")
            pair_btn = gr.Button("Run the pair", elem_id="training-pair")
        row_note = gr.Markdown(experiments.hyper_row("lr").note)
        pair_plot = gr.Plot(label="The pair")
    with gr.Accordion("Data quality vs quantity", open=False):
        gr.Markdown("The same model and compute on three corpora, all scored on the same clean held-out stories: "
                    "the clean stories; a corrupted copy (half the stories word-shuffled, a third replaced by "
                    "duplicates); and 1/256 of the stories (~4 K tokens) seen about 38 times over: more epochs of "
                    "less data.")
        data_btn = gr.Button("Train on the three corpora", elem_id="training-data")
        data_plot = gr.Plot(label="Validation loss by corpus")

    setting_inputs = [layers, d_model, heads, seq_len, batch_size, steps, lr, warmup, weight_decay, clip, dropout, seed]
    view_outputs = [status, main_plot, samples, samples_badge, runs_plot, induction_plot, pair_plot, data_plot, result]

    @ui_errors
    def show_params(*values):
        try:
            parsed, notices = pretrain.settings_from_dict(settings_dict(*values))
        except ValueError as exc:
            return f"⚠ {exc}"
        n, emb = count_parameters(build_model(parsed, VOCAB_SIZE))
        prov = formula("parameters of the LlamaConfig model built from these settings (transformers); tokens = "
                       "steps x batch size x seq_len")
        return badge_html(prov) + " " + figs.params_md(n, emb, parsed) + (f" ({'; '.join(notices)})" if notices else "")

    def start(owner_id, request, kind, settings=None, row=None):
        owner = owner_of(owner_id, request)
        job = pretrain.start(owner, kind, settings, row)
        for notice in job.notices:
            gr.Warning(notice)
        yield from stream(owner, job)

    @ui_errors
    def train(owner_id, layers_, d_model_, heads_, seq_len_, batch_, steps_, lr_, warmup_, decay_, clip_, dropout_,
              seed_, request: gr.Request):
        values = settings_dict(layers_, d_model_, heads_, seq_len_, batch_, steps_, lr_, warmup_, decay_, clip_,
                               dropout_, seed_)
        yield from start(owner_id, request, "pretrain", values)

    @ui_errors
    def train_induction(owner_id, request: gr.Request):
        yield from start(owner_id, request, "induction")

    @ui_errors
    def train_pair(owner_id, row, seed_, request: gr.Request):
        yield from start(owner_id, request, "hyper", {"seed": seed_}, row)

    @ui_errors
    def train_data(owner_id, seed_, request: gr.Request):
        yield from start(owner_id, request, "data", {"seed": seed_})

    @ui_errors
    def attach(owner_id):
        owner = (owner_id or "").strip() or uuid.uuid4().hex
        job = pretrain.active_job(owner)
        job = job if job is not None and job.kind in pretrain.KINDS else None  # a /moe_compare job is not drawn here
        if job is None:  # show the session's latest run, if any (a reload after it finished)
            latest = [j for j in pretrain.jobs_for(owner) if j.kind in pretrain.KINDS][-1:]
            yield (owner, *view(owner, pretrain.snapshot(latest[0]) if latest else None))
            return
        for outputs in stream(owner, job):
            yield (owner, *outputs)

    @ui_errors
    def stop(owner_id, request: gr.Request):
        owner = owner_of(owner_id, request)
        job = pretrain.stop(owner)
        if job is not None and job.kind not in pretrain.KINDS:  # the scaling section's MoE job
            pretrain.wait(job, timeout_s=60)
            return view(owner, None)
        if job is None:
            gr.Info("No training run is going in this session.")
            return view(owner, None)
        return view(owner, pretrain.snapshot(pretrain.wait(job, timeout_s=60)))

    private = {"api_visibility": "private"}
    for control in setting_inputs:
        control.change(show_params, setting_inputs, params, trigger_mode="always_last", **private)
    events = [run_btn.click(train, [browser_id, *setting_inputs], view_outputs, **private),
              induction_btn.click(train_induction, [browser_id], view_outputs, **private),
              pair_btn.click(train_pair, [browser_id, row_pick, seed], view_outputs, **private),
              data_btn.click(train_data, [browser_id, seed], view_outputs, **private)]
    row_pick.change(lambda key: experiments.hyper_row(key).note, row_pick, row_note, **private)
    root = Context.root_block
    events.append(root.load(attach, [browser_id], [browser_id, *view_outputs], **private))
    root.load(show_params, setting_inputs, params, **private)
    root.load(stored_figures, None, [stored_plot, stored_md, stored_induction_plot, stored_induction_md], **private)
    stop_btn.click(stop, [browser_id], view_outputs, cancels=events, **private)

    @ui_errors
    def pretrain_api(settings: dict | None = None, chat_template: bool = False, request: gr.Request = None) -> dict:
        """JSON API: pretrain a tiny model for this session and block until it ends: ``{"run_id", "losses",
        "val_losses", "tokens_seen", "non_embedding_params", "samples": [{"step", "text"}], ...}``. Settings keys:
        steps, seed, layers, d_model, heads, seq_len, batch_size, lr, warmup, weight_decay, clip, dropout (all
        optional). ``chat_template`` must be false: the tiny model has no chat template."""
        if not isinstance(chat_template, bool):
            raise ValueError(f"chat_template must be true or false (got {chat_template!r})")
        if chat_template:
            raise ValueError("chat_template: the tiny pretraining model has no chat template; pass false.")
        settings = check_mapping(settings, "settings")
        result = pretrain.run(settings, owner=owner_of(None, request))
        if result.status == "failed":
            raise ValueError(result.message)
        return pretrain.to_api(result)

    gr.api(pretrain_api, api_name="pretrain")
    parts = build_scaling_section(ctx, browser_id, owner_of)
    return {**parts, "browser_id": browser_id, "result": result, "run": run_btn, "stop": stop_btn, "status": status,
            "main_plot": main_plot, "samples": samples, "runs_plot": runs_plot, "induction_plot": induction_plot,
            "pair_plot": pair_plot, "data_plot": data_plot, "row": row_pick, "hyper": hyper, "params": params,
            "layers": layers, "d_model": d_model, "heads": heads, "seq_len": seq_len, "batch_size": batch_size,
            "steps": steps, "lr": lr, "warmup": warmup, "weight_decay": weight_decay, "clip": clip,
            "dropout": dropout, "seed": seed, "hyper_badge": hyper_badge}


def pretrain_data_warm() -> None:
    """Encode the clean corpus in the background at build time, so the first run's first loss point comes fast."""
    try:
        from explorer.pretrain.data import corpus

        corpus("clean")
    except Exception:  # noqa: BLE001 - a warm-up only; a run reports its own errors
        pass
