"""The one-sequence decoding loop (greedy and sampling), recorded step by step, on ``Engine.steps``.

Mirrors ``GenerationMixin._sample``: fp32 last-position logits -> transformers' logits processors in
generate()'s order -> argmax (greedy) or ``torch.multinomial`` on the softmax (sampling, with a private
``torch.Generator`` on the engine's device seeded with the strategy's seed, so a seed reproduces the text and
matches ``torch.manual_seed(seed); model.generate(do_sample=True, ...)`` on the same device). The model is
stepped by :meth:`explorer.core.engine.Engine.steps` (one locked forward pass per token); this module only
chooses and records.

Sources: transformers ``GenerationMixin._sample`` (v5); Holtzman et al. 2020 (the "neural text
degeneration" loops that :func:`loop_start` marks).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from explorer.decoding.processors import build_processors
from explorer.decoding.results import StepRecords

TOP_N = 20
ProgressFn = Callable[[int, int], None]


def loop_start(ids, min_repeat: int = 4) -> int | None:
    """Index of the first token of a repetition loop that runs to the end of ``ids``, or None.

    The tail of ``ids`` is periodic with period ``p`` from index ``s`` when ``ids[k] == ids[k - p]`` for all
    ``k >= s``. A loop needs at least one full repeat of the period and ``min_repeat`` repeated tokens;
    among all periods the earliest start wins. Shape: ``ids`` (n,) ints. Returns the index ``s`` (where
    the repeated copy begins) or None.
    """
    ids = list(ids)
    n = len(ids)
    best = None
    for period in range(1, n // 2 + 1):
        run = 0
        while run < n - period and ids[n - 1 - run] == ids[n - 1 - run - period]:
            run += 1
        if run >= max(period, min_repeat):
            start = n - run
            best = start if best is None else min(best, start)
    return best


class Recorder:
    """Collects :class:`StepRecords` rows while the loop runs (small arrays only, never full distributions)."""

    def __init__(self, stage_names: tuple[str, ...], top_n: int):
        self.stage_names, self.top_n = stage_names, top_n
        self.rows: dict[str, list] = {k: [] for k in ("top_ids", "raw_probs", "stage_probs", "stage_kept",
                                                       "chosen_raw", "chosen_final", "entropy")}

    def add(self, raw_logprobs, stage_scores: list, final_probs, token: int) -> None:
        """Record one step: raw log-probs (vocab,), each stage's scores (vocab,), the final probs (vocab,)."""
        import torch

        raw_probs = raw_logprobs.exp()
        top = torch.topk(raw_logprobs, self.top_n).indices
        self.rows["top_ids"].append(top.cpu().numpy())
        self.rows["raw_probs"].append(raw_probs[top].cpu().numpy())
        probs = [torch.softmax(s, dim=-1) for s in stage_scores]
        self.rows["stage_probs"].append(np.stack([p[top].cpu().numpy() for p in probs])
                                        if probs else np.zeros((0, self.top_n), np.float32))
        self.rows["stage_kept"].append(np.array([int(torch.isfinite(s).sum()) for s in stage_scores], np.int64))
        self.rows["chosen_raw"].append(float(raw_probs[token]))
        self.rows["chosen_final"].append(float(final_probs[token]))
        self.rows["entropy"].append(float(torch.special.entr(raw_probs).sum()))

    def result(self, chosen: list[int], vocab_size: int) -> StepRecords:
        """The rows collected so far as a frozen :class:`StepRecords` (``chosen`` = the picked ids)."""
        r = self.rows
        steps, n_stages = len(chosen), len(self.stage_names)
        return StepRecords(
            top_ids=np.array(r["top_ids"], np.int64).reshape(steps, self.top_n),
            raw_probs=np.array(r["raw_probs"], np.float32).reshape(steps, self.top_n),
            stage_names=self.stage_names,
            stage_probs=np.array(r["stage_probs"], np.float32).reshape(steps, n_stages, self.top_n),
            stage_kept=np.array(r["stage_kept"], np.int64).reshape(steps, n_stages),
            chosen_ids=np.array(chosen, np.int64), chosen_raw_probs=np.array(r["chosen_raw"], np.float32),
            chosen_final_probs=np.array(r["chosen_final"], np.float32),
            entropy_nats=np.array(r["entropy"], np.float32), vocab_size=vocab_size)


class Column:
    """One greedy or sampled sequence's choosing and recording: its processors, its private ``torch.Generator``
    (seeded with the strategy's seed), the ids seen so far and its :class:`Recorder`. :func:`token_loop` drives
    one column with ``Engine.steps``, :func:`token_loops` several with ``Engine.batch_steps``; both call the same
    :meth:`select` and :meth:`accept`, so a column records the same whichever loop runs it."""

    def __init__(self, engine, prompt_ids: list[int], strategy, record: bool = True, top_n: int = TOP_N):
        import torch

        self.strategy, self.device, self.record = strategy, engine.device, record
        self.processors = build_processors(strategy)
        self.generator = None
        if strategy.do_sample:
            self.generator = torch.Generator(device=self.device)
            self.generator.manual_seed(int(strategy.seed))
        self.recorder = Recorder(tuple(label for label, _ in self.processors), top_n) if record else None
        self.seen = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        self.logprobs: list[float] = []
        self.chosen: list[int] = []

    def select(self, cpu_logits, index: int) -> int:
        """Apply the processors to ``cpu_logits`` (vocab,), pick (argmax or a seeded draw) and record the step."""
        import torch

        logits = cpu_logits.to(self.device)[None, :]
        raw_logprobs = torch.log_softmax(logits[0], dim=-1)
        scores, stage_scores = logits, []
        for _, processor in self.processors:
            scores = processor(self.seen, scores)
            if self.record:  # processors return new tensors, so keeping a reference is safe
                stage_scores.append(scores[0])
        if self.strategy.do_sample:
            probs = torch.softmax(scores, dim=-1)
            token = int(torch.multinomial(probs, num_samples=1, generator=self.generator)[0, 0])
        else:
            probs = torch.softmax(scores, dim=-1) if self.record else None
            token = int(torch.argmax(scores, dim=-1)[0])
        if self.recorder is not None:
            self.recorder.add(raw_logprobs, stage_scores, probs[0], token)
        self.logprobs.append(float(raw_logprobs[token]))
        return token

    def accept(self, token: int) -> None:
        """Append the chosen ``token`` to the ids seen (what the next step's penalties look at)."""
        import torch

        self.chosen.append(int(token))
        self.seen = torch.cat([self.seen, torch.tensor([[int(token)]], dtype=torch.long, device=self.device)], dim=-1)

    def result(self, first_logits, seconds: float):
        """``(token_ids, token_logprobs (n,) float32, StepRecords | None, first_logits, seconds)``."""
        records = self.recorder.result(self.chosen, int(first_logits.shape[-1])) if self.recorder else None
        return list(self.chosen), np.array(self.logprobs, np.float32), records, first_logits, seconds


def token_loop(engine, prompt_ids: list[int], strategy, max_new_tokens: int, record: bool = True,
               top_n: int = TOP_N, on_step: ProgressFn | None = None):
    """Greedy or sampled decoding of one sequence: ``engine.steps`` with a recording ``select``.

    Args:
        strategy: a :class:`explorer.decoding.strategies.Strategy`.
        max_new_tokens: tokens to generate.
        on_step: called as ``on_step(generated, max_new_tokens)`` after every token.
    Returns:
        ``(token_ids list[int], token_logprobs np.ndarray (n,) float32, StepRecords | None, first_logits
        np.ndarray (vocab,) float32, seconds float)``. Generation stops after an end-of-sequence token
        (included) or ``max_new_tokens``.
    """
    column = Column(engine, prompt_ids, strategy, record, top_n)
    first_logits = None
    start = time.perf_counter()
    for step in engine.steps(prompt_ids, max_new_tokens, select=column.select, share=True):
        if first_logits is None:
            first_logits = step.logits.numpy()
        column.accept(step.token)
        if on_step is not None:
            on_step(step.index + 1, max_new_tokens)
    return column.result(first_logits, time.perf_counter() - start)


def token_loops(engine, prompt_ids: list[int], strategies, max_new_tokens: int, record: bool = True,
                top_n: int = TOP_N, on_step: ProgressFn | None = None) -> list[tuple]:
    """Several greedy / sampled strategies on one prompt, stepped together as one batch (``Engine.batch_steps``).

    Row ``i`` runs ``strategies[i]`` with its own processors and private generator, so each row's tokens and
    records are those of :func:`token_loop` for that strategy (up to float rounding of the batched pass).

    Returns:
        one :func:`token_loop` tuple per strategy, in order; ``seconds`` is the whole batch's wall time for
        every row (they ran together).
    """
    columns = [Column(engine, prompt_ids, s, record, top_n) for s in strategies]
    first_logits = None
    start = time.perf_counter()
    for step in engine.batch_steps(prompt_ids, len(columns), max_new_tokens,
                                   select=lambda row, logits, index: columns[row].select(logits, index)):
        if first_logits is None:
            first_logits = step.logits[0].numpy()
        for row, token in zip(step.rows, step.tokens):
            columns[row].accept(token)
        if on_step is not None:
            on_step(step.index + 1, max_new_tokens)
    seconds = time.perf_counter() - start
    return [column.result(first_logits, seconds) for column in columns]


def run_token(engine, prompt_ids, strategy, max_new_tokens, on_step=None):
    """The registry loop of greedy and sampling: ``(ids, logprobs, seconds, first_logits, {"steps": records})``."""
    ids, logprobs, records, first_logits, seconds = token_loop(engine, prompt_ids, strategy, max_new_tokens,
                                                               on_step=on_step)
    return ids, logprobs, seconds, first_logits, {"steps": records}
