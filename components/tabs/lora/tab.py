"""The LoRA tab: a live fine-tune run, base vs adapted side by side, runs compared, adapters out and in.

Runs live in the server-side registry of :mod:`explorer.lora` keyed by the session's owner id: a
random id kept in the browser (``gr.BrowserState``) so a page reload finds a run still training and
streams it again; API callers use their ``gr.Request.session_hash``.
"""
from __future__ import annotations

import os
import tempfile
import time
import uuid

import gradio as gr
import pandas as pd
from gradio.context import Context

from components.badge import INPUT_TABLE, badged_table, stamp
from components.errors import ui_errors
from components.tabs.lora.owner import owner_of
from components.tabs.lora import figures as figs
from explorer import lora
from explorer.core.validation import check_mapping, check_records, check_text
from explorer.lora.data import BUILTIN_DATASETS, builtin_dataset, pairs_from_messages, parse_jsonl, token_view, \
    tokenize_example, validate_dataset
from explorer.lora.infer import adapter_norms, compare, generate, merge_check, next_token_shift
from explorer.lora.adapter_io import load_adapter, save_adapter
from explorer.lora.model import ALL_LINEAR, MODULE_ALIASES, SCHEDULERS, LoraSettings, base_engine

CUSTOM = "Custom (edit the table or upload JSONL)"
POLL_S = 0.5
DEFAULTS = LoraSettings()
RUN_COLUMNS = ["run", "status", "data", "r", "alpha", "targets", "lr", "steps", "QLoRA", "final loss", "s/step"]
EXPORT_DIR = os.path.join(tempfile.gettempdir(), "llm-explorer-lora")


def rows_to_dataset(table) -> list[dict]:
    """The pairs table (DataFrame or list of rows) as ``[{"prompt", "response"}]``, blank rows dropped."""
    rows = table.values.tolist() if isinstance(table, pd.DataFrame) else list(table or [])
    return [{"prompt": str(p or ""), "response": str(r or "")} for p, r, *_ in rows if str(p or "").strip()
            or str(r or "").strip()]


def settings_dict(r, alpha, dropout, targets, rslora, lr, steps, batch, warmup, scheduler, clip, seed, qlora,
                  model) -> dict:
    """The settings controls as a dict keyed by PEFT/transformers names."""
    return {"r": r, "lora_alpha": alpha, "lora_dropout": dropout, "target_modules": list(targets or []),
            "use_rslora": rslora, "learning_rate": lr, "steps": steps, "batch_size": batch, "warmup_steps": warmup,
            "lr_scheduler_type": scheduler, "max_grad_norm": clip, "seed": seed, "qlora": qlora, "model": model}


def runs_table(snaps: list) -> pd.DataFrame:
    """One row per run of the session with its settings and outcome."""
    rows = []
    for s in snaps:
        st = s.settings
        rows.append([s.run_id, s.status, s.dataset_name, st["r"], st["lora_alpha"],
                     ",".join(t.replace("_proj", "") for t in st["target_modules"]), st["learning_rate"],
                     f"{s.steps_done}/{s.total_steps}", st["qlora"],
                     round(float(s.smoothed_loss[-1]), 4) if s.steps_done else None, round(s.seconds_per_step, 3)])
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def view(owner: str, snap) -> tuple:
    """Outputs of the run views: run id, status, loss plot, diagnostics, runs overlay, runs table, run picker,
    and the snapshot itself (the tab's downloadable result)."""
    snaps = [lora.snapshot(r) for r in lora.runs_for(owner)] if owner else []
    choices = [s.run_id for s in snaps if s.status != "failed"]
    value = snap.run_id if snap is not None and snap.run_id in choices else (choices[-1] if choices else None)
    prov = snap.provenance if snap is not None and snap.steps_done else None  # no badge before a step
    runs_prov = next((s.provenance for s in reversed(snaps) if s.steps_done), None)
    return (snap.run_id if snap else None, figs.status_html(snap), stamp(figs.loss_figure(snap), prov),
            stamp(figs.diagnostics_figure(snap), prov), stamp(figs.runs_figure(snaps), runs_prov), runs_table(snaps),
            gr.update(choices=choices, value=value), snap, runs_prov)


def stream(owner: str, run):
    """Yield :func:`view` outputs each time the run completes a step, until it ends."""
    last = -1
    while True:
        snap = lora.snapshot(run)
        if snap.steps_done != last or snap.status != lora.RUNNING:
            last = snap.steps_done
            yield view(owner, snap)
        if snap.status != lora.RUNNING:
            if snap.status == "failed":
                gr.Warning(snap.message)
            return
        time.sleep(POLL_S)


def tokens_of(dataset: list[dict], model: str | None) -> list:
    """Highlighted tokens of the first example (which tokens carry the loss)."""
    if not dataset:
        return []
    engine = base_engine(LoraSettings(model=model or DEFAULTS.model))
    messages = validate_dataset(dataset[:1], max_bytes=None)[0]
    return token_view(engine.tokenizer, tokenize_example(engine.tokenizer, messages, max_tokens=lora.MAX_SEQ_TOKENS))


def build_lora_tab(ctx) -> dict:
    """Build the Fine-tuning tab: SFT with LoRA, and DPO on preference pairs; returns its components by name."""
    from components.tabs.lora.dpo_tab import build_dpo_section

    with gr.Tabs():
        with gr.Tab("SFT (LoRA)", id="sft"):
            parts = build_sft_section(ctx)
        with gr.Tab("DPO (preferences)", id="dpo", elem_id="dpo-subtab"):
            parts.update(build_dpo_section(ctx, parts["browser_id"]))
    return parts


def build_sft_section(ctx) -> dict:
    """Build the SFT (LoRA) section; returns its components by name."""
    limits = ctx.limits
    # rendered with the page, not the tab: inside the tab it would be read only when the tab is first opened,
    # after the page's load handler had already replaced the stored id with a new one (a reload lost the run)
    browser_id = gr.BrowserState("", storage_key="llm-explorer-lora-owner", render=False)
    ctx.page_level.append(browser_id)
    run_id = gr.State(None)
    result = gr.State(None)  # the RunSnapshot shown, for "Download result (JSON)"
    gr.Markdown("LoRA freezes the base weights W and trains a low-rank update W + (α/r)·BA on chosen layers. "
                "Your adapters are private to this browser session; the shared model never changes.")
    with gr.Row():
        with gr.Column(scale=1):
            dataset_name = gr.Radio(list(BUILTIN_DATASETS) + [CUSTOM], value=list(BUILTIN_DATASETS)[0], label="Data")
            first = builtin_dataset(list(BUILTIN_DATASETS)[0])
            table = gr.Dataframe(pd.DataFrame(first, columns=["prompt", "response"]), headers=["prompt", "response"],
                                 column_count=(2, "fixed"), interactive=True, wrap=True, max_height=260,
                                 label="Pairs (editable)", elem_classes=[INPUT_TABLE])
            jsonl = gr.File(label="Upload JSONL ({'prompt','response'} or chat {'messages'} per line; "
                                  "a chat becomes one row per assistant turn)",
                            file_types=[".jsonl", ".json"], height=90)
            trained_tokens = gr.HighlightedText(label="Chat template of the first example: highlighted tokens carry "
                                                      "the loss", combine_adjacent=False, show_legend=True)
        with gr.Column(scale=1):
            with gr.Row():
                r = gr.Slider(1, 128, DEFAULTS.r, step=1, label="rank r")
                alpha = gr.Number(DEFAULTS.lora_alpha, label="lora_alpha (α)")
                dropout = gr.Slider(0, 0.5, DEFAULTS.lora_dropout, step=0.05, label="lora_dropout")
            targets = gr.CheckboxGroup(list(MODULE_ALIASES) + [ALL_LINEAR], value=[ALL_LINEAR], label="target modules")
            with gr.Row():
                rslora = gr.Checkbox(DEFAULTS.use_rslora, label="rsLoRA (α/√r)")
                qlora = gr.Checkbox(DEFAULTS.qlora, label="QLoRA (NF4 base, bitsandbytes)")
            with gr.Row():
                lr = gr.Number(DEFAULTS.learning_rate, label="learning rate")
                steps = gr.Slider(1, limits.max_train_steps, min(DEFAULTS.steps, limits.max_train_steps), step=1,
                                  label="steps")
                batch = gr.Slider(1, 16, DEFAULTS.batch_size, step=1, label="batch size")
            with gr.Row():
                warmup = gr.Number(DEFAULTS.warmup_steps, precision=0, label="warm-up steps")
                scheduler = gr.Dropdown(list(SCHEDULERS), value=DEFAULTS.lr_scheduler_type, label="scheduler")
                clip = gr.Number(DEFAULTS.max_grad_norm, label="gradient clipping (0 = off)")
                seed = gr.Number(DEFAULTS.seed, precision=0, label="seed")
            params = gr.Markdown(elem_id="lora-params")
            with gr.Row():
                run_btn = gr.Button("Train", variant="primary", elem_id="lora-run")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="lora-stop")
    status = gr.HTML(figs.status_html(None), elem_id="lora-status")
    main_plot = gr.Plot(figs.loss_figure(None), elem_id="lora-main-plot", label="Loss")
    diag_plot = gr.Plot(label="Gradient norm and throughput")
    with gr.Accordion("Runs compared", open=False):
        runs_plot = gr.Plot(label="Loss curves of this session's runs")
        runs_badge, runs = badged_table(headers=RUN_COLUMNS, interactive=False, label="Runs")
    run_pick = gr.Dropdown([], label="Run used below", elem_id="lora-run-pick")
    with gr.Accordion("Before / after", open=True):
        with gr.Row():
            ask_btn = gr.Button("Ask both models the prompt above")
            compare_btn = gr.Button("Compare on trained and unrelated prompts")
        with gr.Row():
            base_out = gr.Textbox(label="base", lines=3)
            adapted_out = gr.Textbox(label="adapted", lines=3)
        compare_badge, compare_table = badged_table(headers=["prompt", "kind", "base", "adapted"], wrap=True,
                                                    interactive=False)
        with gr.Row():
            shift_prompt = gr.Textbox("What is the capital of Veloria?", label="Prompt for the next-token shift",
                                      scale=3)
            shift_btn = gr.Button("Next-token shift", scale=1)
        shift_plot = gr.Plot(label="Next-token distribution")
        norms_btn = gr.Button("‖BA‖ heatmap and merge check")
        merge_md = gr.Markdown()
        norms_plot = gr.Plot(label="‖BA‖ per layer and module")
    with gr.Accordion("Adapters out and in", open=False):
        with gr.Row():
            export_btn = gr.Button("Export adapter (PEFT format)")
            export_file = gr.File(label="adapter_model.safetensors + adapter_config.json (zip)", interactive=False)
        with gr.Row():
            upload = gr.File(label="Upload an adapter (.safetensors, or the .zip exported here)",
                             file_types=[".safetensors", ".zip"])
            upload_btn = gr.Button("Load adapter")
        upload_md = gr.Markdown()

    setting_inputs = [r, alpha, dropout, targets, rslora, lr, steps, batch, warmup, scheduler, clip, seed, qlora,
                      ctx.model]
    view_outputs = [run_id, status, main_plot, diag_plot, runs_plot, runs, run_pick, result, runs_badge]

    @ui_errors
    def pick_dataset(name, model):
        if name == CUSTOM:
            return gr.update(), gr.update()
        data = builtin_dataset(name)
        try:
            highlighted = tokens_of(data, model)
        except ValueError:  # e.g. an encoder picked at the top: the table still shows, training explains why not
            highlighted = None
        return pd.DataFrame(data, columns=["prompt", "response"]), highlighted

    @ui_errors
    def read_jsonl(path, model):
        if not path:
            return gr.update(), gr.update(), gr.update()
        if os.path.getsize(path) > limits.max_dataset_bytes:
            raise ValueError(f"The file is {os.path.getsize(path):,} bytes; the cap is {limits.max_dataset_bytes:,}.")
        with open(path, encoding="utf-8", errors="replace") as handle:
            examples = parse_jsonl(handle.read(), limits.max_dataset_bytes)
        data = [pair for messages in validate_dataset(examples, None) for pair in pairs_from_messages(messages)]
        return pd.DataFrame(data, columns=["prompt", "response"]), CUSTOM, tokens_of(data, model)

    @ui_errors
    def show_params(*values):
        try:  # runs whenever the shared model picker changes: explain here, never pop an error in another tab
            parsed, trainable, total, notices = lora.preview(settings_dict(*values))
        except ValueError as exc:
            return f"⚠ {exc}"
        note = f" ({'; '.join(notices)})" if notices else ""
        return (f"**{trainable:,}** trainable of {total:,} parameters (**{100 * trainable / total:.3f} %**), "
                f"scaling α/{'√r' if parsed.use_rslora else 'r'} = {parsed.scaling:.3g}{note}")

    @ui_errors
    def train(owner_id, rows, name, r_, alpha_, dropout_, targets_, rslora_, lr_, steps_, batch_, warmup_, scheduler_,
              clip_, seed_, qlora_, model_, request: gr.Request):
        owner = owner_of(owner_id, request)
        values = settings_dict(r_, alpha_, dropout_, targets_, rslora_, lr_, steps_, batch_, warmup_, scheduler_,
                               clip_, seed_, qlora_, model_)
        run = lora.start_run(owner, rows_to_dataset(rows), values, name if name != CUSTOM else "custom")
        for notice in run.notices:
            gr.Warning(notice)
        yield from stream(owner, run)

    @ui_errors
    def attach(owner_id):
        owner = (owner_id or "").strip() or uuid.uuid4().hex
        run = lora.active_run(owner)
        latest = lora.runs_for(owner)[-1:] if run is None else [run]
        if run is None:
            yield (owner, *view(owner, lora.snapshot(latest[0]) if latest else None))
            return
        for outputs in stream(owner, run):
            yield (owner, *outputs)

    @ui_errors
    def stop(owner_id, request: gr.Request):
        owner = owner_of(owner_id, request)
        run = lora.stop(owner)
        if run is None:
            gr.Info("No run is going in this session.")
            runs_now = lora.runs_for(owner)
            return view(owner, lora.snapshot(runs_now[-1]) if runs_now else None)
        return view(owner, lora.wait(run, timeout_s=120))

    def picked(owner_id, chosen, request):
        return lora.get_run(chosen, owner_of(owner_id, request))

    @ui_errors
    def ask(owner_id, chosen, prompt, request: gr.Request):
        return generate(picked(owner_id, chosen, request), prompt)

    @ui_errors
    def compare_all(owner_id, chosen, request: gr.Request):
        result = compare(picked(owner_id, chosen, request))
        return pd.DataFrame(result.rows, columns=["prompt", "kind", "base", "adapted"]), result.provenance

    @ui_errors
    def shift(owner_id, chosen, prompt, request: gr.Request):
        result = next_token_shift(picked(owner_id, chosen, request), prompt)
        return stamp(figs.shift_figure(result), result.provenance)

    @ui_errors
    def norms(owner_id, chosen, prompt, request: gr.Request):
        run = picked(owner_id, chosen, request)
        delta = merge_check(run, prompt)
        why = "NF4 re-quantised on merge" if run.settings.qlora else f"{run.engine.dtype}".replace("torch.", "") + \
            " rounding only"
        result = adapter_norms(run)
        return stamp(figs.norms_figure(result), result.provenance), (
            f"Merged W + (α/r)·BA vs unmerged adapter on this prompt: max |Δlogit| = **{delta:.2e}** ({why}).")

    @ui_errors
    def export(owner_id, chosen, request: gr.Request):
        return save_adapter(picked(owner_id, chosen, request), os.path.join(EXPORT_DIR, uuid.uuid4().hex[:8]))

    @ui_errors
    def load(owner_id, path, model, request: gr.Request):
        if not path:
            raise ValueError("Choose an adapter file first.")
        owner = owner_of(owner_id, request)
        run = load_adapter(owner, path, model)
        return (*view(owner, lora.snapshot(run)), run.message)

    private = {"api_visibility": "private"}
    dataset_name.change(pick_dataset, [dataset_name, ctx.model], [table, trained_tokens], **private)
    jsonl.upload(read_jsonl, [jsonl, ctx.model], [table, dataset_name, trained_tokens], **private)
    for control in (r, targets, qlora, ctx.model):
        control.change(show_params, setting_inputs, params, trigger_mode="always_last", **private)
    train_event = run_btn.click(train, [browser_id, table, dataset_name, *setting_inputs], view_outputs, **private)
    root = Context.root_block
    attach_event = root.load(attach, [browser_id], [browser_id, *view_outputs], **private)
    root.load(show_params, setting_inputs, params, **private)
    root.load(pick_dataset, [dataset_name, ctx.model], [table, trained_tokens], **private)
    stop_btn.click(stop, [browser_id], view_outputs, cancels=[train_event, attach_event], **private)
    ask_btn.click(ask, [browser_id, run_pick, ctx.prompt], [base_out, adapted_out], **private)
    compare_btn.click(compare_all, [browser_id, run_pick], [compare_table, compare_badge], **private)
    shift_btn.click(shift, [browser_id, run_pick, shift_prompt], shift_plot, **private)
    norms_btn.click(norms, [browser_id, run_pick, shift_prompt], [norms_plot, merge_md], **private)
    export_btn.click(export, [browser_id, run_pick], export_file, **private)
    upload_btn.click(load, [browser_id, upload, ctx.model], [*view_outputs, upload_md], **private)

    @ui_errors
    def lora_train(dataset: list[dict], settings: dict | None = None, request: gr.Request = None) -> dict:
        """JSON API: train an adapter for this session; ``{"run_id", "trainable_params", "losses",
        "seconds_per_step"}``. Settings keys as in PEFT/transformers; missing keys take the defaults."""
        dataset, settings = check_records(dataset, "dataset"), check_mapping(settings, "settings")
        snap = lora.run(dataset, settings, owner=owner_of(None, request), dataset_name="api")
        if snap.status == "failed":
            raise ValueError(snap.message)
        data = lora.to_api(snap)  # /lora_train keeps its four documented fields
        return {key: data[key] for key in ("run_id", "trainable_params", "losses", "seconds_per_step")}

    @ui_errors
    def lora_generate(run_id: str, prompt: str, request: gr.Request = None) -> dict:
        """JSON API: greedy answers of the base model and of this session's adapter ``run_id``: ``{"base", "adapted"}``."""
        run_id, prompt = check_text(run_id, "run_id"), check_text(prompt, "prompt")
        base, adapted = generate(lora.get_run(run_id, owner_of(None, request)), prompt)
        return {"base": base, "adapted": adapted}

    gr.api(lora_train, api_name="lora_train")
    gr.api(lora_generate, api_name="lora_generate")
    return {"browser_id": browser_id, "run_id": run_id, "dataset_name": dataset_name, "table": table, "jsonl": jsonl,
            "trained_tokens": trained_tokens, "params": params, "run": run_btn, "stop": stop_btn, "status": status,
            "main_plot": main_plot, "diag_plot": diag_plot, "runs_plot": runs_plot, "runs": runs, "run_pick": run_pick,
            "compare_table": compare_table, "shift_plot": shift_plot, "norms_plot": norms_plot,
            "export_file": export_file, "upload": upload, "result": result,
            # settings, by their PEFT/transformers names (used by shareable links and scenes)
            "r": r, "lora_alpha": alpha, "lora_dropout": dropout, "target_modules": targets, "use_rslora": rslora,
            "qlora": qlora, "learning_rate": lr, "steps": steps, "batch_size": batch}
