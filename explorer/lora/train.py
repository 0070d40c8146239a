"""The LoRA lens: live fine-tune runs kept in a server-side registry, one owner (session) each.

A run trains a PEFT LoRA adapter (Hu et al. 2021; QLoRA, Dettmers et al. 2023, when asked) on a
*shadow* of the shared model that shares its frozen weights (see :mod:`explorer.lora.model`), in a
background thread, taking the model's lock one optimiser step at a time so other users' requests
interleave. The UI polls :func:`snapshot` to stream per-step figures; a page reload finds the run
again through :func:`active_run`, because runs live here, not in the page.

Adapters belong to their owner: :func:`get_run` refuses another owner's run id, and an adapter is
enabled only inside :func:`adapter_active` or a pass given :func:`adapter_patch`, under the lock, and disabled
again in ``finally`` (:class:`explorer.core.patches.Adapter`). The registry, its stop checks and its worker
thread are :mod:`explorer.core.runs` (shared with DPO and any later training kind).

Entry points: :func:`start_run` here; ``iter_run`` / ``run`` / ``to_api`` in :mod:`explorer.lora.lens`.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.core.config import get_limits
from explorer.core.provenance import Provenance, measured
from explorer.core.runs import FINISHED, RUNNING, new_run_id  # noqa: F401 (re-exported)
from explorer.lora import chunks
from explorer.lora.data import first_prompt, token_view, tokenize_dataset, validate_dataset
from explorer.lora.registry import (MAX_RUNS_PER_OWNER, MAX_RUNS_TOTAL, REGISTRY, LoraRun,  # noqa: F401 (re-exported)
                                    StepRecord, adapter_active, adapter_patch, adapter_patches, discard, stopped)
from explorer.lora.steps import EXPLODE_FACTOR, iter_steps, optimiser, steps_run  # noqa: F401 (re-exported)
from explorer.lora.model import (LoraSettings, base_engine, build_peft_model, count_parameters,
                                 settings_from_dict)

log = logging.getLogger("llm_explorer")

MAX_SEQ_TOKENS = 512
EMA_BETA = 0.8


@dataclass(frozen=True)
class RunSnapshot:
    """What the UI and API see of a run at one moment.

    Arrays have shape ``(completed_steps,)``: loss and smoothed_loss (nats per trained token;
    smoothed = bias-corrected EMA with β = 0.8), learning_rate, grad_norm (L2, before clipping),
    tokens_per_s (trained + prompt tokens per second of step time), elapsed_s (seconds since start).
    """

    run_id: str
    status: str
    message: str
    settings: dict
    dataset_name: str
    total_steps: int
    trainable_params: int
    total_params: int
    loss: np.ndarray
    smoothed_loss: np.ndarray
    learning_rate: np.ndarray
    grad_norm: np.ndarray
    tokens_per_s: np.ndarray
    elapsed_s: np.ndarray
    remaining_s: float
    seconds_per_step: float
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("PEFT LoRA training"))

    @property
    def steps_done(self) -> int:
        """Completed optimiser steps."""
        return int(self.loss.size)

    @property
    def trainable_percent(self) -> float:
        """Trainable parameters as a percentage of all parameters."""
        return 100.0 * self.trainable_params / max(1, self.total_params)

    def to_api(self) -> dict:
        """The ``/lora_train`` JSON: ``{"run_id", "status", "message", "trainable_params", "total_params", "losses"
        (nats per trained token, one per step), "seconds_per_step", "settings", "notices", "provenance"}``."""
        return {"run_id": self.run_id, "status": self.status, "message": self.message,
                "trainable_params": self.trainable_params, "total_params": self.total_params,
                "losses": self.loss.tolist(), "seconds_per_step": self.seconds_per_step, "settings": self.settings,
                "notices": list(self.notices), "provenance": self.provenance.to_api()}


def smooth(values: np.ndarray, beta: float = EMA_BETA) -> np.ndarray:
    """Bias-corrected exponential moving average (Adam-style debiasing, Kingma & Ba 2015)."""
    out, ema = np.empty(len(values)), 0.0
    for i, v in enumerate(values):
        ema = beta * ema + (1 - beta) * float(v)
        out[i] = ema / (1 - beta ** (i + 1))
    return out


def snapshot(run: LoraRun) -> RunSnapshot:
    """A frozen copy of ``run``'s state and per-step figures. Reading it counts as a page polling the run
    (a run nobody polls for ``Limits.lora_idle_seconds`` stops)."""
    REGISTRY.touch(run)
    records = list(run.records)
    loss = np.array([r.loss for r in records], dtype=float)
    step_s = np.array([r.step_s for r in records], dtype=float)
    wall = records[-1].elapsed_s / len(records) if records else 0.0
    left = max(0, run.settings.steps - len(records)) if run.status == RUNNING else 0
    return RunSnapshot(
        run_id=run.run_id, status=run.status, message=run.message, settings=run.settings.as_dict(),
        dataset_name=run.dataset_name, total_steps=run.settings.steps, trainable_params=run.trainable_params,
        total_params=run.total_params, loss=loss, smoothed_loss=smooth(loss),
        learning_rate=np.array([r.learning_rate for r in records], dtype=float),
        grad_norm=np.array([r.grad_norm for r in records], dtype=float),
        tokens_per_s=np.array([r.tokens / max(r.step_s, 1e-9) for r in records], dtype=float),
        elapsed_s=np.array([r.elapsed_s for r in records], dtype=float),
        remaining_s=float(wall * left), seconds_per_step=float(step_s.mean()) if records else 0.0,
        notices=tuple(run.notices),
        provenance=measured(f"PEFT LoRA training on {run.dataset_name}: {len(records)} of {run.settings.steps} "
                            f"optimiser steps{' (QLoRA, NF4 base)' if run.settings.qlora else ''}",
                            model=run.settings.model))


def _work(run: LoraRun, tokenized: list) -> Iterator[StepRecord | None]:
    """The run's worker (:meth:`explorer.core.runs.RunRegistry.start`): one :class:`StepRecord` per step."""
    params, optimizer, scheduler = optimiser(run)
    start = time.perf_counter()
    plan = chunks.plan_for(run.settings.steps)  # on ZeroGPU: GPU calls of a few steps each, driven from here
    if plan is not None:
        yield None  # the registry checks Stop once before the first chunk; chunks check it between their steps
        if chunks.run_chunked(run, tokenized, params, optimizer, scheduler, plan, start):
            run.status, run.message = "done", run.done_message()
        return
    yield from iter_steps(run, tokenized, params, optimizer, scheduler, 0, run.settings.steps, start, {})


def preview(settings: dict | None, engine=None) -> tuple[LoraSettings, int, int, list[str]]:
    """Settings and ``(trainable, all)`` parameter counts before training (no adapter is built).

    ``engine`` overrides the base engine named by the settings (tests pass a tiny model).

    Raises:
        ValueError: invalid settings (see :func:`explorer.lora.model.settings_from_dict`).
    """
    parsed, notices = settings_from_dict(settings, get_limits().max_train_steps)
    engine = engine or base_engine(parsed)
    trainable, total = count_parameters(engine.model, parsed)
    return parsed, trainable, total, notices


def adapter_name_for(owner: str, run_id: str) -> str:
    """PEFT adapter name of a run: ``<owner>-<run_id>`` with only letters, digits and ``_`` from the owner."""
    return re.sub(r"[^A-Za-z0-9_]", "_", owner[:16]) + "-" + run_id


def register(run: LoraRun) -> None:
    """Add a finished run (e.g. an uploaded adapter) to the registry, evicting the owner's oldest."""
    REGISTRY.register(run)


def start_run(owner: str, dataset: list, settings: dict | None, dataset_name: str = "custom",
              engine=None) -> LoraRun:
    """Validate, build the adapter and start training in a background thread.

    Args:
        owner: the session the adapter belongs to.
        dataset: ``[{"prompt", "response"} | {"messages": [...]}, ...]``.
        settings: LoRA settings by PEFT/transformers name (missing keys take the defaults).
        engine: overrides the base engine named by the settings (tests pass a tiny model).
    Raises:
        ValueError: empty/oversized/malformed dataset, bad settings, or a run already going for ``owner``.
    """
    if not owner:
        raise ValueError("No session id: reload the page.")
    limits = get_limits()
    parsed, notices = settings_from_dict(settings, limits.max_train_steps)
    conversations = validate_dataset(dataset, limits.max_dataset_bytes)
    engine = engine or base_engine(parsed)
    tokenized = tokenize_dataset(engine.tokenizer, conversations,
                                 max_tokens=min(limits.max_prompt_tokens, MAX_SEQ_TOKENS))
    run_id = new_run_id()
    run = LoraRun(run_id=run_id, owner=owner, settings=parsed, engine=engine, peft_model=None,
                  adapter_name=adapter_name_for(owner, run_id), dataset_name=dataset_name, notices=notices,
                  prompts=tuple(first_prompt(m) for m in conversations),
                  example_tokens=token_view(engine.tokenizer, tokenized[0]))
    with claim(run):
        with engine.session(grad=True):
            run.peft_model, run.peft_counts = build_peft_model(engine, parsed, run.adapter_name)
        run.trainable_params, run.total_params = count_parameters(engine.model, parsed)
    return REGISTRY.start(run, lambda r: _work(r, tokenized))


def claim(run: LoraRun):
    """Register a new running ``run`` for the block that builds its adapter; unregistered if the block raises.

    Raises:
        ValueError: the owner already has a run going (one run per session at a time).
    """
    return REGISTRY.claim(run)


def get_run(run_id: str, owner: str) -> LoraRun:
    """The run ``run_id`` if it belongs to ``owner``.

    Raises:
        ValueError: unknown id, or another session's run (adapters are private to their session).
    """
    run = REGISTRY.runs.get(str(run_id or "").strip())
    if run is None or run.owner != owner:
        raise ValueError(f"No LoRA run {run_id!r} in this session (runs belong to the session that trained them).")
    return run


def runs_for(owner: str) -> list[LoraRun]:
    """The owner's runs, oldest first."""
    return REGISTRY.runs_for(owner)


def active_run(owner: str) -> LoraRun | None:
    """The owner's run still training, if any (used to re-attach after a page reload)."""
    return REGISTRY.active(owner)


def shutdown(timeout_s: float = 30.0) -> int:
    """Stop every running run after its current step and wait for the threads (at most ``timeout_s`` seconds
    in all); called at interpreter exit so no training thread is inside a torch op while Python shuts down.
    Returns how many runs were still going."""
    return REGISTRY.shutdown(timeout_s)


def stop(owner: str) -> LoraRun | None:
    """Ask the owner's running run to stop after its current step; returns it (or ``None``)."""
    return REGISTRY.stop(owner)


def wait(run: LoraRun, timeout_s: float | None = None) -> RunSnapshot:
    """Block until ``run`` finishes (or ``timeout_s`` seconds pass) and return its snapshot. A caller blocked
    here is watching the run, so it is not stopped as idle."""
    return snapshot(REGISTRY.wait(run, timeout_s))
