"""The sampler chain at one step of a decoding column (``/sampler_chain``): the top tokens before and after each
logits-processor stage, in generate()'s order (``processors.stages``), inactive stages shown as such.

A step after the first replays the column (its processors and seeded private generator, ``sampling.Column``)
through ``Engine.steps`` up to that step, so the shown sampled token is the one the column drew. Source:
``GenerationMixin._get_logits_processor`` (transformers v5); text-generation-webui's Logits tab (the idea).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int, check_text, require_causal
from explorer.decoding.processors import stages
from explorer.decoding.sampling import Column
from explorer.decoding.strategies import parse_strategy

TOP = 50


@dataclass(frozen=True)
class ChainResult:
    """Each stage of one step: ``stages`` = ``[{"name", "active", "kept_mass", "removed", "top"}]`` (``top`` /
    ``removed``: ``[{"id", "text", "p"}]``, at most 50, ``p`` after / before the stage; ``kept_mass``: the
    probability, before the stage, of the tokens it keeps); ``sampled`` = ``{"id", "text"}`` the column chose;
    ``final`` = the last distribution ``(vocab,)`` float64 (numpy)."""

    stages: tuple
    sampled: dict
    final: object
    provenance: Provenance = field(default_factory=lambda: measured("Engine.steps + transformers processors"))

    def to_api(self) -> dict:
        """``{"stages": [...], "sampled": {"id", "text"}}``."""
        return {"stages": list(self.stages), "sampled": self.sampled}


def _tokens(engine, probs, ids) -> list[dict]:
    return [{"id": int(i), "text": engine.tokenizer.decode([int(i)]), "p": float(probs[i])} for i in ids]


def run_sampler_chain(text: str, model: str | None = None, strategy=None, step: int = 0, chat_template: bool = True,
                      engine: Engine | None = None) -> ChainResult:
    """Every stage of ``strategy``'s chain at generated ``step`` (0 = the first generated token) of ``text``.

    Raises:
        ValueError: empty text, a beam strategy, ``step`` below 0 or past the generated text (the column ended
            earlier, or past ``Limits.max_new_tokens``), a prompt too long.
    """
    import torch

    check_text(text, "text")
    engine = engine or get_engine(model)
    require_causal(engine, "The sampler chain")
    parsed = parse_strategy(dict(strategy or {"name": "greedy"}), int(engine.config.vocab_size),
                            get_limits().max_beams)
    if not parsed.spec.stepwise:
        raise ValueError(f"strategy: {parsed.name!r} has no single sampler chain; use greedy or sampling.")
    step = check_int(step, "step", minimum=0)
    if step >= get_limits().max_new_tokens:
        raise ValueError(f"step must be below {get_limits().max_new_tokens} (LLM_EXPLORER_MAX_NEW_TOKENS).")
    ids = engine.chat_ids(text) if chat_template else engine.encode(text)
    engine.check_length(len(ids) + step + 1)
    column = Column(engine, ids, parsed, record=False)
    seen = {}

    def select(logits, index):
        if index == step:
            seen["logits"], seen["ids"] = logits.clone(), column.seen.clone()
        return column.select(logits, index)

    for s in engine.steps(ids, step + 1, select=select):
        column.accept(s.token)
    if "logits" not in seen:
        raise ValueError(f"step {step} is past the generated text (it ended after {len(column.chosen)} tokens).")
    scores = seen["logits"].to(column.seen.device)[None, :]
    out = []
    for stage in stages():
        value = parsed.params.get(stage.param)
        active = stage.param in parsed.params and not (stage.warper and not parsed.do_sample) and stage.active(value)
        before = torch.softmax(scores[0].double(), -1)
        if active:
            scores = stage.build(value)(seen["ids"], scores)
        after = torch.softmax(scores[0].double(), -1)
        gone = torch.isfinite(scores[0]).logical_not() & (before > 0)
        removed = torch.nonzero(gone & (after == 0)).flatten()
        removed = removed[before[removed].argsort(descending=True)][:TOP]
        out.append({"name": stage.label, "active": bool(active),
                    "kept_mass": float(before[~gone].sum()), "removed": _tokens(engine, before, removed.tolist()),
                    "top": _tokens(engine, after, after.topk(TOP).indices.tolist())})
    token = column.chosen[step]
    return ChainResult(tuple(out), {"id": int(token), "text": engine.tokenizer.decode([int(token)])},
                       after.cpu().numpy(), measured("Engine.steps + transformers processors", model=engine.name))
