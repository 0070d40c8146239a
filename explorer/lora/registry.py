"""The fine-tuning runs: :class:`LoraRun` (a :class:`explorer.core.runs.Run` with a PEFT adapter on a weight-sharing
shadow of the shared model), the registry SFT and DPO runs share, and the per-pass patch that enables a run's
adapter (:class:`explorer.core.patches.Adapter`) only inside that run's passes.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import ClassVar

from explorer.core import runs
from explorer.core.patches import Adapter
from explorer.core.runs import Run
from explorer.lora.model import LoraSettings

MAX_RUNS_PER_OWNER = 6
MAX_RUNS_TOTAL = 64  # adapters kept on the server (a default run holds ~20 MB once finished)


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


REGISTRY = runs.RunRegistry("LoRA", MAX_RUNS_PER_OWNER, MAX_RUNS_TOTAL)  # SFT and DPO runs, one going per session


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
