"""Emergence in training: a 2-layer attention-only transformer forms induction heads (Olsson et al. 2022).

Data: uniformly random tokens in which a span of 8-16 tokens is repeated right after itself. Random tokens
cannot be predicted (loss ~ ln(vocab)); the repeat can, but only by a circuit that finds the earlier
occurrence of the current token and copies the token after it: a previous-token head in layer 1 composed with
an induction head in layer 2. The in-context loss (second half) falls suddenly when those heads form, the phase
change of Olsson et al. 2022, and the induction score of the layer-2 heads rises at the same step.

Induction score of a head: the Circuits lens's detector (:mod:`explorer.circuits.heads`, TransformerLens's
induction detection pattern) on its detector sequences (a first token, ``period`` distinct random tokens, the same
again): the mean attention from each repeated token to the token after its earlier occurrence.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

PINNED = {"vocab": 48, "period": 16, "d_model": 64, "heads": 4, "batch_size": 32, "lr": 5e-3, "steps": 700,
          "seed": 0, "score_every": 10}


@dataclass
class InductionCurve:
    """The record of one induction run. Per step (nats/token): ``losses`` over all predictions, ``first_half`` over
    the unpredictable (random) tokens, ``second_half`` over the copyable tokens of the repeated span (the in-context
    loss). At ``score_steps``: ``scores``, one ``(layers, heads)`` array of induction scores each."""

    settings: dict
    label: str = "induction"
    status: str = "running"
    message: str = ""
    losses: list = field(default_factory=list)
    first_half: list = field(default_factory=list)
    second_half: list = field(default_factory=list)
    step_s: list = field(default_factory=list)
    score_steps: list = field(default_factory=list)
    scores: list = field(default_factory=list)

    @property
    def phase_change_step(self) -> int | None:
        """First step whose in-context (second-half) loss is below half of ln(vocab), or ``None``."""
        threshold = 0.5 * math.log(self.settings["vocab"])
        return next((i + 1 for i, v in enumerate(self.second_half) if v < threshold), None)


def build_model(vocab: int, period: int, d_model: int, heads: int, seed: int):
    """A 2-layer attention-only transformer (token + learned position embeddings, pre-LayerNorm, no MLP),
    weights from a private generator seeded by ``seed``. Its forward returns ``(logits, [attn per layer])`` with
    logits ``(batch, seq, vocab)`` and attention ``(batch, heads, seq, seq)``."""
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln = nn.LayerNorm(d_model)
            self.qkv = nn.Linear(d_model, 3 * d_model)
            self.out = nn.Linear(d_model, d_model)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln(x)).view(b, t, 3, heads, d_model // heads).permute(2, 0, 3, 1, 4)
            scores = q @ k.transpose(-1, -2) / math.sqrt(d_model // heads)
            mask = torch.ones(t, t, dtype=torch.bool).triu(1)
            attn = scores.masked_fill(mask, float("-inf")).softmax(-1)
            return x + self.out((attn @ v).transpose(1, 2).reshape(b, t, d_model)), attn

    class AttnOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, d_model)
            self.pos = nn.Embedding(seq_len(period), d_model)
            self.layers = nn.ModuleList([Attention(), Attention()])
            self.ln = nn.LayerNorm(d_model)
            self.unembed = nn.Linear(d_model, vocab, bias=False)

        def forward(self, ids):
            x = self.embed(ids) + self.pos(torch.arange(ids.shape[1]))
            patterns = []
            for layer in self.layers:
                x, attn = layer(x)
                patterns.append(attn)
            return self.unembed(self.ln(x)), patterns

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AttnOnly()


def repeated_batch(batch_size: int, vocab: int, period: int, generator):
    """``(ids, periods, starts)``: ``ids (batch_size, seq_len(period))`` uniform random tokens in which a span of
    ``p`` tokens (``p`` drawn per sequence in ``[period // 2, period]``) starting at ``a`` is repeated right after
    itself; ``periods`` and ``starts`` are ``(batch_size,)`` int64. Varying ``p`` and ``a`` means no fixed
    positional offset can do the copying: only a content-based (induction) circuit can."""
    import torch

    n = seq_len(period)
    ids = torch.randint(0, vocab, (batch_size, n), generator=generator)
    periods = torch.randint(period // 2, period + 1, (batch_size,), generator=generator)
    starts = (torch.rand(batch_size, generator=generator) * (n - 2 * periods + 1)).long()
    for b in range(batch_size):
        a, p = int(starts[b]), int(periods[b])
        ids[b, a + p:a + 2 * p] = ids[b, a:a + p]
    return ids, periods, starts


def seq_len(period: int) -> int:
    """Sequence length for ``period``: room for the longest span twice plus a quarter of noise."""
    return 2 * period + period // 2


def repeat_mask(periods, starts, n: int):
    """``(batch, n - 1)`` bool: which next-token targets (token t+1 predicted at t) are predictable by copying,
    i.e. the second occurrence of the span after its first token: t + 1 in ``[a + p + 1, a + 2p)``."""
    import torch

    t1 = torch.arange(1, n).view(1, -1)
    a, p = starts.view(-1, 1), periods.view(-1, 1)
    return (t1 >= a + p + 1) & (t1 < a + 2 * p)


PROBE_SEQUENCES = 8


def probe_sequences(vocab: int, period: int, seed: int) -> np.ndarray:
    """``(PROBE_SEQUENCES, 2 * period + 1)`` detector sequences of the Circuits lens: a first token, ``period``
    distinct random tokens, the same again (:func:`explorer.circuits.heads.repeated_random_tokens`)."""
    from explorer.circuits.heads import repeated_random_tokens

    return np.stack([repeated_random_tokens(period, vocab, first_token=0, seed=seed + i)
                     for i in range(PROBE_SEQUENCES)])


def induction_scores(model, probes: np.ndarray) -> np.ndarray:
    """``(layers, heads)`` induction scores of ``model`` by the Circuits lens's detector
    (:func:`explorer.circuits.heads.head_scores`, kind ``induction``), averaged over the ``probes`` sequences."""
    import torch

    from explorer.circuits.heads import head_scores

    with torch.no_grad():
        _, patterns = model(torch.from_numpy(probes))
    attn = torch.stack(patterns, dim=1).float().numpy()  # (probes, layers, heads, seq, seq)
    return np.mean([head_scores(attn[i], probes[i], "induction") for i in range(len(probes))], axis=0)


def half_losses(logits, ids, mask) -> tuple:
    """``(loss, other loss, in-context loss)`` tensors: next-token cross-entropy over all predictions, over the
    unpredictable ones (not in ``mask``) and over the copyable ones (``mask``, see :func:`repeat_mask`)."""
    import torch.nn.functional as F

    per = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (batch, seq-1)
    return per.mean(), per[~mask].mean(), per[mask].mean()


def train(curve: InductionCurve) -> str:
    """Train ``curve.settings`` (e.g. :data:`PINNED`) to the end (see :func:`steps`); returns the status."""
    for _ in steps(curve):
        pass
    return curve.status


def steps(curve: InductionCurve, before_step=lambda: None):
    """Train ``curve.settings``, recording losses and induction scores and yielding the step number after each step;
    ``curve.status`` ends ``done``, or ``stopped`` when the caller closes the generator."""
    try:
        yield from _steps(curve, before_step)
    except GeneratorExit:
        done, total = len(curve.losses), curve.settings["steps"]
        curve.status, curve.message = "stopped", f"Stopped after {done} of {total} steps."
        raise


def _steps(curve: InductionCurve, before_step):
    import torch

    s = curve.settings
    model = build_model(s["vocab"], s["period"], s["d_model"], s["heads"], s["seed"])
    gen = torch.Generator().manual_seed(s["seed"])
    probes = probe_sequences(s["vocab"], s["period"], s["seed"] + 7)
    opt = torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=0.0)
    for step in range(s["steps"]):
        before_step()
        ids, periods, starts = repeated_batch(s["batch_size"], s["vocab"], s["period"], gen)
        mask = repeat_mask(periods, starts, ids.shape[1])
        t0 = time.perf_counter()
        logits, _ = model(ids)
        loss, first, second = half_losses(logits, ids, mask)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        curve.step_s.append(time.perf_counter() - t0)
        curve.losses.append(float(loss.detach()))
        curve.first_half.append(float(first.detach()))
        curve.second_half.append(float(second.detach()))
        if (step + 1) % s["score_every"] == 0 or step == 0 or step + 1 == s["steps"]:
            curve.score_steps.append(step + 1)
            curve.scores.append(induction_scores(model, probes))
        yield step + 1
    curve.status, curve.message = "done", f"Finished {s['steps']} steps."
