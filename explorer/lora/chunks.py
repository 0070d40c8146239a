"""A LoRA run as a series of short GPU calls (ZeroGPU), driven by the run's own server-side thread.

ZeroGPU lends a GPU only inside a decorated call, runs the call in a worker process and pickles what goes in
and out (https://huggingface.co/docs/hub/spaces-zerogpu). So a run there trains in chunks of optimiser steps:
the run thread (explorer/lora/train.py ``_work``) hands the adapter weights, the AdamW state and the scheduler
state in on the CPU, the chunk loads them, runs its steps through the same ``steps_run`` as an unchunked run and
hands the new state back on the CPU; the thread loads it, publishes the chunk's step records (the page streams
them between chunks, and a reload re-attaches as on CPU) and starts the next chunk. Stop and the caps are
checked at every step inside a chunk and between chunks.

The UI layer switches this on with :func:`configure` (``components/gpu.py`` on a ZeroGPU Space, giving the
``spaces.GPU`` decorator and the chunk plan); elsewhere :func:`plan_for` is ``None`` and runs are not chunked.
"""
from __future__ import annotations

from typing import Callable

from explorer.lora.registry import REGISTRY, discard
from explorer.lora.steps import optimiser, steps_run

_WRAP: Callable | None = None  # (fn, steps) -> fn decorated for one GPU call sized for ``steps``
_PLAN: Callable[[int], list[int]] | None = None  # total steps -> chunk sizes


def configure(wrap: Callable | None, plan: Callable[[int], list[int]] | None) -> None:
    """Train runs in chunks: ``plan(total_steps) -> [steps per chunk]``, each chunk run as ``wrap(fn, steps)``."""
    global _WRAP, _PLAN
    _WRAP, _PLAN = wrap, plan


def plan_for(steps: int) -> list[int] | None:
    """The chunk sizes for a run of ``steps`` optimiser steps, or ``None`` when runs are not chunked."""
    return _PLAN(steps) if _PLAN is not None else None


def to_cpu(value):
    """``value`` (a state dict, nested dicts/lists of tensors) with every tensor detached and on the CPU."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


def _adapter_state(run) -> dict:
    return {n: p.detach().to("cpu", copy=True) for n, p in run.peft_model.named_parameters()
            if "lora_" in n and run.adapter_name in n}


def _load(run, params, optimizer, scheduler, adapter: dict, optim_state: dict, sched_state: dict) -> None:
    import torch

    with torch.no_grad():
        named = {n: p for n, p in run.peft_model.named_parameters() if n in adapter}
        for name, value in adapter.items():
            named[name].copy_(value.to(device=named[name].device, dtype=named[name].dtype))
    optimizer.load_state_dict(optim_state)
    scheduler.load_state_dict(sched_state)


def train_chunk(run_id: str, tokenized: list, first: int, last: int, adapter: dict, optim_state: dict,
                sched_state: dict, start: float, first_loss: float | None) -> dict:
    """One GPU call: steps ``first .. last - 1`` of run ``run_id`` from the handed-in state (CPU tensors).

    Returns ``{"ok", "first_loss", "records", "status", "message", "adapter", "optim", "sched"}``, every tensor
    on the CPU (ZeroGPU pickles the result back to the main process).
    """
    run = REGISTRY.lookup(run_id)
    params, optimizer, scheduler = optimiser(run)
    _load(run, params, optimizer, scheduler, adapter, optim_state, sched_state)
    records: list = []
    ok, first_loss = steps_run(run, tokenized, params, optimizer, scheduler, first, last, start, first_loss,
                                  records)
    failed = run.peft_model is None
    return {"ok": ok, "first_loss": first_loss, "records": records, "status": run.status, "message": run.message,
            "adapter": None if failed else _adapter_state(run), "optim": to_cpu(optimizer.state_dict()),
            "sched": scheduler.state_dict()}


def run_chunked(run, tokenized: list, params, optimizer, scheduler, plan: list[int], start: float) -> bool:
    """Drive ``run`` through ``plan`` (steps per chunk) from the run thread; True when every step ran.

    On a stop or failure inside a chunk the run's status and message are those the chunk reported (a failed
    run's adapter is discarded as unchunked).
    """
    first, first_loss = 0, None
    for steps in plan:
        if run.stop_event.is_set():
            run.status, run.message = "stopped", (f"Stopped after {first} of {run.settings.steps} steps; the adapter "
                                                  f"keeps step {first}.")
            return False
        call = _WRAP(train_chunk, steps) if _WRAP is not None else train_chunk
        try:
            out = call(run.run_id, tokenized, first, first + steps, _adapter_state(run),
                       to_cpu(optimizer.state_dict()), scheduler.state_dict(), start, first_loss)
        except Exception as exc:  # noqa: BLE001 - e.g. the GPU quota ran out between chunks: keep what was trained
            run.status, run.message = "stopped", (f"Stopped after {first} of {run.settings.steps} steps: {exc} The "
                                                  f"adapter keeps step {first}.")
            return False
        if out["adapter"] is None:
            discard(run, out["message"])
            run.records.extend(out["records"])
            return False
        _load(run, params, optimizer, scheduler, out["adapter"], out["optim"], out["sched"])
        run.records.extend(out["records"])
        first, first_loss = first + steps, out["first_loss"]
        if not out["ok"]:
            run.status, run.message = out["status"], out["message"]
            return False
    return True
