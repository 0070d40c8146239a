"""The DPO section of the Fine-tuning tab: preference pairs, a live DPO run, before/after answers, RLHF vs DPO.

Runs share the LoRA registry (:mod:`explorer.lora.dpo`), so the owner id, Stop, a reload re-attaching, the run
picker, ``/lora_generate`` and the PEFT download work for them as for SFT runs.
"""
from __future__ import annotations

import os
import time
import uuid

import gradio as gr
import pandas as pd
from gradio.context import Context

from components.badge import INPUT_TABLE, badged_table, stamp
from components.errors import ui_errors
from components.tabs.lora import dpo_figures as figs
from components.tabs.lora.owner import owner_of
from explorer import lora
from explorer.core.provenance import measured
from explorer.core.validation import check_mapping, check_records
from explorer.lora import dpo
from explorer.lora.adapter_io import save_adapter
from explorer.lora.dpo_data import BUILTIN_PREFERENCES, DEFAULT_SET, FIELDS, builtin_preferences, \
    parse_preference_jsonl

CUSTOM = "Custom (edit the table or upload JSONL)"
BASE_REF = "base (adapter off)"
POLL_S = 0.5
DEFAULTS = dpo.DpoSettings()
RUN_COLUMNS = ["run", "status", "data", "β", "lr", "r", "reference", "steps", "final margin", "train accuracy",
               "s/step"]
EXPORT_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "llm-explorer-dpo")

EXPLAINER = """
**RLHF, and what DPO replaces.** Classic alignment after SFT (supervised fine-tuning) has two more stages:
people compare pairs of answers, a separate *reward model* is trained to predict their choice, and then the
assistant is optimised against that reward with reinforcement learning (PPO), sampling answers, scoring them and
updating, while a KL penalty keeps it close to the SFT model so it cannot game the reward model with gibberish.

**DPO** (Rafailov et al. 2023) shows that the policy maximising that KL-penalised reward can be written in closed
form, so the reward model can be folded into the policy itself: the *implicit reward* of an answer is
r = β·(log π(answer) − log π_ref(answer)). Training becomes a classification loss on the preference pairs,
−log σ(r_chosen − r_rejected): no reward model, no sampling, no RL loop, just two forward passes per pair.
**β** plays the role of the KL penalty: large β keeps the model near the reference, small β lets it move.
The plot shows the margin r_chosen − r_rejected growing; often *both* log-probabilities fall, the rejected one
faster. KL on held-out prompts shows how far the model has drifted where it was not trained.
"""


def pairs_of(table) -> list[dict]:
    """The pairs table (DataFrame or rows) as ``[{"prompt", "chosen", "rejected"}]``, wholly blank rows dropped."""
    rows = table.values.tolist() if isinstance(table, pd.DataFrame) else list(table or [])
    return [{"prompt": str(p or ""), "chosen": str(c or ""), "rejected": str(r or "")} for p, c, r, *_ in rows
            if any(str(v or "").strip() for v in (p, c, r))]


def dpo_settings_dict(steps, lr, beta, rank, alpha, batch, seed, start_from, model) -> dict:
    """The DPO controls as ``/dpo_train`` settings."""
    return {"steps": steps, "learning_rate": lr, "beta": beta, "rank": rank, "alpha": alpha, "batch_size": batch,
            "seed": seed, "start_from": None if start_from in (None, "", BASE_REF) else start_from, "model": model}


def runs_table(snaps: list) -> pd.DataFrame:
    """One row per DPO run of the session."""
    rows = []
    for s in snaps:
        st = s.dpo_settings
        rows.append([s.run_id, s.status, s.base.dataset_name.removeprefix("DPO: "), st["beta"], st["learning_rate"],
                     st["rank"], st.get("start_from") or "base", f"{s.steps_done}/{st['steps']}",
                     round(float(s.margins[-1]), 4) if s.steps_done else None,
                     None if s.train_accuracy != s.train_accuracy else round(s.train_accuracy, 3),
                     round(s.base.seconds_per_step, 3)])
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def sft_choices(owner: str) -> list[str]:
    """``base (adapter off)`` and the session's finished SFT runs that still hold an adapter."""
    return [BASE_REF] + [r.run_id for r in lora.runs_for(owner) if not isinstance(r, dpo.DpoRun)
                         and r.status in ("done", "stopped", "uploaded") and r.peft_model is not None]


def view(owner: str, snap) -> tuple:
    """Outputs of the DPO views: run id, status, live figure, runs overlay, runs table, reference choices."""
    snaps = [dpo.snapshot(r) for r in dpo.runs_of(owner)] if owner else []
    latest = snaps[-1].provenance if snaps else None
    return (snap.run_id if snap is not None else None, figs.dpo_status_html(snap),
            stamp(figs.dpo_figure(snap), snap.provenance if snap is not None else None),
            stamp(figs.dpo_runs_figure(snaps), latest), runs_table(snaps), latest,
            gr.update(choices=sft_choices(owner)))


def stream(owner: str, run):
    """Yield :func:`view` outputs each time the run completes a step (or changes phase), until it ends."""
    last = None
    while True:
        snap = dpo.snapshot(run)
        key = (snap.steps_done, snap.phase, snap.kl.size)
        if key != last or snap.status != lora.RUNNING:
            last = key
            yield view(owner, snap)
        if snap.status != lora.RUNNING:
            if snap.status == "failed":
                gr.Warning(snap.base.message)
            return
        time.sleep(POLL_S)


def build_dpo_section(ctx, browser_id) -> dict:
    """Build the DPO section (inside the Fine-tuning tab); ``browser_id`` is the tab's owner id state."""
    limits = ctx.limits
    run_id = gr.State(None)
    gr.Markdown("DPO tunes a LoRA adapter on *preference pairs*: the same prompt with a chosen and a rejected "
                "answer. The shared model never changes; the reference is the base (adapter off) or one of your "
                "SFT runs.")
    with gr.Row():
        with gr.Column(scale=1):
            data_name = gr.Radio(list(BUILTIN_PREFERENCES) + [CUSTOM], value=DEFAULT_SET, label="Preference pairs")
            table = gr.Dataframe(pd.DataFrame(builtin_preferences(DEFAULT_SET), columns=list(FIELDS)),
                                 headers=list(FIELDS), column_count=(3, "fixed"), interactive=True, wrap=True,
                                 max_height=260, label="Pairs (editable)", elem_classes=[INPUT_TABLE])
            upload = gr.File(label="Upload JSONL: one {'prompt', 'chosen', 'rejected'} per line",
                             file_types=[".jsonl", ".json"], height=90)
        with gr.Column(scale=1):
            with gr.Row():
                steps = gr.Slider(1, limits.max_train_steps, min(DEFAULTS.steps, limits.max_train_steps), step=1,
                                  label="steps", elem_id="dpo-steps")
                batch = gr.Slider(1, 16, DEFAULTS.batch_size, step=1, label="pairs per step")
            with gr.Row():
                beta = gr.Number(DEFAULTS.beta, label="β (KL strength, > 0)")
                lr = gr.Number(DEFAULTS.learning_rate, label="learning rate")
                seed = gr.Number(DEFAULTS.seed, precision=0, label="seed")
            with gr.Row():
                rank = gr.Slider(1, 64, DEFAULTS.rank, step=1, label="rank r")
                alpha = gr.Number(DEFAULTS.alpha, label="lora_alpha (α)")
            start_from = gr.Dropdown([BASE_REF], value=BASE_REF, label="start from / reference",
                                     info="an SFT run of this session: DPO starts from its adapter and uses it as "
                                          "the reference")
            with gr.Row():
                run_btn = gr.Button("Train DPO", variant="primary", elem_id="dpo-run")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="dpo-stop")
    status = gr.HTML(figs.dpo_status_html(None), elem_id="dpo-status")
    plot = gr.Plot(figs.dpo_figure(None), elem_id="dpo-margin-plot", label="Margin, rewards, log-probs, KL")
    with gr.Accordion("DPO runs compared", open=False):
        runs_plot = gr.Plot(label="Margins of this session's DPO runs")
        runs_badge, runs = badged_table(headers=RUN_COLUMNS, interactive=False, label="DPO runs")
    with gr.Accordion("Before / after: base, SFT and DPO on held-out prompts", open=True):
        with gr.Row():
            compare_sft = gr.Dropdown([BASE_REF], value=BASE_REF, label="SFT run for the middle column",
                                      info="used when the DPO run did not start from an SFT run")
            answers_btn = gr.Button("Answer the held-out prompts")
            export_btn = gr.Button("Download the DPO adapter (PEFT format)")
        answers_badge, answers = badged_table(headers=["prompt", "base", "SFT adapter", "DPO adapter"], wrap=True,
                                              interactive=False)
        export_file = gr.File(label="adapter_model.safetensors + adapter_config.json (zip)", interactive=False)
    with gr.Accordion("RLHF vs DPO", open=False):
        gr.Markdown(EXPLAINER)

    inputs = [steps, lr, beta, rank, alpha, batch, seed, start_from, ctx.model]
    outputs = [run_id, status, plot, runs_plot, runs, runs_badge, start_from]
    private = {"api_visibility": "private"}

    @ui_errors
    def pick(name):
        if name == CUSTOM:
            return gr.update()
        return pd.DataFrame(builtin_preferences(name), columns=list(FIELDS))

    @ui_errors
    def read(path):
        if not path:
            return gr.update(), gr.update()
        if os.path.getsize(path) > limits.max_dataset_bytes:
            raise ValueError(f"The file is {os.path.getsize(path):,} bytes; the cap is {limits.max_dataset_bytes:,}.")
        with open(path, encoding="utf-8", errors="replace") as handle:
            pairs = parse_preference_jsonl(handle.read(), limits.max_dataset_bytes)
        return pd.DataFrame(pairs, columns=list(FIELDS)), CUSTOM

    @ui_errors
    def train_dpo(owner_id, rows, name, steps_, lr_, beta_, rank_, alpha_, batch_, seed_, start_, model_,
                  request: gr.Request):
        owner = owner_of(owner_id, request)  # gradio injects the request only into a named parameter, not *args
        values = dpo_settings_dict(steps_, lr_, beta_, rank_, alpha_, batch_, seed_, start_, model_)
        run = dpo.start_dpo(owner, pairs_of(rows), values, name if name != CUSTOM else "custom")
        for notice in run.notices:
            gr.Warning(notice)
        yield from stream(owner, run)

    @ui_errors
    def attach(owner_id):
        owner = (owner_id or "").strip()
        run = dpo.active_dpo(owner) if owner else None
        if run is None:
            latest = dpo.runs_of(owner)[-1:] if owner else []
            yield view(owner, dpo.snapshot(latest[0]) if latest else None)
            return
        yield from stream(owner, run)

    @ui_errors
    def stop(owner_id, request: gr.Request):
        owner = owner_of(owner_id, request)
        run = dpo.active_dpo(owner)
        if run is None:
            gr.Info("No DPO run is going in this session.")
            mine = dpo.runs_of(owner)
            return view(owner, dpo.snapshot(mine[-1]) if mine else None)
        run.stop_event.set()
        lora.wait(run, timeout_s=120)
        return view(owner, dpo.snapshot(run))

    def picked(owner_id, chosen, request) -> dpo.DpoRun:
        run = lora.get_run(chosen, owner_of(owner_id, request))
        if not isinstance(run, dpo.DpoRun):
            raise ValueError(f"Run {chosen} is an SFT run; train a DPO run first.")
        return run

    @ui_errors
    def held_out(owner_id, chosen, sft_id, request: gr.Request):
        run = picked(owner_id, chosen, request)
        owner = owner_of(owner_id, request)
        sft = lora.get_run(sft_id, owner) if sft_id not in (None, "", BASE_REF) else None
        rows = dpo.answers(run, sft=sft)
        table = pd.DataFrame([(p, b, s if s is not None else "(no SFT run picked)", d) for p, b, s, d in rows],
                             columns=["prompt", "base", "SFT adapter", "DPO adapter"])
        return table, measured(f"greedy answers of the base, SFT and DPO adapters on {len(rows)} held-out prompts",
                               run.engine.name)

    @ui_errors
    def export(owner_id, chosen, request: gr.Request):
        return save_adapter(picked(owner_id, chosen, request), os.path.join(EXPORT_DIR, uuid.uuid4().hex[:8]))

    @ui_errors
    def refresh_choices(owner_id, request: gr.Request):
        choices = sft_choices(owner_of(owner_id, request))
        return gr.update(choices=choices), gr.update(choices=choices)

    data_name.change(pick, [data_name], [table], **private)
    upload.upload(read, [upload], [table, data_name], **private)
    train_event = run_btn.click(train_dpo, [browser_id, table, data_name, *inputs], outputs, **private)
    attach_event = Context.root_block.load(attach, [browser_id], outputs, **private)
    stop_btn.click(stop, [browser_id], outputs, cancels=[train_event, attach_event], **private)
    for dropdown in (start_from, compare_sft):
        dropdown.focus(refresh_choices, [browser_id], [start_from, compare_sft], **private)
    answers_btn.click(held_out, [browser_id, run_id, compare_sft], [answers, answers_badge], **private)
    export_btn.click(export, [browser_id, run_id], export_file, **private)

    @ui_errors
    def dpo_train(dataset: list[dict], settings: dict | None = None, request: gr.Request = None) -> dict:
        """JSON API: DPO on preference pairs for this session, returning when the run ends.

        ``dataset``: ``[{"prompt", "chosen", "rejected"}]``; ``settings``: ``{"steps", "learning_rate", "beta",
        "rank", "alpha", "batch_size", "seed", "start_from": run_id | null}`` (missing keys take the defaults).
        Returns ``{"run_id", "losses", "margins", "reward_accuracy"`` (per step), ``"kl"`` (per evaluation) and the
        further fields of :func:`explorer.lora.dpo.to_api`}. ``/lora_generate`` answers with the DPO adapter."""
        dataset, settings = check_records(dataset, "dataset"), check_mapping(settings, "settings")
        snap = dpo.run(dataset, settings, owner=owner_of(None, request), dataset_name="api")
        if snap.status == "failed":
            raise ValueError(snap.base.message)
        return dpo.to_api(snap)

    gr.api(dpo_train, api_name="dpo_train")
    return {"dpo_run_id": run_id, "dpo_table": table, "dpo_data": data_name, "dpo_upload": upload,
            "dpo_run": run_btn, "dpo_stop": stop_btn, "dpo_status": status, "dpo_plot": plot,
            "dpo_runs_plot": runs_plot, "dpo_runs": runs, "dpo_answers": answers, "dpo_export": export_file,
            "dpo_start_from": start_from, "beta": beta}
