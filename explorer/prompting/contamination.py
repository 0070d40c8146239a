"""Benchmark contamination, caused and caught: a LoRA run on half of a task's test items inflates the benchmark
score on exactly those items, and Min-K% Prob tells the leaked items from the unseen ones.

The demo splits the first ``limit`` test items into leaked (even positions) and unseen (odd positions), scores
both as multiple choice (:mod:`explorer.prompting.benchmark`) and by Min-K% Prob (Shi et al. 2023,
:func:`explorer.next_token.min_k.min_k_score`: the mean log-probability of the k % least likely tokens of the
item's answer span, the tokens the leak trains on; higher means more familiar), then trains a LoRA adapter (the Fine-tuning
machinery, owned by the caller's session) on the leaked items' question/answer pairs and scores both halves again
with the adapter on. The shared model never changes; the adapter stays private to the session and can be scored
again through ``/benchmark(..., adapter=<run id>)``. Detection is the AUROC of Min-K% for leaked vs unseen
(:func:`explorer.hallucination.evaluation.auroc`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.core.config import get_limits
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.prompting import benchmark as bench
from explorer.prompting import tasks as task_sets
from explorer.prompting.lens import _int
from explorer.prompting.patterns import INSTRUCTION
from explorer.prompting.stats import accuracy_interval

MIN_K = 0.2  # the fraction of least likely tokens Min-K% averages (Shi et al. report k = 20 % as a good default)
DEFAULT_ITEMS = 24


@dataclass(frozen=True)
class Split:
    """One half of the items, before and after the leak.

    Attributes:
        ids: item ids. acc_before, acc_after: multiple-choice accuracy (base, adapter on) with
        interval_before, interval_after (95 % bootstrap). min_k_before, min_k_after: Min-K% Prob per item (nats,
        ``(n,)``, higher = more familiar).
    """

    ids: tuple[str, ...]
    acc_before: float
    acc_after: float
    interval_before: tuple[float, float]
    interval_after: tuple[float, float]
    min_k_before: np.ndarray
    min_k_after: np.ndarray

    def to_api(self) -> dict:
        """JSON of the split."""
        return {"ids": list(self.ids), "acc_before": self.acc_before, "acc_after": self.acc_after,
                "interval_before": list(self.interval_before), "interval_after": list(self.interval_after),
                "min_k_before": [round(float(v), 5) for v in self.min_k_before],
                "min_k_after": [round(float(v), 5) for v in self.min_k_after]}


@dataclass(frozen=True)
class ContaminationResult:
    """The leak and its detection.

    Attributes:
        task, model: what was run. run_id: the session's LoRA run trained on the leaked items (for ``/benchmark``).
        steps: optimiser steps trained. final_loss: its last training loss (nats per token).
        leaked, unseen: the two halves (:class:`Split`). auroc_before, auroc_after: how well Min-K% Prob separates
        leaked from unseen items before and after the leak (0.5 = chance). notices. seconds. provenance.
    """

    task: str
    model: str
    run_id: str
    steps: int
    final_loss: float
    leaked: Split
    unseen: Split
    auroc_before: float
    auroc_after: float
    notices: tuple[str, ...] = ()
    seconds: float = 0.0
    provenance: Provenance = field(default_factory=lambda: measured("contamination demo"))

    @property
    def inflation(self) -> float:
        """Accuracy gained on the leaked items minus accuracy gained on the unseen ones (points in [−1, 1])."""
        return (self.leaked.acc_after - self.leaked.acc_before) - (self.unseen.acc_after - self.unseen.acc_before)

    def to_api(self) -> dict:
        """``/contamination`` JSON."""
        return {"task": self.task, "model": self.model, "run_id": self.run_id, "steps": self.steps,
                "final_loss": self.final_loss, "leaked": self.leaked.to_api(), "unseen": self.unseen.to_api(),
                "auroc_before": self.auroc_before, "auroc_after": self.auroc_after, "inflation": self.inflation,
                "min_k": MIN_K, "notices": list(self.notices), "seconds": round(self.seconds, 3),
                "provenance": self.provenance.to_api()}


def item_messages(item, task: str) -> list[dict]:
    """The item as the leak writes it: the question as a chat turn and its answer as the reply."""
    return [{"role": "user", "content": f"{item.question} {INSTRUCTION[task]}"},
            {"role": "assistant", "content": item.answer}]


def min_k_scores(engine, items, task: str, model=None, k: float = MIN_K) -> np.ndarray:
    """Min-K% Prob of each item's trained span under ``model`` (default the base); ``(n,)`` nats.

    The span is what the leak trains on (the reply: answer and end-of-turn marker, picked by the Fine-tuning
    tokenizer's response mask), scored in its chat context; the question tokens are context, not evidence,
    because supervised fine-tuning never trains them.
    """
    import torch

    from explorer.lora.data import tokenize_example
    from explorer.next_token.min_k import min_k_score

    out = []
    for item in items:
        example = tokenize_example(engine.tokenizer, item_messages(item, task), get_limits().max_prompt_tokens)
        ids = [int(t) for t in example.input_ids]
        logits = engine.forward(ids, model=model).logits[0].float().cpu()
        logprob = torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:]).unsqueeze(-1))[:, 0]
        trained = np.flatnonzero(example.labels[1:] != -100)
        out.append(min_k_score(logprob.numpy()[trained], k)[0])
    return np.asarray(out, dtype=np.float64)


def _acc(engine, task, items, model_adapter_id, owner):
    result = run_to_end(bench.iter_run(task, adapter=model_adapter_id, owner=owner, items=items,
                                       chat_template=True, engine=engine))
    correct = [i.pick == i.label for i in result.items]
    acc, lo, hi = accuracy_interval(correct)
    return acc, (lo, hi)


def iter_run(task: str = "capitals", model: str | None = None, owner: str = "", steps: int = 40, limit=None,
             seed: int = 0, chat_template: bool = True, stop=None, engine=None) -> Iterator:
    """Leak half of ``task``'s first ``limit`` test items into a LoRA run and measure inflation and detection.

    Yields Progress (scoring, then each training step), then a :class:`ContaminationResult`.

    Args:
        task: a task name. model: the base model. owner: the session that owns the LoRA run (required).
        steps: optimiser steps (1 .. ``Limits.contamination_max_steps``). limit: items (even count, 4 .. 52;
            default 24). seed: the LoRA run's seed. chat_template: the leak is written as chat turns (the
            Fine-tuning machinery trains on the chat template); False is refused for that reason.
        stop: a flag with ``is_set()``; stops the LoRA run, and the result says it was cut short.
    Raises:
        ValueError: unknown task, steps or limit out of range, no owner, ``chat_template`` False.
    """
    from explorer import lora
    from explorer.core.engine import get_engine
    from explorer.hallucination.evaluation import auroc
    from explorer.lora.infer import AdaptedModel

    task = task_sets.check_task(task)
    cap = get_limits().contamination_max_steps
    steps = _int(steps, "steps")
    if not 1 <= steps <= cap:
        raise ValueError(f"steps must be between 1 and {cap} (LLM_EXPLORER_CONTAMINATION_MAX_STEPS; got {steps}).")
    available = task_sets.items(task)
    n = DEFAULT_ITEMS if limit in (None, "") else _int(limit, "limit")
    if not 4 <= n <= len(available):
        raise ValueError(f"limit must be between 4 and the {len(available)} test items of {task} (got {n}).")
    if not chat_template:
        raise ValueError("chat_template=False is not offered: the leak is trained as chat turns by the Fine-tuning "
                         "machinery, so it is scored as chat turns too.")
    if not owner:
        raise ValueError("owner: no session id (reload the page); the leaked adapter belongs to one session.")
    engine = engine or get_engine(model or None)
    start, notices = time.perf_counter(), []
    items = available[:n - n % 2]
    leaked, unseen = items[0::2], items[1::2]
    yield Progress(0.02, "scoring every item on the base model")
    before = {name: _acc(engine, task, part, None, owner) for name, part in (("leaked", leaked), ("unseen", unseen))}
    mk_before = {name: min_k_scores(engine, part, task) for name, part in (("leaked", leaked), ("unseen", unseen))}
    yield Progress(0.1, "training a LoRA adapter on the leaked test items")
    dataset = [{"messages": item_messages(i, task)} for i in leaked]
    run = lora.start_run(owner, dataset, {"steps": steps, "seed": int(seed), "model": engine.name,
                                          "batch_size": min(4, len(dataset)), "warmup_steps": 1},
                         dataset_name=f"leaked {task} test items", engine=engine)
    while run.thread is not None and run.thread.is_alive():
        if stop is not None and stop.is_set():
            lora.stop(owner)
            notices.append("Stopped during training: the adapter has fewer steps than asked.")
            break
        snap = lora.wait(run, timeout_s=0.5)
        yield Progress(0.1 + 0.75 * snap.steps_done / max(snap.total_steps, 1),
                       f"LoRA on leaked items: step {snap.steps_done} of {snap.total_steps}")
    snap = lora.wait(run)
    if snap.status == "failed" or run.peft_model is None:
        raise ValueError(f"The LoRA run failed: {snap.message}")
    yield Progress(0.9, "scoring every item again with the adapter on")
    adapted = AdaptedModel(run)
    after = {name: _acc(engine, task, part, run.run_id, owner) for name, part in (("leaked", leaked),
                                                                                  ("unseen", unseen))}
    mk_after = {name: min_k_scores(engine, part, task, model=adapted) for name, part in (("leaked", leaked),
                                                                                         ("unseen", unseen))}

    def split(name, part):
        return Split(ids=tuple(i.id for i in part), acc_before=before[name][0], acc_after=after[name][0],
                     interval_before=before[name][1], interval_after=after[name][1], min_k_before=mk_before[name],
                     min_k_after=mk_after[name])

    labels = [1] * len(leaked) + [0] * len(unseen)
    result = ContaminationResult(
        task=task, model=engine.name, run_id=run.run_id, steps=snap.steps_done,
        final_loss=float(snap.loss[-1]) if snap.steps_done else float("nan"), leaked=split("leaked", leaked),
        unseen=split("unseen", unseen),
        auroc_before=float(auroc(labels, np.concatenate([mk_before["leaked"], mk_before["unseen"]]))),
        auroc_after=float(auroc(labels, np.concatenate([mk_after["leaked"], mk_after["unseen"]]))),
        notices=tuple(notices + list(snap.notices)), seconds=time.perf_counter() - start,
        provenance=measured(f"LoRA on {len(leaked)} leaked {task} test items, {snap.steps_done} steps; "
                            f"log-likelihood scoring and Min-K% Prob (k = {MIN_K:.0%})", engine.name))
    yield result
