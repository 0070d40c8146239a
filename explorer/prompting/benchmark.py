"""Benchmark scoring as lm-evaluation-harness does it: multiple choice by log-likelihood.

For each item the context is the question (``Question: ...\\nAnswer:`` as plain text, or the question as a chat
turn) and each of the four options is a continuation (`` <option>`` after plain text). The model's
log-likelihood of each continuation given the context is summed over its tokens; **acc** picks the option with the
highest sum, **acc_norm** the highest sum per byte of the option's text (lm-evaluation-harness's length
normalisation, which stops long options from losing just for having more tokens). Tokenisation follows the harness:
the context and the whole string are encoded, and the continuation is the whole's tokens after the context's.
Intervals: percentile bootstrap over items (:mod:`explorer.prompting.stats`).

Sources: Gao et al., lm-evaluation-harness (``loglikelihood`` requests, ``acc`` / ``acc_norm``); Hendrycks et al.
2021 (MMLU) for the format.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.core.config import get_limits
from explorer.core.progress import Progress
from explorer.core.provenance import Provenance, measured
from explorer.prompting import tasks as task_sets
from explorer.prompting.lens import _int, resolve_form
from explorer.prompting.patterns import INSTRUCTION
from explorer.prompting.stats import accuracy_interval

# The handbook's benchmark table (what each benchmark tests and what a high score means), shown beside ours.
HANDBOOK_BENCHMARKS = (
    ("MMLU", "57 academic subjects (science, law, maths, history)", "broad factual knowledge"),
    ("HumanEval / MBPP", "Python functions from docstrings", "code that runs correctly"),
    ("GSM8K", "grade-school maths word problems", "multi-step arithmetic reasoning"),
    ("MATH", "competition mathematics (AMC, AIME)", "hard mathematical reasoning"),
    ("BIG-Bench Hard", "tasks that stumped earlier models", "complex reasoning and planning"),
    ("HellaSwag", "commonsense story completion", "physical and social common sense"),
    ("TruthfulQA", "questions built on common misconceptions", "resisting popular falsehoods"),
    ("LMSYS Chatbot Arena", "human votes between two models (Elo)", "what people prefer"),
    ("SWE-bench", "real GitHub issues, fixed with code", "real software engineering"),
)


@dataclass(frozen=True)
class BenchmarkItem:
    """One scored item: its options' summed log-likelihoods (nats) and byte lengths, the picks and the label."""

    id: str
    question: str
    options: tuple[str, ...]
    logliks: tuple[float, ...]
    option_bytes: tuple[int, ...]
    label: int

    @property
    def pick(self) -> int:
        """Index of the option with the highest log-likelihood (acc)."""
        return int(np.argmax(self.logliks))

    @property
    def pick_norm(self) -> int:
        """Index of the option with the highest log-likelihood per byte (acc_norm)."""
        return int(np.argmax(np.asarray(self.logliks) / np.asarray(self.option_bytes)))


@dataclass(frozen=True)
class BenchmarkResult:
    """A task scored as multiple choice.

    Attributes:
        task, model: what was scored. adapter: the LoRA run id whose adapter was on, or None. chat_template: form.
        acc, acc_norm: accuracies in [0, 1]; interval, interval_norm: their 95 % bootstrap intervals.
        items: per item. notices: what was capped. seconds: wall time. provenance: measured on ``model``.
    """

    task: str
    model: str
    adapter: str | None
    chat_template: bool
    acc: float
    acc_norm: float
    interval: tuple[float, float]
    interval_norm: tuple[float, float]
    items: tuple[BenchmarkItem, ...]
    notices: tuple[str, ...] = ()
    seconds: float = 0.0
    provenance: Provenance = field(default_factory=lambda: measured("benchmark scoring"))

    @property
    def n(self) -> int:
        """Items scored."""
        return len(self.items)

    def to_api(self) -> dict:
        """``/benchmark`` JSON: ``{"acc", "acc_norm", "interval", "n", "notices"}`` plus the norm interval, what
        was scored and each item's log-likelihoods."""
        return {"acc": self.acc, "acc_norm": self.acc_norm, "interval": list(self.interval),
                "interval_norm": list(self.interval_norm), "n": self.n, "notices": list(self.notices),
                "task": self.task, "model": self.model, "adapter": self.adapter, "chat_template": self.chat_template,
                "items": [{"id": i.id, "options": list(i.options), "logliks": [round(v, 5) for v in i.logliks],
                           "label": i.label, "pick": i.pick, "pick_norm": i.pick_norm} for i in self.items],
                "seconds": round(self.seconds, 3), "provenance": self.provenance.to_api()}


def context_ids(engine, question: str, task: str, chat: bool) -> tuple[list[int], str]:
    """The context's token ids and the string the options follow (``""`` for chat, where options start a turn)."""
    if chat:
        ids = engine.tokenizer.apply_chat_template([{"role": "user", "content": f"{question} {INSTRUCTION[task]}"}],
                                                   add_generation_prompt=True, tokenize=True, return_dict=False)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids), ""
    text = f"Question: {question}\nAnswer:"
    return engine.encode(text), text


def continuation_ids(engine, context_text: str, context: list[int], option: str, chat: bool) -> list[int]:
    """The option's tokens after the context, split as lm-evaluation-harness does (whole minus context)."""
    if chat:
        return list(engine.tokenizer(option, add_special_tokens=False)["input_ids"])
    whole = engine.encode(context_text + " " + option)
    if whole[:len(context)] == context:
        return whole[len(context):]
    return list(engine.tokenizer(" " + option, add_special_tokens=False)["input_ids"])


def option_logliks(engine, context: list[int], continuations: list[list[int]], model=None) -> np.ndarray:
    """Summed log-likelihood (nats) of each continuation after ``context``, all options in one padded pass.

    Rows are ``context + continuation``, right-padded with an attention mask; a causal model's logits at the real
    positions do not depend on the padding after them.

    Returns:
        ``(n_options,)`` float64.
    """
    import torch

    rows = [list(context) + list(c) for c in continuations]
    width = max(len(r) for r in rows)
    pad = engine.tokenizer.pad_token_id if engine.tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long)
    output = engine.forward(ids, model=model, attention_mask=mask.to(engine.device))
    logprobs = torch.log_softmax(output.logits.float().cpu(), dim=-1)
    out = []
    for row, cont in enumerate(continuations):
        start = len(context)
        positions = torch.arange(start - 1, start - 1 + len(cont))
        out.append(float(logprobs[row, positions, torch.tensor(cont)].sum()))
    return np.asarray(out, dtype=np.float64)


def adapter_model(adapter: str | None, owner: str, engine):
    """The LoRA run ``adapter`` of session ``owner`` as a model for ``engine.forward``, or None.

    Raises:
        ValueError: unknown run id or another session's run (named ``adapter``), or a run on another base model.
    """
    if adapter in (None, ""):
        return None
    from explorer import lora
    from explorer.lora.infer import AdaptedModel

    try:
        run = lora.get_run(str(adapter), owner)
    except ValueError as exc:
        raise ValueError(f"adapter: {exc}") from None
    if run.engine is not engine:
        raise ValueError(f"adapter {adapter!r} was trained on {run.engine.name}, not on {engine.name}: pick that "
                         f"model to score it.")
    return AdaptedModel(run)


def iter_run(task: str = "capitals", model: str | None = None, adapter: str | None = None, owner: str = "",
             limit: int | None = None, chat_template: bool | None = None, items=None, stop=None,
             engine=None) -> Iterator:
    """Score ``task``'s held-out items as multiple choice; yields Progress per item, then :class:`BenchmarkResult`.

    Args:
        task: a task name. model: an embedded model or Hub id (ignored for the engine when ``engine`` is given).
        adapter: a LoRA run id of session ``owner`` whose adapter scores instead of the base model.
        limit: items (default and cap ``Limits.benchmark_max_items``). chat_template: see
            :func:`explorer.prompting.lens.resolve_form`. items: score these items instead (the contamination demo).
        stop: a flag with ``is_set()``; ends early with what was scored, said in notices.
    Raises:
        ValueError: unknown task, bad limit, another session's adapter.
    """
    from explorer.core.engine import get_engine

    task = task_sets.check_task(task)
    notices = []
    if items is None:
        available = task_sets.items(task)
        cap = get_limits().benchmark_max_items
        n = min(cap, len(available)) if limit in (None, "") else _int(limit, "limit")
        if n < 1 or n > len(available):
            raise ValueError(f"limit must be between 1 and the {len(available)} test items of {task} (got {n}).")
        if n > cap:
            notices.append(f"limit={n} capped to {cap} items (LLM_EXPLORER_BENCHMARK_MAX_ITEMS).")
            n = cap
        items = available[:n]
    engine = engine or get_engine(model or None)
    model_adapter = adapter_model(adapter, owner, engine)
    chat, form_notices = resolve_form(engine, chat_template)
    notices += form_notices
    start, scored = time.perf_counter(), []
    for index, item in enumerate(items):
        if stop is not None and stop.is_set():
            notices.append(f"Stopped after {len(scored)} of {len(items)} items.")
            break
        context, context_text = context_ids(engine, item.question, task, chat)
        conts = [continuation_ids(engine, context_text, context, option, chat) for option in item.options]
        logliks = option_logliks(engine, context, conts, model=model_adapter)
        prefix = "" if chat else " "
        scored.append(BenchmarkItem(id=item.id, question=item.question, options=item.options,
                                    logliks=tuple(float(v) for v in logliks),
                                    option_bytes=tuple(len((prefix + o).encode("utf-8")) for o in item.options),
                                    label=item.label))
        yield Progress((index + 1) / len(items), f"scored {index + 1} of {len(items)} items")
    acc, lo, hi = accuracy_interval([i.pick == i.label for i in scored])
    acc_n, lo_n, hi_n = accuracy_interval([i.pick_norm == i.label for i in scored])
    source = (f"log-likelihood of each option, {len(scored)} {task} items"
              + (f", LoRA adapter {adapter}" if adapter else ""))
    yield BenchmarkResult(task=task, model=engine.name, adapter=str(adapter) if adapter else None,
                          chat_template=chat, acc=acc, acc_norm=acc_n, interval=(lo, hi), interval_norm=(lo_n, hi_n),
                          items=tuple(scored), notices=tuple(notices), seconds=time.perf_counter() - start,
                          provenance=measured(source, engine.name))
