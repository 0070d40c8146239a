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
    import torch

    processors = build_processors(strategy)
    device = engine.device
    generator = None
    if strategy.do_sample:
        generator = torch.Generator(device=device)
        generator.manual_seed(int(strategy.seed))
    recorder = Recorder(tuple(label for label, _ in processors), top_n) if record else None
    seen = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    logprobs: list[float] = []

    def select(cpu_logits, index: int) -> int:
        logits = cpu_logits.to(device)[None, :]
        raw_logprobs = torch.log_softmax(logits[0], dim=-1)
        scores, stage_scores = logits, []
        for _, processor in processors:
            scores = processor(seen, scores)
            if record:  # processors return new tensors, so keeping a reference is safe
                stage_scores.append(scores[0])
        if strategy.do_sample:
            probs = torch.softmax(scores, dim=-1)
            token = int(torch.multinomial(probs, num_samples=1, generator=generator)[0, 0])
        else:
            probs = torch.softmax(scores, dim=-1) if record else None
            token = int(torch.argmax(scores, dim=-1)[0])
        if recorder is not None:
            recorder.add(raw_logprobs, stage_scores, probs[0], token)
        logprobs.append(float(raw_logprobs[token]))
        return token

    chosen, first_logits = [], None
    start = time.perf_counter()
    for step in engine.steps(prompt_ids, max_new_tokens, select=select):
        if first_logits is None:
            first_logits = step.logits.numpy()
        chosen.append(step.token)
        seen = torch.cat([seen, torch.tensor([[step.token]], dtype=torch.long, device=device)], dim=-1)
        if on_step is not None:
            on_step(step.index + 1, max_new_tokens)
    seconds = time.perf_counter() - start
    records = recorder.result(chosen, int(first_logits.shape[-1])) if recorder is not None else None
    return chosen, np.array(logprobs, np.float32), records, first_logits, seconds


def run_token(engine, prompt_ids, strategy, max_new_tokens, on_step=None):
    """The registry loop of greedy and sampling: ``(ids, logprobs, seconds, first_logits, {"steps": records})``."""
    ids, logprobs, records, first_logits, seconds = token_loop(engine, prompt_ids, strategy, max_new_tokens,
                                                               on_step=on_step)
    return ids, logprobs, seconds, first_logits, {"steps": records}
