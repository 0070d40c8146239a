"""Prompting patterns measured: accuracy with a bootstrap interval and tokens spent, per task, model and pattern.

``iter_run`` scores the first ``limit`` held-out items of a task (the same items for every pattern, so patterns
compare on equal ground), yielding each item as it is scored; ``/prompting`` is its JSON. The live run is capped
(``Limits.prompting_max_items``) and says so; ``bench/bench_prompting.py --write`` stores the full tables.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

from explorer.core.config import get_limits
from explorer.core.progress import Progress
from explorer.core.provenance import Provenance, measured
from explorer.prompting import generate as gen
from explorer.prompting import patterns as pat
from explorer.prompting import tasks as task_sets
from explorer.prompting.stats import accuracy_interval

DEFAULT_SHOTS = 3
DEFAULT_SAMPLES = 5
SC_TEMPERATURE = 0.7  # self-consistency samples at a moderate temperature (Wang et al. 2023 use 0.5-0.7)
DIRECT_TOKENS = 12


@dataclass(frozen=True)
class ItemResult:
    """One scored item.

    Attributes:
        id: the item id. prompt: the prompt as the model received it (chat template included when used).
        output: what the model wrote (for self-consistency the first sample; all are in ``samples``).
        extracted: the answer read from the output (None when it gave none). answer: the reference answer.
        correct: ``extracted`` equals ``answer``. tokens: tokens processed for this item (prompt + generated, every
        sample or branch). samples: the sampled chains' answers (self-consistency) or the explored lines' text and
        scores (tree of thoughts); empty for other patterns.
    """

    id: str
    prompt: str
    output: str
    extracted: str | None
    answer: str
    correct: bool
    tokens: int
    samples: tuple = ()

    def to_api(self) -> dict:
        """``{"id", "prompt", "output", "answer", "extracted", "correct", "tokens", "samples"}``."""
        return {"id": self.id, "prompt": self.prompt, "output": self.output, "answer": self.answer,
                "extracted": self.extracted, "correct": bool(self.correct), "tokens": int(self.tokens),
                "samples": list(self.samples)}


@dataclass(frozen=True)
class PromptingResult:
    """A pattern scored on a task.

    Attributes:
        task, model, pattern: what was run. k: few-shot examples used. n_samples: chains per item (self-consistency).
        chat_template: True when prompts went through the model's chat template, False for plain text.
        accuracy: share of items correct, in [0, 1]. interval: its 95 % percentile-bootstrap interval (low, high).
        items: the scored items. tokens: tokens processed in all (prompt + generated). n_available: test items the
        task has. notices: what was capped or defaulted. seconds: wall time. provenance: measured on ``model``.
    """

    task: str
    model: str
    pattern: str
    k: int
    n_samples: int
    chat_template: bool
    accuracy: float
    interval: tuple[float, float]
    items: tuple[ItemResult, ...]
    tokens: int
    n_available: int
    notices: tuple[str, ...] = ()
    seconds: float = 0.0
    provenance: Provenance = field(default_factory=lambda: measured("prompting patterns"))

    def to_api(self) -> dict:
        """``/prompting`` JSON: ``{"accuracy", "interval", "items": [{"prompt", "output", "answer", "correct"}],
        "tokens", "notices"}`` plus what was run."""
        return {"accuracy": self.accuracy, "interval": list(self.interval),
                "items": [i.to_api() for i in self.items], "tokens": int(self.tokens), "notices": list(self.notices),
                "task": self.task, "model": self.model, "pattern": self.pattern, "k": self.k,
                "n_samples": self.n_samples, "chat_template": self.chat_template, "n": len(self.items),
                "n_available": self.n_available, "seconds": round(self.seconds, 3),
                "provenance": self.provenance.to_api()}


def _int(value, name: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number (got {value!r}).") from None
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number (got {value!r}).")
    return int(number)


def resolve_form(engine, chat_template: bool | None) -> tuple[bool, list[str]]:
    """Whether to use the chat template: the caller's choice, else chat for instruct models and text for base ones.

    Returns:
        ``(use_chat, notices)``; a chat request on a model without a template falls back to text, with a notice.
    """
    has_template = bool(getattr(engine.tokenizer, "chat_template", None))
    if chat_template is None:
        return has_template and not getattr(engine.spec, "base_model", False), []
    if bool(chat_template) and not has_template:
        return False, [f"{engine.name} has no chat template: the prompts were fed as plain text."]
    return bool(chat_template), []


def check_settings(task: str, pattern: str, k, n_samples, limit) -> tuple[str, str, int, int, int, list[str]]:
    """Validate and default the run settings.

    Returns:
        ``(task, pattern, k, n_samples, n_items, notices)``.
    Raises:
        ValueError: unknown task or pattern, k or N below 0/1 or past their caps, k past the task's dev pool,
            ``limit`` below 1 or past the task's test items.
    """
    limits = get_limits()
    task = task_sets.check_task(task)
    pattern = pat.check_pattern(pattern, task)
    k, n_samples, notices = _int(k or 0, "k"), _int(n_samples or 1, "n_samples"), []
    pool = len(task_sets.items(task, "dev"))
    if k < 0 or k > limits.prompting_max_shots:
        raise ValueError(f"k must be between 0 and {limits.prompting_max_shots} few-shot examples "
                         f"(LLM_EXPLORER_PROMPTING_MAX_SHOTS; got {k}).")
    if k > pool:
        raise ValueError(f"k={k} asks for more examples than the {task} task's dev split holds ({pool}).")
    if n_samples < 1 or n_samples > limits.prompting_max_samples:
        raise ValueError(f"n_samples must be between 1 and {limits.prompting_max_samples} "
                         f"(LLM_EXPLORER_PROMPTING_MAX_SAMPLES; got {n_samples}).")
    if pattern == "few_shot" and k == 0:
        k = min(DEFAULT_SHOTS, pool)
        notices.append(f"few-shot with k=0 would be zero-shot: k={k} examples from the dev split were used.")
    elif pattern != "few_shot" and k:
        notices.append(f"k={k} applies to few-shot only and was ignored.")
        k = 0
    if pattern == "self_consistency" and n_samples == 1:
        n_samples = DEFAULT_SAMPLES
        notices.append(f"self-consistency needs several chains: N={n_samples} samples per item were drawn.")
    elif pattern != "self_consistency" and n_samples != 1:
        notices.append(f"n_samples={n_samples} applies to self-consistency only and was ignored.")
        n_samples = 1
    available = len(task_sets.items(task))
    if limit is None or limit == "":
        n = min(limits.prompting_max_items, available)
        notices.append(f"Live run on a capped sample: the first {n} of {available} held-out items "
                       f"(LLM_EXPLORER_PROMPTING_MAX_ITEMS); the stored table scores them all.")
    else:
        n = _int(limit, "limit")
        if n < 1:
            raise ValueError(f"limit must be at least 1 item (got {n}).")
        if n > available:
            raise ValueError(f"limit={n} asks for more items than the {task} task's test split holds ({available}).")
        if n > limits.prompting_max_items:
            notices.append(f"limit={n} capped to {limits.prompting_max_items} items "
                           f"(LLM_EXPLORER_PROMPTING_MAX_ITEMS).")
            n = limits.prompting_max_items
    return task, pattern, k, n_samples, n, notices


def prompt_ids(engine, task: str, item, pattern: str, shots: list, chat: bool) -> tuple[list[int], str]:
    """Token ids and display text of ``item``'s prompt under ``pattern`` in the chosen form."""
    if chat:
        messages = pat.chat_messages(task, item, pattern, shots)
        ids = engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                   return_dict=False)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        engine.check_length(len(ids))
        return ids, engine.tokenizer.decode(ids)
    text = pat.text_prompt(task, item, pattern, shots)
    return engine.encode(text), text


def score_item(engine, task: str, item, pattern: str, shots: list, chat: bool, n_samples: int = 1,
               seed: int = 0, index: int = 0) -> ItemResult:
    """Run ``pattern`` on one item and judge the answer (see :func:`explorer.prompting.patterns.extract`)."""
    limits = get_limits()
    ids, shown = prompt_ids(engine, task, item, pattern, shots, chat)
    reasoning = pattern in pat.REASONING
    stop = (gen.STOP_EOS if chat else gen.STOP_BLOCK) if reasoning else gen.STOP_LINE
    samples: tuple = ()
    if pattern == "self_consistency":
        outs = [gen.continue_text(engine, ids, limits.prompting_reasoning_tokens, stop,
                                  generator=gen.private_generator(seed * 1_000_003 + index * 101 + s),
                                  temperature=SC_TEMPERATURE) for s in range(n_samples)]
        answers = [pat.extract(task, o.text, True) for o in outs]
        extracted, _ = pat.majority_vote(answers)
        output, tokens, samples = outs[0].text, sum(o.tokens for o in outs), tuple(answers)
    elif pattern == "tree_of_thoughts":
        best, explored, tokens = gen.tree_of_thoughts(engine, ids, line_tokens=24)
        output = best.text
        extracted = pat.extract(task, output, True)
        samples = tuple(f"{t.score:+.3f}  {t.text.strip()[-80:]}" for t in explored)
    else:
        cap = limits.prompting_reasoning_tokens if reasoning else DIRECT_TOKENS
        out = gen.continue_text(engine, ids, cap, stop)
        output, tokens = out.text, out.tokens
        extracted = pat.extract(task, output, reasoning)
    return ItemResult(id=item.id, prompt=shown, output=output, extracted=extracted, answer=item.answer,
                      correct=pat.is_correct(task, extracted, item.answer), tokens=int(tokens), samples=samples)


def _result(engine, task, pattern, k, n_samples, chat, scored, available, notices, start) -> PromptingResult:
    accuracy, low, high = accuracy_interval([i.correct for i in scored])
    return PromptingResult(task=task, model=engine.name, pattern=pattern, k=k, n_samples=n_samples,
                           chat_template=chat, accuracy=accuracy, interval=(low, high), items=tuple(scored),
                           tokens=sum(i.tokens for i in scored), n_available=available, notices=tuple(notices),
                           seconds=time.perf_counter() - start, provenance=measured(
                               f"{pat.LABELS[pattern]} on {len(scored)} {task} items, greedy over Engine.steps", engine.name))


def iter_run(task: str = "capitals", model: str | None = None, pattern: str = "zero_shot", k: int = 0,
             n_samples: int = 1, limit: int | None = None, chat_template: bool | None = None, seed: int = 0,
             stop=None, engine=None) -> Iterator:
    """Score ``pattern`` on ``task``'s first held-out items; yields Progress (with the partial result) per item,
    then the :class:`PromptingResult`.

    Args:
        task: one of :data:`explorer.prompting.tasks.TASKS`. model: an embedded model name or Hub id.
        pattern: one of :data:`explorer.prompting.patterns.PATTERNS`.
        k: few-shot examples (few_shot only; 0 picks 3). n_samples: chains per item (self_consistency; 1 picks 5).
        limit: items to score (default and cap ``Limits.prompting_max_items``).
        chat_template: True: prompts through the chat template; False: plain text; None: chat for instruct
            models, text for base models. seed: seeds the self-consistency samplers (private generators).
        stop: a flag with ``is_set()``; when set the run ends early with the items scored so far, said in notices.
        engine: overrides the engine named by ``model`` (tests pass a tiny model).
    Raises:
        ValueError: see :func:`check_settings`; a prompt over the model's caps.
    """
    from explorer.core.engine import get_engine

    task, pattern, k, n_samples, n, notices = check_settings(task, pattern, k, n_samples, limit)
    engine = engine or get_engine(model or None)
    chat, form_notices = resolve_form(engine, chat_template)
    notices += form_notices
    items = task_sets.items(task)[:n]
    shots = task_sets.items(task, "dev")[:k]
    available = len(task_sets.items(task))
    start, scored = time.perf_counter(), []
    yield Progress(0.0, f"{pat.LABELS[pattern]} on {task}: item 1 of {n}")
    for index, item in enumerate(items):
        if stop is not None and stop.is_set():
            notices.append(f"Stopped after {len(scored)} of {n} items: the accuracy covers those only.")
            break
        scored.append(score_item(engine, task, item, pattern, shots, chat, n_samples, seed, index))
        partial = _result(engine, task, pattern, k, n_samples, chat, scored, available, notices, start)
        yield Progress((index + 1) / n, f"{pat.LABELS[pattern]} on {task}: {index + 1} of {n} items scored",
                       partial=partial)
    yield _result(engine, task, pattern, k, n_samples, chat, scored, available, notices, start)
