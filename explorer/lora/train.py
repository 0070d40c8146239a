"""The LoRA lens: live fine-tune runs kept in a server-side registry, one owner (session) each.

A run trains a PEFT LoRA adapter (Hu et al. 2021; QLoRA, Dettmers et al. 2023, when asked) on a
*shadow* of the shared model that shares its frozen weights (see :mod:`explorer.lora_model`), in a
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

import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import ClassVar, Iterator

import numpy as np

from explorer.core import runs
from explorer.core.config import get_limits
from explorer.core.patches import Adapter
from explorer.core.provenance import Provenance, measured
from explorer.core.runs import FINISHED, RUNNING, Run, new_run_id
from explorer.lora.data import batch_order, collate, first_prompt, token_view, tokenize_dataset, validate_dataset
from explorer.lora.model import (LoraSettings, base_engine, build_peft_model, count_parameters,
                                 settings_from_dict)

log = logging.getLogger("llm_explorer")

MAX_RUNS_PER_OWNER = 6
MAX_RUNS_TOTAL = 64  # adapters kept on the server (a default run holds ~20 MB once finished)
MAX_SEQ_TOKENS = 512
EMA_BETA = 0.8
EXPLODE_FACTOR = 4.0


@dataclass
class StepRecord:
    """One optimiser step: loss (nats/token), learning rate, pre-clip gradient L2 norm, trained tokens, seconds."""

    loss: float
    learning_rate: float
    grad_norm: float
    tokens: int
    step_s: float
    elapsed_s: float


@dataclass
class LoraRun(Run):
    """A run and its adapter (a :class:`explorer.core.runs.Run` of kind ``sft``; read through :func:`snapshot`).

    Attributes (besides :class:`Run`'s id, owner, status, message, notices, records and stop event):
        settings: :class:`LoraSettings`. engine: the base engine it trains on.
        peft_model: the PEFT model on a weight-sharing shadow (``None`` once discarded).
        adapter_name: PEFT adapter name ``<owner>-<run_id>``.
        records: one :class:`StepRecord` per completed step.
        trainable_params, total_params: counts (parameters) computed from the shapes before training;
            peft_counts: PEFT's own ``get_nb_trainable_parameters()`` on the built adapter (must agree).
    """

    KIND: ClassVar[str] = "sft"
    settings: LoraSettings
    engine: object
    peft_model: object
    adapter_name: str
    dataset_name: str = ""
    prompts: tuple[str, ...] = ()
    example_tokens: list = field(default_factory=list)
    trainable_params: int = 0
    total_params: int = 0
    peft_counts: tuple[int, int] = (0, 0)

    def __post_init__(self):
        self.kind = self.KIND
        self.total = int(self.settings.steps)

    def stopped_message(self, why: str, done: int) -> str:
        """``why`` and the step the adapter keeps."""
        return f"{why}; the adapter keeps step {done}."

    def done_message(self) -> str:
        """``Finished <steps> steps.``"""
        return f"Finished {self.settings.steps} steps."

    def fail(self, message: str) -> None:
        """Mark the run failed and drop its adapter."""
        self.status, self.message, self.peft_model = "failed", message, None

    def crashed(self, exc: Exception) -> None:
        """The training thread raised: the run failed and its adapter is discarded."""
        self.fail(f"The run failed ({type(exc).__name__}: {exc}); its adapter was discarded.")

    def cleanup(self) -> None:
        """Freeze the adapter's parameters again (they need gradients only while training)."""
        if self.peft_model is not None:
            for name, p in self.peft_model.named_parameters():
                if "lora_" in name:
                    p.requires_grad_(False)


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


REGISTRY = runs.RunRegistry("LoRA", MAX_RUNS_PER_OWNER, MAX_RUNS_TOTAL)  # SFT and DPO runs, one going per session


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


def adapter_patch(run: LoraRun, train: bool = False) -> Adapter:
    """The per-pass patch that runs a pass through ``run``'s adapter (``patches=[adapter_patch(run)]`` on
    :meth:`Engine.forward` / :meth:`Engine.steps`).

    Raises:
        ValueError: the run's adapter was discarded (failed run).
    """
    if run.peft_model is None:
        raise ValueError(f"Run {run.run_id} has no adapter (it failed and was discarded).")
    return Adapter(run.peft_model, run.adapter_name, train=train, label=run.run_id)


def adapter_patches(run: LoraRun | None, train: bool = False) -> list:
    """``[adapter_patch(run)]``, or ``[]`` for None (the base model, adapter off): the ``patches`` of a pass."""
    return [] if run is None else [adapter_patch(run, train)]


@contextlib.contextmanager
def adapter_active(run: LoraRun, train: bool = False):
    """Enable ``run``'s adapter for the block (an optimiser step: forward, backward and update), inside a turn
    on its engine; disabled again in ``finally``. Yields the PEFT model.

    Raises:
        ValueError: the run's adapter was discarded (failed run).
    """
    patch = adapter_patch(run, train)
    with run.engine.patched([patch], grad=True) as model:
        yield model


def optimiser(run: LoraRun):
    """``(params, optimizer, scheduler)`` for ``run``'s adapter: AdamW and the transformers scheduler."""
    import torch
    from transformers import get_scheduler

    s = run.settings
    params = [p for n, p in run.peft_model.named_parameters() if "lora_" in n and run.adapter_name in n]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=0.0)
    scheduler = get_scheduler(s.lr_scheduler_type, optimizer, num_warmup_steps=s.warmup_steps,
                              num_training_steps=s.steps)
    return params, optimizer, scheduler


def _work(run: LoraRun, tokenized: list) -> Iterator[StepRecord | None]:
    """The run's worker (:meth:`explorer.core.runs.RunRegistry.start`): one :class:`StepRecord` per step."""
    from explorer.lora import chunks

    params, optimizer, scheduler = optimiser(run)
    start = time.perf_counter()
    plan = chunks.plan_for(run.settings.steps)  # on ZeroGPU: GPU calls of a few steps each, driven from here
    if plan is not None:
        yield None  # the registry checks Stop once before the first chunk; chunks check it between their steps
        if chunks.run_chunked(run, tokenized, params, optimizer, scheduler, plan, start):
            run.status, run.message = "done", run.done_message()
        return
    yield from iter_steps(run, tokenized, params, optimizer, scheduler, 0, run.settings.steps, start, {})


def steps_run(run: LoraRun, tokenized: list, params, optimizer, scheduler, first: int, last: int, start: float,
              first_loss: float | None, records: list) -> tuple[bool, float | None]:
    """Optimiser steps ``first .. last - 1`` with a stop check before each (one ZeroGPU chunk), appending a
    StepRecord each to ``records``; returns ``(True, first_loss)`` when all ran, ``(False, ...)`` when the run
    stopped or failed (status set on ``run``)."""
    state = {"first_loss": first_loss}
    items = iter_steps(run, tokenized, params, optimizer, scheduler, first, last, start, state)
    for step in range(first, last):
        if stopped(run, step, start):
            items.close()
            return False, state["first_loss"]
        record = next(items, None)
        if record is None:
            return False, state["first_loss"]
        records.append(record)
    return True, state["first_loss"]


def iter_steps(run: LoraRun, tokenized: list, params, optimizer, scheduler, first: int, last: int, start: float,
               state: dict) -> Iterator[StepRecord]:
    """Optimiser steps ``first .. last - 1``, one turn on the model each, yielding a :class:`StepRecord` per step.

    ``state["first_loss"]`` (nats/token) is the first step's loss, kept across chunks. A NaN/inf or exploding
    loss (above ``EXPLODE_FACTOR`` times the first) discards the adapter and ends the iteration.
    """
    import torch

    s, engine, model = run.settings, run.engine, run.peft_model
    first_loss = state.get("first_loss")
    pad_id = engine.tokenizer.pad_token_id if engine.tokenizer.pad_token_id is not None else 0
    order = batch_order(len(tokenized), s.batch_size, s.steps, s.seed)
    for step in range(first, last):
        batch = {k: v.to(engine.device) for k, v in collate([tokenized[i] for i in order[step]], pad_id).items()}
        lr = scheduler.get_last_lr()[0]
        with engine.session(grad=True), torch.enable_grad(), adapter_active(run, train=True):
            t0 = time.perf_counter()
            loss = model(**batch).loss
            value = float(loss.detach())
            bad = not math.isfinite(value) or (first_loss is not None and value > EXPLODE_FACTOR * first_loss)
            if not bad:
                loss.backward()
                clip = s.max_grad_norm if s.max_grad_norm > 0 else float("inf")
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
                bad = not math.isfinite(grad_norm)
            if not bad:
                optimizer.step()
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step_s = time.perf_counter() - t0
        if bad:
            discard(run, f"The loss {'became NaN/inf' if not math.isfinite(value) else f'exploded to {value:.3g}'} at "
                          f"step {step + 1} with learning rate {s.learning_rate:g}; the run stopped and its adapter "
                          "was discarded. Try a smaller learning rate (e.g. 1e-4 to 3e-3).")
            return
        first_loss = state["first_loss"] = value if first_loss is None else first_loss
        yield StepRecord(loss=value, learning_rate=lr, grad_norm=grad_norm, tokens=int(batch["attention_mask"].sum()),
                         step_s=step_s, elapsed_s=time.perf_counter() - start)


def stopped(run: LoraRun, step: int, start: float) -> bool:
    """Whether the run must stop before step ``step`` (0-based): Stop pressed, no page polling it for
    ``Limits.lora_idle_seconds``, or ``Limits.max_run_seconds`` since ``start`` (``time.perf_counter()``).
    Sets the run's status and message when it does."""
    why = runs.stop_reason(run, step, start)
    if why is None:
        return False
    run.status, run.message = "stopped", run.stopped_message(why, step)
    return True


def discard(run: LoraRun, message: str) -> None:
    """Mark ``run`` failed with ``message`` and drop its adapter."""
    run.fail(message)


def preview(settings: dict | None, engine=None) -> tuple[LoraSettings, int, int, list[str]]:
    """Settings and ``(trainable, all)`` parameter counts before training (no adapter is built).

    ``engine`` overrides the base engine named by the settings (tests pass a tiny model).

    Raises:
        ValueError: invalid settings (see :func:`explorer.lora_model.settings_from_dict`).
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
