"""Needle in a haystack: a fact placed at a depth of a long filler, then a question that asks for it.

Following Kamradt's "needle in a haystack" test (2023) and Liu et al. 2023, "Lost in the Middle: How Language
Models Use Long Contexts" (TACL 2024): retrieval is often worse when the fact sits in the middle of the context.
Each cell builds ``[bos] filler[:k] needle filler[k:] question`` of about ``length`` tokens with the needle after
the sentence nearest ``depth`` (0 = start, 1 = end), then steps the model with :meth:`Engine.steps` through the
answer's tokens: at every step the greedy choice is recorded (the cell is correct when greedy decoding produces
the answer exactly, i.e. what a greedy generation would print) and the answer token is fed, so the answer's
log-probability ``sum_j log P(a_j | prompt, a_<j)`` is measured in the same passes.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_float, check_int, require_causal
from explorer.next_token import stored
from explorer.next_token.texts import LONG_DOCUMENT, NEEDLE, NEEDLE_ANSWER, NEEDLE_QUESTION

MIN_LENGTH = 64
METRIC = "accuracy"


@dataclass(frozen=True)
class NeedleCell:
    """One (length, depth) trial.

    Attributes:
        length: requested prompt length (tokens); ``tokens`` is the built prompt's actual length (<= length).
        depth: where the needle sits, 0..1 of the filler (sentence boundaries).
        correct: greedy decoding reproduces the answer exactly.
        answer_logprob: ``sum_j log P(answer_j | prompt, answer_<j)`` (nats).
        generated: the greedy tokens up to and including the first one that differs from the answer.
        ms: wall time of the cell's passes (ms).
    """

    length: int
    tokens: int
    depth: float
    correct: bool
    answer_logprob: float
    generated: str
    ms: float

    def to_api(self) -> dict:
        """JSON form."""
        return {"length": self.length, "tokens": self.tokens, "depth": self.depth, "correct": self.correct,
                "answer_logprob": self.answer_logprob, "generated": self.generated, "ms": self.ms}


@dataclass(frozen=True)
class NeedleResult:
    """A depth x length grid of retrieval results.

    Attributes:
        model: model name.
        lengths: prompt lengths (tokens), ascending.
        depths: needle depths in [0, 1].
        cells: one :class:`NeedleCell` per (length, depth), length-major.
        provenance: measured now, or stored from the bench.
        notices: what was capped.
    """

    model: str
    lengths: tuple[int, ...]
    depths: tuple[float, ...]
    cells: tuple[NeedleCell, ...]
    provenance: Provenance = field(default_factory=lambda: measured("engine steps"))
    notices: tuple[str, ...] = ()

    @property
    def grid(self) -> np.ndarray:
        """Accuracy (0 or 1 per cell) ``(len(lengths), len(depths))``; NaN where a cell is missing."""
        return self._grid(lambda c: float(c.correct))

    @property
    def logprob_grid(self) -> np.ndarray:
        """Answer log-probability (nats) ``(len(lengths), len(depths))``."""
        return self._grid(lambda c: c.answer_logprob)

    def _grid(self, value) -> np.ndarray:
        grid = np.full((len(self.lengths), len(self.depths)), np.nan)
        for cell in self.cells:
            grid[self.lengths.index(cell.length), self.depths.index(cell.depth)] = value(cell)
        return grid

    def verdict(self) -> str:
        """Plain words: does this model show "lost in the middle" on this grid?"""
        depths = np.asarray(self.depths)
        ends, middle = (depths <= 0.1) | (depths >= 0.9), (depths >= 0.25) & (depths <= 0.75)
        if not ends.any() or not middle.any():
            return "Needs depths at an end (0 or 1) and in the middle (0.25-0.75) to say whether it is lost in the middle."
        acc, lp = self.grid, self.logprob_grid
        missing = int(np.isnan(acc).sum())
        if np.isnan(acc[:, ends]).all() or np.isnan(acc[:, middle]).all():
            return f"Partial grid ({acc.size - missing} of {acc.size} cells): not enough cells for a verdict yet."
        prefix = f"Partial grid ({acc.size - missing} of {acc.size} cells). " if missing else ""
        acc_ends, acc_mid = np.nanmean(acc[:, ends]), np.nanmean(acc[:, middle])
        lp_ends, lp_mid = np.nanmean(lp[:, ends]), np.nanmean(lp[:, middle])
        numbers = (f"accuracy {acc_ends:.0%} with the needle at the start or end vs {acc_mid:.0%} in the middle; "
                   f"answer log-probability {lp_ends:.2f} vs {lp_mid:.2f} nats")
        if acc_ends == 0 and acc_mid == 0:
            return (f"{prefix}{self.model} retrieves the needle at no depth in this grid, so lost in the middle "
                    f"cannot show in accuracy ({numbers}).")
        shows = acc_mid < acc_ends - 0.1 or (acc_mid <= acc_ends and lp_mid < lp_ends - 0.5)
        word = "shows" if shows else "does not show"
        return f"{prefix}Lost in the middle {word} on {self.model} in this grid: {numbers}."

    def to_api(self) -> dict:
        """JSON form of ``/needle``: ``{"grid", "lengths", "depths", "metric", ...}``."""
        clean = lambda g: [[None if np.isnan(v) else float(v) for v in row] for row in g]  # noqa: E731
        return {"model": self.model, "grid": clean(self.grid), "lengths": list(self.lengths),
                "depths": list(self.depths), "metric": METRIC, "answer_logprob": clean(self.logprob_grid),
                "cells": [c.to_api() for c in self.cells], "verdict": self.verdict(),
                "notices": list(self.notices), "provenance": self.provenance.to_api()}


def _sentences() -> list[str]:
    text = " ".join(part.strip() for part in LONG_DOCUMENT.split("\n\n"))
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def build_prompt(tokenizer, length: int, depth: float) -> list[int]:
    """Token ids of a haystack of at most ``length`` tokens with the needle after the sentence nearest ``depth``.

    The filler is :data:`LONG_DOCUMENT`'s sentences in order, repeated from the start when a longer
    haystack is asked for; pieces are tokenised separately (``" " + sentence``) so the length is exact.
    """
    piece = lambda s: list(tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    bos = list(tokenizer("", add_special_tokens=True)["input_ids"])
    needle, question = piece(" " + NEEDLE), piece(NEEDLE_QUESTION)
    budget = length - len(bos) - len(needle) - len(question)
    sentences, pieces, used = _sentences(), [], 0
    i = 0
    while True:
        ids = piece(" " + sentences[i % len(sentences)])
        if used + len(ids) > budget:
            break
        pieces.append(ids)
        used += len(ids)
        i += 1
    k = int(round(depth * len(pieces)))
    flat = lambda parts: [t for p in parts for t in p]  # noqa: E731
    return bos + flat(pieces[:k]) + needle + flat(pieces[k:]) + question


def answer_ids(tokenizer) -> list[int]:
    """Token ids of the expected continuation (``" 7391"``)."""
    return list(tokenizer(" " + NEEDLE_ANSWER, add_special_tokens=False)["input_ids"])


def run_cell(engine: Engine, length: int, depth: float, stop=None) -> NeedleCell:
    """Build one haystack and step the model through the answer (see the module docstring)."""
    import torch

    ids = build_prompt(engine.tokenizer, length, depth)
    answer = answer_ids(engine.tokenizer)
    state = {"logprob": 0.0, "agree": True, "greedy": []}

    def select(logits, index):
        target = answer[index]
        state["logprob"] += float(torch.log_softmax(logits.double(), dim=-1)[target])
        if state["agree"]:
            choice = int(logits.argmax())
            state["greedy"].append(choice)
            state["agree"] = choice == target
        return target

    start = time.perf_counter()
    for _ in engine.steps(ids, max_new_tokens=len(answer), select=select, stop_at_eos=False):
        if stop is not None:
            stop.check()
    return NeedleCell(length=int(length), tokens=len(ids), depth=float(depth), correct=bool(state["agree"]),
                      answer_logprob=state["logprob"], generated=engine.tokenizer.decode(state["greedy"]),
                      ms=(time.perf_counter() - start) * 1000.0)


def check_grid(lengths, depths, max_tokens: int, max_cells: int) -> tuple[list[int], list[float]]:
    """Validate a grid request; lengths and depths sorted and de-duplicated.

    Raises:
        ValueError: not lists, a length below 64 or above ``max_tokens``, a depth outside 0..1, or more than
            ``max_cells`` cells (the message states the caps).
    """
    if not isinstance(lengths, (list, tuple)) or not lengths:
        raise ValueError("lengths must be a non-empty list of token counts.")
    if not isinstance(depths, (list, tuple)) or not depths:
        raise ValueError("depths must be a non-empty list of numbers in 0..1.")
    lens = sorted({check_int(v, "lengths", minimum=MIN_LENGTH) for v in lengths})
    deps = sorted({round(check_float(v, "depths", minimum=0.0, maximum=1.0), 4) for v in depths})
    if lens[-1] > max_tokens:
        raise ValueError(f"lengths go up to {lens[-1]:,} tokens; a live needle grid accepts at most {max_tokens:,} "
                         f"tokens (max_needle_tokens) and {max_cells} cells (max_needle_cells). The stored grid "
                         "covers longer haystacks.")
    if len(lens) * len(deps) > max_cells:
        raise ValueError(f"{len(lens)} lengths x {len(deps)} depths = {len(lens) * len(deps)} cells; a live needle "
                         f"grid accepts at most {max_cells} cells (max_needle_cells) of at most {max_tokens:,} "
                         "tokens (max_needle_tokens).")
    return lens, deps


def iter_run(model: str | None = None, lengths=(256, 512, 1024), depths=(0.0, 0.5, 1.0),
             engine: Engine | None = None, max_tokens: int | None = None, max_cells: int | None = None,
             stop=None) -> Iterator:
    """Run the grid; yields :class:`Progress` (``partial`` = the result so far), then a :class:`NeedleResult`.

    Raises:
        ValueError: see :func:`check_grid`; an encoder model; a length over the model's context.
    """
    limits = get_limits()
    engine = engine or get_engine(model)
    require_causal(engine, "The needle test")
    cap = min(max_tokens or limits.max_needle_tokens, engine.context_length())
    lens, deps = check_grid(lengths, depths, cap, max_cells or limits.max_needle_cells)
    cells, total = [], len(lens) * len(deps)
    prov = measured("engine steps: prefill of the haystack, then one pass per answer token", engine.name)
    for length in lens:
        for depth in deps:
            cells.append(run_cell(engine, length, depth, stop=stop))
            partial = NeedleResult(engine.name, tuple(lens), tuple(deps), tuple(cells), prov)
            yield Progress(len(cells) / total, f"cell {len(cells)} of {total}: {length} tokens, depth {depth:.0%}",
                           partial=partial)
    yield NeedleResult(engine.name, tuple(lens), tuple(deps), tuple(cells), prov)


def run(model: str | None = None, lengths=(256, 512, 1024), depths=(0.0, 0.5, 1.0), engine: Engine | None = None,
        max_tokens: int | None = None, max_cells: int | None = None) -> NeedleResult:
    """Blocking :func:`iter_run`."""
    return run_to_end(iter_run(model, lengths, depths, engine=engine, max_tokens=max_tokens, max_cells=max_cells))


def save(result: NeedleResult, meta: dict) -> str:
    """Write ``result`` with ``meta`` (command, date, versions, settings) to ``data/next_token/needle_<model>.json``."""
    return stored.write("needle", result.model, result.to_api(), meta)


def load_stored(model: str) -> NeedleResult | None:
    """The stored bench grid for ``model`` (provenance ``stored``), or ``None`` if the bench never ran for it."""
    found = stored.read("needle", model)
    if found is None:
        return None
    data, prov = found
    cells = tuple(NeedleCell(**c) for c in data["cells"])
    return NeedleResult(model, tuple(data["lengths"]), tuple(float(d) for d in data["depths"]), cells, prov)
