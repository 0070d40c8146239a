"""The scaling grid: tiny Llamas of five sizes, each trained at four compute budgets, on the pretraining corpus.

Every run spends a compute budget ``C`` (FLOPs, counted as ``C = 6 N D``, Kaplan et al. 2020, eq. 2.1 / Hoffmann
et al. 2022, section 3: ``N`` non-embedding parameters, ``D`` training tokens), so a model of ``N`` parameters
trains on ``D = C / (6 N)`` tokens: ``steps = D / (batch_size x seq_len)``. Each run has its own learning-rate
schedule (warmup then cosine decay over exactly its steps, as Hoffmann et al. found necessary, section 3.1).
The final loss is the mean next-token loss (nats/token) on non-overlapping windows of the clean validation stream.

``python bench/bench_scaling.py --write`` trains the grid and appends one JSON line per finished run to
``data/scaling/grid.jsonl`` (resumable: runs already there are skipped).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass

from explorer.core.config import data_path

GRID_FILE = data_path("scaling", "grid.jsonl")
# (layers, d_model, heads): non-embedding parameters about 16 k, 51 k, 131 k, 443 k, 1.05 M (16·layers·d_model²)
SIZES = ((1, 32, 2), (2, 40, 4), (2, 64, 4), (3, 96, 4), (4, 128, 4))
BUDGETS = (1.5e11, 3e11, 6e11, 1.2e12)  # FLOPs, C = 6 N D
BATCH_SIZE, SEQ_LEN, LR = 16, 64, 3e-3
EVAL_WINDOWS = 256  # non-overlapping validation windows of SEQ_LEN tokens (16,384 tokens)
FLOPS_PER_PARAM_TOKEN = 6  # forward 2 + backward 4 multiply-adds per parameter per token (Kaplan et al. 2020)


@dataclass(frozen=True)
class GridRun:
    """One planned grid run: a model size and a compute budget.

    Attributes:
        layers, d_model, heads: the tiny Llama's shape. budget: FLOPs to spend (``C = 6 N D``).
        steps: optimiser steps of ``BATCH_SIZE x SEQ_LEN`` tokens that spend it (at least 10).
    """

    layers: int
    d_model: int
    heads: int
    budget: float

    @property
    def key(self) -> str:
        """A stable name: ``L{layers}-d{d_model}-C{budget:.3g}``."""
        return f"L{self.layers}-d{self.d_model}-C{self.budget:.3g}"

    @property
    def non_embedding_params(self) -> int:
        """``N`` of this shape counted from a built model (see :func:`non_embedding_params`)."""
        return non_embedding_params(self.layers, self.d_model, self.heads)

    @property
    def steps(self) -> int:
        """Steps that spend the budget: ``round(C / (6 N x tokens per step))``, at least 10."""
        tokens = self.budget / (FLOPS_PER_PARAM_TOKEN * self.non_embedding_params)
        return max(10, round(tokens / (BATCH_SIZE * SEQ_LEN)))

    def settings(self, seed: int = 0) -> dict:
        """The ``/pretrain`` settings of this run (warmup a tenth of the steps, at most 50)."""
        return {"steps": self.steps, "seed": seed, "layers": self.layers, "d_model": self.d_model,
                "heads": self.heads, "seq_len": SEQ_LEN, "batch_size": BATCH_SIZE, "lr": LR,
                "warmup": min(50, max(1, self.steps // 10))}


def non_embedding_params(layers: int, d_model: int, heads: int) -> int:
    """Non-embedding parameters of the pretraining Llama of this shape: per layer 4·d² attention + 3·d·4d MLP
    + 2·d norm gains, plus the final norm's d (embedding ``vocab x d`` tied and excluded, as Kaplan et al.)."""
    return layers * (16 * d_model * d_model + 2 * d_model) + d_model


def plan(sizes=SIZES, budgets=BUDGETS) -> list[GridRun]:
    """The grid's runs, smallest budget first (so a cut-short grid still holds whole IsoFLOP curves)."""
    return [GridRun(layers, d, heads, c) for c in budgets for layers, d, heads in sizes]


def eval_loss(model, valid, windows: int = EVAL_WINDOWS, seq_len: int = SEQ_LEN, batch_size: int = 32) -> float:
    """Mean next-token loss (nats/token) of ``model`` on the first ``windows`` non-overlapping ``seq_len``-token
    windows of the int64 array ``valid`` (fewer when it is shorter)."""
    import numpy as np
    import torch

    from explorer.pretrain.model import lm_loss

    count = min(windows, (valid.size - 1) // seq_len)
    rows = torch.from_numpy(np.stack([valid[i * seq_len:(i + 1) * seq_len] for i in range(count)]))
    model.eval()
    total = 0.0
    with torch.no_grad():
        for chunk in torch.split(rows, batch_size):
            total += float(lm_loss(model(input_ids=chunk).logits, chunk)) * chunk.shape[0]
    return total / count


def train_run(run: GridRun, seed: int = 0, should_stop=lambda: False) -> dict:
    """Train one grid run to its end; returns its record ``{"key", "layers", "d_model", "heads", "budget",
    "non_embedding_params", "embedding_params", "tokens", "steps", "loss" (final validation, nats/token),
    "train_loss" (mean of the last 10 steps), "seconds", "status"}`` (status ``done``, ``diverged`` or
    ``stopped`` when ``should_stop()`` turned true)."""
    import torch

    from explorer.pretrain.data import batch, corpus
    from explorer.pretrain.loop import lr_at, optimizer_for
    from explorer.pretrain.model import PretrainSettings, build_model, count_parameters, lm_loss
    from explorer.pretrain.tokenizer import VOCAB_SIZE

    s = PretrainSettings(**run.settings(seed))  # the grid's own plan, not the interactive caps
    data = corpus("clean")
    model = build_model(s, VOCAB_SIZE)
    n, emb = count_parameters(model)
    opt = optimizer_for(model, s)
    gen = torch.Generator().manual_seed(s.seed)
    losses, status, t0 = [], "done", time.perf_counter()
    model.train()
    for step in range(s.steps):
        if should_stop():
            status = "stopped"
            break
        x = batch(data.train, s.batch_size, s.seq_len, gen)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, s)
        loss = lm_loss(model(input_ids=x).logits, x)
        if not math.isfinite(float(loss.detach())):
            status = "diverged"
            break
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    done = len(losses)
    return {"key": run.key, "layers": run.layers, "d_model": run.d_model, "heads": run.heads, "budget": run.budget,
            "non_embedding_params": n, "embedding_params": emb, "tokens": done * s.batch_size * s.seq_len,
            "steps": done, "loss": eval_loss(model, data.valid) if status == "done" else None,
            "train_loss": sum(losses[-10:]) / max(1, len(losses[-10:])), "seconds": time.perf_counter() - t0,
            "status": status, "settings": s.as_dict()}


def load_grid(path: str | None = None) -> list[dict]:
    """The stored grid records (one JSON object per line; ``meta`` lines skipped), in file order.

    Raises:
        FileNotFoundError: the grid file is missing (write it with ``python bench/bench_scaling.py --write``).
    """
    path = path or GRID_FILE
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: run python bench/bench_scaling.py --write")
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [r for r in rows if r.get("kind", "run") == "run"]


def grid_meta(path: str | None = None) -> dict:
    """How the grid was made: the first run's :func:`~explorer.core.provenance.run_meta` dict with a ``note``
    giving the runs, the summed training and wall time (``summary`` lines) and the machine (the last run line)."""
    path = path or GRID_FILE
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    runs = [r for r in rows if r.get("kind", "run") == "run"]
    if not runs:
        return {}
    meta = dict(runs[0].get("meta") or {})
    meta.pop("settings", None)
    seconds = sum(r.get("seconds", 0.0) for r in runs)
    walls = [r["wall_seconds"] for r in rows if r.get("kind") == "summary"]
    wall = f", {sum(walls) / 60:.0f} min of wall time" if walls else ""
    meta["note"] = f"{len(runs)} runs, {seconds / 60:.0f} min of training{wall} on {runs[-1].get('machine', '?')}"
    return meta
