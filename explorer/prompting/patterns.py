"""Prompting patterns as prompts, and answers read back out of what the model wrote.

The patterns are the handbook's prompting table: zero-shot (ask directly), few-shot (k worked examples from the
task's ``dev`` split before the question; never the scored item, which is always from ``test``), chain-of-thought
("Let's think step by step", Kojima et al. 2022; Wei et al. 2022), self-consistency (N sampled chains, majority
vote; Wang et al. 2023), system prompt / role (a persona and format rule before the question) and tree of thoughts
(a small search over reasoning steps; Yao et al. 2023, here breadth 2 scored by the model's own log-probability,
see :mod:`explorer.prompting.generate`).

Two forms: plain text (``Question: ...\\nAnswer:``, what a base model continues) and a chat turn through the
tokenizer's chat template (what an instruct model was tuned on). The form is the caller's ``chat_template``.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

from explorer.prompting.tasks import CAPITALS, Item

PATTERNS = ("zero_shot", "few_shot", "chain_of_thought", "self_consistency", "system_role", "tree_of_thoughts")
LABELS = {"zero_shot": "zero-shot", "few_shot": "few-shot", "chain_of_thought": "chain of thought",
          "self_consistency": "self-consistency", "system_role": "system prompt / role",
          "tree_of_thoughts": "tree of thoughts"}
REASONING = ("chain_of_thought", "self_consistency", "tree_of_thoughts")  # patterns that write steps first
NUMERIC = ("arithmetic", "units")
INSTRUCTION = {"arithmetic": "Answer with just the number.", "units": "Answer with just the number.",
               "capitals": "Answer with just the city.", "sentiment": "Answer with one word: positive or negative."}
ROLE = {"arithmetic": "You are a careful calculator. Reply with only the final number.",
        "units": "You are a careful engineer who converts units. Reply with only the final number.",
        "capitals": "You are a geography teacher. Reply with only the name of the city.",
        "sentiment": "You are a sentiment classifier. Reply with exactly one word: positive or negative."}
COT_CUE = "Let's think step by step."
COT_CHAT = " Let's think step by step, then give the final answer on a last line that starts with 'Answer:'."


def check_pattern(pattern: str, task: str) -> str:
    """``pattern`` normalised.

    Raises:
        ValueError: unknown pattern, or ``tree_of_thoughts`` on a task other than arithmetic (its search scores
            reasoning steps, which only the arithmetic items need).
    """
    name = str(pattern or "").strip().lower().replace("-", "_").replace(" ", "_")
    if name not in PATTERNS:
        raise ValueError(f"pattern must be one of {list(PATTERNS)} (got {pattern!r}).")
    if name == "tree_of_thoughts" and task != "arithmetic":
        raise ValueError(f"pattern 'tree_of_thoughts' searches over reasoning steps and is offered on the arithmetic "
                         f"task only (got task {task!r}).")
    return name


def _q(task: str, item: Item) -> str:
    return item.question


def text_prompt(task: str, item: Item, pattern: str, shots: list[Item]) -> str:
    """The plain-text prompt of ``item`` under ``pattern`` (``shots``: the few-shot examples, dev split)."""
    base = f"Question: {_q(task, item)}\nAnswer:"
    if pattern == "few_shot":
        return "".join(f"Question: {s.question}\nAnswer: {s.answer}\n\n" for s in shots) + base
    if pattern in REASONING:
        return f"{base} {COT_CUE}"
    if pattern == "system_role":
        return f"{ROLE[task]}\n\n{base}"
    return base


def chat_messages(task: str, item: Item, pattern: str, shots: list[Item]) -> list[dict]:
    """The chat messages of ``item`` under ``pattern`` (for the tokenizer's chat template)."""
    ask = f"{_q(task, item)} {INSTRUCTION[task]}"
    if pattern == "few_shot":
        turns = []
        for s in shots:
            turns += [{"role": "user", "content": f"{s.question} {INSTRUCTION[task]}"},
                      {"role": "assistant", "content": s.answer}]
        return turns + [{"role": "user", "content": ask}]
    if pattern in REASONING:
        return [{"role": "user", "content": _q(task, item) + COT_CHAT}]
    if pattern == "system_role":
        return [{"role": "system", "content": ROLE[task]}, {"role": "user", "content": _q(task, item)}]
    return [{"role": "user", "content": ask}]


def _fold(text: str) -> str:
    """Lower case without accents (``Bogotá`` -> ``bogota``)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_ANSWER_MARK = re.compile(r"answer\s*(?:is|:|=)", re.IGNORECASE)


def _numbers(text: str) -> list[str]:
    out = []
    for raw in _NUMBER.findall(text):
        value = raw.replace(",", "").rstrip(".")
        try:
            number = float(value)
        except ValueError:
            continue
        out.append(str(int(number)) if number.is_integer() else str(number))
    return out


def extract(task: str, output: str, reasoning: bool) -> str | None:
    """The answer a model's ``output`` gives, in canonical form, or None when it gives none.

    Direct patterns read the first line; reasoning patterns read what follows the last "answer is / Answer:"
    marker, else the whole text, taking the last candidate (the conclusion comes last).
    Numbers: as integers without separators. Sentiment: ``positive`` / ``negative``. Capitals: the capital's
    name from the task's list, whichever is named first (accents and case ignored).
    """
    text = output or ""
    if reasoning:
        marks = list(_ANSWER_MARK.finditer(text))
        segment, last = (text[marks[-1].end():], False) if marks else (text, True)
        segment = segment.strip().split("\n")[0] if marks else segment
    else:
        segment, last = text.strip().split("\n")[0], False
    if task in NUMERIC:
        found = _numbers(segment)
        return (found[-1] if last else found[0]) if found else None
    folded = _fold(segment)
    if task == "sentiment":
        hits = [(m.start(), m.group()) for m in re.finditer(r"positive|negative", folded)]
        return (hits[-1] if last else hits[0])[1] if hits else None
    hits = sorted((folded.find(_fold(c)), c) for _, c in CAPITALS if _fold(c) in folded)
    if hits:
        return hits[-1][1] if last else hits[0][1]
    line = segment.strip().strip(".").strip()
    return line[:60] or None


def is_correct(task: str, extracted: str | None, answer: str) -> bool:
    """True when ``extracted`` (from :func:`extract`) is the item's ``answer`` (accents and case ignored)."""
    return extracted is not None and _fold(str(extracted)).strip() == _fold(answer).strip()


def majority_vote(answers: list[str | None]) -> tuple[str | None, dict[str, int]]:
    """Self-consistency's vote: the most common non-empty answer (ties: the one seen first) and the counts.

    Returns:
        ``(winner or None when no sample gave an answer, {answer: count})``.
    """
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, {}
    best = max(counts.values())
    winner = next(a for a in answers if a is not None and counts[a] == best)
    return winner, dict(counts)
