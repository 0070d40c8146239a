"""The LoRA lens contract: ``iter_run`` yields :class:`Progress` while a run trains, then its snapshot;
``run`` drains it; ``to_api`` is the ``/lora_train`` JSON.

Training itself happens in a background thread (:func:`explorer.lora.train.start_run`), taking the model's
lock one optimiser step at a time; this module only follows it.
"""
from __future__ import annotations

from typing import Iterator

from explorer.core.progress import Progress, run_to_end
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))
from explorer.lora.train import RUNNING, RunSnapshot, snapshot, start_run

POLL_S = 0.2


def iter_run(dataset: list, settings: dict | None = None, owner: str = "local", dataset_name: str = "custom",
             engine=None, poll_s: float = POLL_S) -> Iterator[Progress | RunSnapshot]:
    """Start a run and follow it: a :class:`Progress` (``partial`` = the :class:`RunSnapshot` so far) each time
    a step completes, then the final snapshot (status ``done``, ``stopped`` or ``failed``).

    Raises:
        ValueError: see :func:`explorer.lora.train.start_run`.
    """
    run = start_run(owner, dataset, settings, dataset_name, engine)
    last = -1
    while True:
        snap = snapshot(run)
        if snap.status != RUNNING:
            yield snap
            return
        if snap.steps_done != last:
            last = snap.steps_done
            yield Progress(snap.steps_done / max(1, snap.total_steps),
                           f"step {snap.steps_done} of {snap.total_steps}", partial=snap)
        if run.thread is not None:
            run.thread.join(poll_s)


def run(dataset: list, settings: dict | None = None, owner: str = "local", dataset_name: str = "custom",
        engine=None) -> RunSnapshot:
    """Train an adapter to completion and return its :class:`RunSnapshot` (see :func:`iter_run` for errors)."""
    return run_to_end(iter_run(dataset, settings, owner, dataset_name, engine))
