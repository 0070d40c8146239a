"""transformers' logits processors for a decoding strategy, in the order ``model.generate`` applies them.

Kept apart from the strategy registry so the loops (``sampling.py``, ``beam.py``) and the registry
(``strategies.py``) import it without importing each other.

Sources: ``GenerationMixin._get_logits_processor`` (transformers v5); Keskar et al. 2019 (repetition
penalty), Paulus et al. 2018 (no-repeat n-grams), Fan et al. 2018 (top-k), Holtzman et al. 2020 (top-p),
Nguyen et al. 2024 (min-p), Meister et al. 2023 (typical-p).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Stage:
    """One logits processor in the pipeline, in transformers' order.

    Attributes:
        param: the ``GenerationConfig`` parameter it implements.
        label: what the UI calls the stage.
        active: ``value -> bool``: whether generate() would add this processor for that value.
        build: ``value -> LogitsProcessor``.
        warper: True for temperature / top-k / top-p / min-p / typical-p, which only apply when sampling.
    """

    param: str
    label: str
    active: Callable[[Any], bool]
    build: Callable[[Any], Any]
    warper: bool


def stages() -> tuple[Stage, ...]:
    """Every stage a strategy can use, in generate()'s order."""
    from transformers import (MinPLogitsWarper, NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor,
                              TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, TypicalLogitsWarper)

    return (
        Stage("repetition_penalty", "repetition penalty", lambda v: v != 1.0,
              lambda v: RepetitionPenaltyLogitsProcessor(penalty=v), False),
        Stage("no_repeat_ngram_size", "no-repeat n-gram", lambda v: v > 0, NoRepeatNGramLogitsProcessor, False),
        Stage("temperature", "temperature", lambda v: v != 1.0, TemperatureLogitsWarper, True),
        Stage("top_k", "top-k", lambda v: v != 0, lambda v: TopKLogitsWarper(top_k=v), True),
        Stage("top_p", "top-p", lambda v: v < 1.0, lambda v: TopPLogitsWarper(top_p=v), True),
        Stage("min_p", "min-p", lambda v: v is not None, lambda v: MinPLogitsWarper(min_p=v), True),
        Stage("typical_p", "typical-p", lambda v: v < 1.0, lambda v: TypicalLogitsWarper(mass=v), True),
    )


def build_processors(strategy) -> list[tuple[str, Any]]:
    """``(stage label, LogitsProcessor)`` pairs that ``model.generate`` would apply for ``strategy``, in order.

    ``strategy`` is a :class:`explorer.decoding.strategies.Strategy` (anything with ``params`` and
    ``do_sample``). Order follows ``GenerationMixin._get_logits_processor``: repetition penalty, no-repeat
    n-gram, then (only when sampling) temperature, top-k, top-p, min-p, typical-p.
    """
    out = []
    for stage in stages():
        if stage.param not in strategy.params or (stage.warper and not strategy.do_sample):
            continue
        value = strategy.params[stage.param]
        if stage.active(value):
            out.append((stage.label, stage.build(value)))
    return out
