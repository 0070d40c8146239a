"""The pretraining loop: one :class:`Curve` trained step by step, every figure recorded as it goes.

AdamW (decoupled weight decay on matrices only, Loshchilov & Hutter 2019), linear warmup then cosine decay to
10 % of the peak learning rate, gradient-norm clipping (``torch.nn.utils.clip_grad_norm_``, the norm recorded
before clipping), validation loss on fixed clean windows every ``eval_every`` steps, and a sample generation
every ``sample_every`` steps. A non-finite loss or a loss above :data:`EXPLODE_FACTOR` times the first one ends
the curve with status ``diverged``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from explorer.pretrain.data import CorpusData, batch, check_seq_len, valid_batches
from explorer.pretrain.model import PretrainSettings, build_model, count_parameters, lm_loss, sample_text
from explorer.pretrain.tokenizer import decode, load_tokenizer

EXPLODE_FACTOR = 3.0
SAMPLE_PROMPT = "Once upon a time"
SAMPLE_TOKENS = 32
CHINCHILLA_TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022, compute-optimal D/N


@dataclass
class Curve:
    """One trained model's record (mutable while it trains; read under the GIL by pollers).

    Per-step lists (length = steps done): ``losses`` (train, nats/token), ``grad_norms`` (L2 before clipping),
    ``lrs``, ``weight_norms`` (L2 of all weight matrices), ``step_s`` (seconds of the optimiser step alone).
    ``val_steps`` / ``val_losses``: steps at which the clean validation windows were scored and their mean loss.
    ``samples``: ``[(step, text)]``.
    """

    label: str
    settings: PretrainSettings
    corpus: str
    corpus_tokens: int
    non_embedding_params: int = 0
    embedding_params: int = 0
    status: str = "running"
    message: str = ""
    losses: list = field(default_factory=list)
    grad_norms: list = field(default_factory=list)
    lrs: list = field(default_factory=list)
    weight_norms: list = field(default_factory=list)
    step_s: list = field(default_factory=list)
    val_steps: list = field(default_factory=list)
    val_losses: list = field(default_factory=list)
    samples: list = field(default_factory=list)

    @property
    def tokens_seen(self) -> int:
        """Training tokens consumed so far (steps x batch_size x seq_len)."""
        return len(self.losses) * self.settings.batch_size * self.settings.seq_len

    @property
    def tokens_per_param(self) -> float:
        """Tokens seen per non-embedding parameter (Chinchilla's compute-optimal ratio is about 20)."""
        return self.tokens_seen / max(1, self.non_embedding_params)


def lr_at(step: int, s: PretrainSettings) -> float:
    """Learning rate of 0-based ``step``: linear warmup over ``s.warmup`` steps, then cosine from ``s.lr`` to
    0.1·lr."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def optimizer_for(model, s: PretrainSettings):
    """AdamW with weight decay on parameters of 2+ dimensions (matrices, embeddings) and none on norm gains."""
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=s.lr, betas=(0.9, 0.95))


def weight_norm(model) -> float:
    """L2 norm of all weight matrices together (what weight decay shrinks)."""
    import torch

    with torch.no_grad():
        return float(torch.sqrt(sum((p.float() ** 2).sum() for p in model.parameters() if p.dim() >= 2)))


def validation_loss(model, windows: list) -> float:
    """Mean next-token loss (nats/token) of ``model`` on the validation ``windows`` (eval mode, no grad)."""
    import torch

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return float(np.mean([float(lm_loss(model(input_ids=w).logits, w)) for w in windows]))
    finally:
        model.train(was)


def new_curve(label: str, s: PretrainSettings, data: CorpusData):
    """``(curve, model)``: a fresh model for settings ``s`` and its empty :class:`Curve` on ``data``.

    Raises:
        ValueError: ``s.seq_len`` longer than the corpus allows.
    """
    check_seq_len(s.seq_len, data)
    model = build_model(s, load_tokenizer().get_vocab_size())
    curve = Curve(label=label, settings=s, corpus=data.name, corpus_tokens=data.train_tokens)
    curve.non_embedding_params, curve.embedding_params = count_parameters(model)
    return curve, model


def train_curve(curve: Curve, model, data: CorpusData, before_step: Callable[[], None] = lambda: None) -> str:
    """Train ``model`` for ``curve.settings.steps`` steps to the end (see :func:`curve_steps`); returns the final
    status (``done`` or ``diverged``)."""
    for _ in curve_steps(curve, model, data, before_step):
        pass
    return curve.status


def curve_steps(curve: Curve, model, data: CorpusData, before_step: Callable[[], None] = lambda: None) -> Iterator[int]:
    """Train ``model`` for ``curve.settings.steps`` steps, appending to ``curve`` and yielding the step number after
    each; ``before_step()`` runs before each step (a job yields to interactive work there). Sets ``curve.status``:
    ``done``, ``diverged`` (it then returns early), or ``stopped`` when the caller closes the generator."""
    import torch

    s, tok = curve.settings, load_tokenizer()
    gen = torch.Generator().manual_seed(s.seed)
    sample_gen = torch.Generator().manual_seed(s.seed + 1)
    prompt = tok.encode(SAMPLE_PROMPT).ids
    windows = valid_batches(data, s.seq_len, s.batch_size)
    opt = optimizer_for(model, s)
    model.train()
    try:
        yield from _steps(curve, model, data, before_step, opt, gen, sample_gen, prompt, windows, tok)
    except GeneratorExit:
        curve.status, curve.message = "stopped", f"Stopped after {len(curve.losses)} of {s.steps} steps."
        raise


def _steps(curve, model, data, before_step, opt, gen, sample_gen, prompt, windows, tok) -> Iterator[int]:
    import torch

    s = curve.settings
    for step in range(s.steps):
        before_step()
        x = batch(data.train, s.batch_size, s.seq_len, gen)
        lr = lr_at(step, s)
        for group in opt.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        loss = lm_loss(model(input_ids=x).logits, x)
        value = float(loss.detach())
        if not math.isfinite(value) or (curve.losses and value > EXPLODE_FACTOR * curve.losses[0]):
            curve.status = "diverged"
            what = "is not finite" if not math.isfinite(value) else f"rose to {value:.3g}"
            curve.message = f"Diverged at step {step + 1}: the loss {what} (learning rate {lr:.3g}); the run stopped."
            return
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip if s.clip > 0 else math.inf))
        opt.step()
        opt.zero_grad(set_to_none=True)
        curve.step_s.append(time.perf_counter() - t0)
        curve.grad_norms.append(grad_norm)
        curve.lrs.append(lr)
        curve.weight_norms.append(weight_norm(model))
        curve.losses.append(value)
        done = step + 1
        if done == 1 or done % s.eval_every == 0 or done == s.steps:
            curve.val_steps.append(done)
            curve.val_losses.append(validation_loss(model, windows))
        if done % s.sample_every == 0 or done == s.steps:
            ids = sample_text(model, prompt, SAMPLE_TOKENS, sample_gen)
            curve.samples.append((done, SAMPLE_PROMPT + decode(ids, tok)))
        yield done
    curve.status, curve.message = "done", f"Finished {s.steps} steps."
