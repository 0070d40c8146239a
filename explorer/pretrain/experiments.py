"""The handbook's hyperparameter table made live, and the data quality vs quantity comparison.

Each :class:`HyperRow` is one row of the concept handbook's "Key Hyperparameters" table: its typical values in
large-model training (quoted from the handbook), and a pair of short runs of the tiny model that differ only in
that hyperparameter, with the trace that shows the effect. The tiny model's values are chosen so the effect shows
within ~100 steps (e.g. weight decay 1.0 instead of 0.1, because 0.1 shrinks weights too little in 100 steps to
see); each row says so in ``note``.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HyperRow:
    """One hyperparameter row.

    Attributes:
        key: id. name: the handbook's name. typical: the handbook's typical values for large models.
        base: settings shared by the pair. a, b: ``(label, settings)`` of the two runs.
        trace: what the figure shows (``loss``, ``val_loss``, ``grad_norm``, ``weight_norm``).
        note: what to look for, and why the tiny model's values differ from the typical ones.
    """

    key: str
    name: str
    typical: str
    base: dict
    a: tuple
    b: tuple
    trace: str
    note: str
    x: str = field(default="step")


HYPER_ROWS: tuple[HyperRow, ...] = (
    HyperRow("lr", "Learning rate", "1e-4 to 3e-4 (pretraining)", {"steps": 60},
             ("lr 3e-3", {"lr": 3e-3}), ("lr 1.0 (too high)", {"lr": 1.0}), "loss",
             "Too high a learning rate makes the loss explode within a few steps (the run stops as diverged). The "
             "tiny model's good rate is ~10x the handbook's: small models tolerate larger rates."),
    HyperRow("warmup", "Warmup steps", "500-2000 steps", {"steps": 100, "lr": 3e-2},
             ("no warmup", {"warmup": 0}), ("30 warmup steps", {"warmup": 30}), "loss",
             "At a high peak rate (3e-2), starting at full rate on random weights wrecks the early steps; ramping up "
             "over 30 steps (30 % of this short run, as 2000 steps are of a long one) ends far lower."),
    HyperRow("clip", "Gradient clipping", "1.0 (max norm)", {"steps": 100, "lr": 3e-2, "warmup": 0},
             ("clipping off", {"clip": 0.0}), ("clip at 1.0", {"clip": 1.0}), "grad_norm",
             "The trace is the gradient norm before clipping; with clipping on, no update is larger than norm 1."),
    HyperRow("weight_decay", "Weight decay", "0.01-0.1", {"steps": 100},
             ("weight decay 0", {"weight_decay": 0.0}), ("weight decay 1.0", {"weight_decay": 1.0}), "weight_norm",
             "Decay shrinks every weight matrix each step (by lr x decay); 1.0 instead of 0.1 so 100 steps show it."),
    HyperRow("dropout", "Dropout", "0.0-0.1", {"steps": 100},
             ("dropout 0", {"dropout": 0.0}), ("dropout 0.1", {"dropout": 0.1}), "val_loss",
             "Dropout slows learning a little on a model this small and data this plentiful (never repeated): the "
             "reason large pretraining runs use 0."),
    HyperRow("batch_size", "Batch size", "millions of tokens (pretraining)", {"steps": 80},
             ("batch 4", {"batch_size": 4}), ("batch 32", {"batch_size": 32}), "loss",
             "A larger batch gives a less noisy gradient: a smoother, lower curve per step (at 8x the tokens)."),
    HyperRow("seq_len", "Sequence length", "512-4096 (training)", {"steps": 80},
             ("seq_len 16", {"seq_len": 16}), ("seq_len 128", {"seq_len": 128}), "val_loss",
             "Longer windows give each prediction more context, and each step 8x the tokens (validation is scored "
             "at each run's own length)."),
    HyperRow("depth", "Layers vs hidden size", "32 layers x 4096 (7B), 80 x 8192 (70B)", {"steps": 100},
             ("4 layers x 64 (deeper)", {"layers": 4, "d_model": 64, "heads": 4}),
             ("1 layer x 128 (wider)", {"layers": 1, "d_model": 128, "heads": 4}), "val_loss",
             "Equal non-embedding parameters (16·d² per layer: 4 x 16·64² = 1 x 16·128²). In 100 steps on this "
             "simple grammar the wide model learns faster; the handbook's 'depth improves reasoning more than "
             "width' is a finding about large models trained long."),
)


def hyper_row(key: str) -> HyperRow:
    """The row ``key``.

    Raises:
        ValueError: an unknown key.
    """
    for row in HYPER_ROWS:
        if row.key == key:
            return row
    raise ValueError(f"row must be one of {[r.key for r in HYPER_ROWS]} (got {key!r})")


def pair_settings(row: HyperRow, seed: int = 0) -> list[tuple[str, dict]]:
    """``[(label, settings dict)]`` of the row's two runs (same seed, so they differ only in the hyperparameter)."""
    return [(label, {**row.base, **extra, "seed": seed}) for label, extra in (row.a, row.b)]


DATA_STEPS = 150


def data_settings(seed: int = 0) -> dict:
    """Settings of the data-quality runs: the same model and compute (steps x batch x seq_len) on every variant."""
    return {"steps": DATA_STEPS, "seed": seed, "eval_every": 10}
