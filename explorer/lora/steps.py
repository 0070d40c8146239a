"""The SFT optimiser steps of a LoRA run: AdamW on the adapter's parameters, one turn on the model per step
(forward, backward, clip, update under ``Engine.session(grad=True)`` with the adapter enabled for that step only).
Used by the run thread (:mod:`explorer.lora.train`) and by each ZeroGPU chunk (:mod:`explorer.lora.chunks`).
"""
from __future__ import annotations

import math
import time
from typing import Iterator

from explorer.lora.data import batch_order, collate
from explorer.lora.registry import LoraRun, StepRecord, adapter_active, discard, stopped

EXPLODE_FACTOR = 4.0


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
