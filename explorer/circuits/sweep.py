"""Steering sweep (``/steer_sweep``): strength × layer, where a steering vector works and where the text breaks.

Every cell (one block ``layer``, one ``strength``) is a row of one batch: ``Engine.batch_steps`` prefills the prompt
as one row per cell (``prefill_rows``) and one per-pass :class:`ForwardHook` per swept block adds that block's
``strength × layer_norm × v/‖v‖`` (:mod:`explorer.circuits.steering`) to the rows that steer it (zeros elsewhere);
row 0 is the unsteered baseline. Every row is greedy. Per cell:

- **perplexity** of the steered continuation under the *unsteered* model, ``exp(mean NLL)`` over its tokens up to and
  including the first end-of-sequence token (one batched plain forward; a fluent text stays low, broken text soars);
- **marker log-ratio**, for the built-in sets: the mean over the generated steps of
  ``log Σ p(positive markers) − log Σ p(negative markers)`` under the steered model's next-token distribution (the
  first token of each marker word); steering "works" where it rises above the baseline row's.

Rows run past an end-of-sequence token (so the batch stays aligned); what follows it is ignored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

from explorer.circuits.steering import SETS, check_strength, check_texts, layer_path, steering_vectors
from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.patches import ForwardHook
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_max_new_tokens, check_text, require_causal

# Marker words per built-in set (positive side, negative side), written for this project.
MARKERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sentiment": ((" good", " great", " love", " wonderful", " happy", " best", " amazing"),
                  (" bad", " terrible", " hate", " awful", " sad", " worst", " horrible")),
    "formality": ((" Dear", " sincerely", " kindly", " regards", " request", " please"),
                  (" hey", " lol", " yeah", " gonna", " cool", " thx")),
    "language": ((" the", " is", " and", " of", " it", " you"), (" le", " la", " est", " et", " les", " vous")),
}


def parse_values(value, name: str, cast) -> list:
    """A list (or a comma/space separated string) of numbers as a list of ``cast``; ValueError naming ``name``."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value or [])
    try:
        out = [cast(float(v)) if cast is int else cast(v) for v in items]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers separated by commas (got {value!r}).") from None
    if not out:
        raise ValueError(f"{name} needs at least one value.")
    return out


def set_of(positive, negative) -> str | None:
    """The built-in set whose texts ``positive`` and ``negative`` are (a set name as ``positive`` counts), or None."""
    if isinstance(positive, str) and positive.strip() in SETS:
        return positive.strip()
    notices: list[str] = []
    try:
        pos, neg = check_texts(positive, "positive", notices), check_texts(negative, "negative", notices)
    except ValueError:
        return None
    for name, (p, n) in SETS.items():
        if tuple(pos) == p and tuple(neg) == n:
            return name
    return None


def marker_ids(engine: Engine, name: str | None) -> tuple[list[int], list[int]] | None:
    """The first token id of each marker word of set ``name`` (positive, negative), or None for a custom pair."""
    if name not in MARKERS:
        return None
    return tuple(sorted({engine.encode(w, add_special_tokens=False)[0] for w in side}) for side in MARKERS[name])


@dataclass(frozen=True)
class SweepCell:
    """One row of the sweep: ``strength`` at block ``layer`` (None for the unsteered baseline)."""

    layer: int | None
    strength: float
    ids: tuple[int, ...]
    text: str
    perplexity: float | None
    marker_log_ratio: float | None
    overflow: bool

    def to_api(self) -> dict:
        """``{"layer", "strength", "text", "perplexity", "marker_log_ratio", "overflow"}``."""
        return {"layer": self.layer, "strength": self.strength, "text": self.text, "perplexity": self.perplexity,
                "marker_log_ratio": self.marker_log_ratio, "overflow": self.overflow}


@dataclass(frozen=True)
class SweepResult:
    """The sweep: the baseline row, then ``cells`` in layer-major order (``layers[i]``, ``strengths[j]``).

    Attributes:
        set_name: the built-in set the pair is (markers measured), or None (custom pair: no marker ratio).
        markers: the marker words (positive, negative) or None.
        tokens_done: greedy steps run (below ``max_new_tokens`` when stopped or every row ended).
    """

    model: str
    prompt: str
    layers: tuple[int, ...]
    strengths: tuple[float, ...]
    baseline: SweepCell
    cells: tuple[SweepCell, ...]
    set_name: str | None
    markers: tuple[tuple[str, ...], tuple[str, ...]] | None
    tokens_done: int
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("batched steering sweep"))

    def cell(self, layer: int, strength: float) -> SweepCell:
        """The cell at ``layer`` and ``strength``; KeyError when the sweep has none."""
        for c in self.cells:
            if c.layer == layer and c.strength == strength:
                return c
        raise KeyError((layer, strength))

    def to_api(self) -> dict:
        """``{"layers", "strengths", "baseline", "cells": [...], "markers", "notices"}``."""
        return {"layers": list(self.layers), "strengths": list(self.strengths), "baseline": self.baseline.to_api(),
                "cells": [c.to_api() for c in self.cells],
                "markers": None if self.markers is None else {"positive": list(self.markers[0]),
                                                              "negative": list(self.markers[1])},
                "notices": list(self.notices)}


def _row_patches(vectors: dict, plan: list[tuple[int | None, float]], d_model: int) -> list[ForwardHook]:
    """One ForwardHook per swept block adding a ``(rows, 1, d_model)`` delta: row r's steering where ``plan[r]``
    targets that block, zeros elsewhere."""
    import torch

    patches = []
    for layer, vector in vectors.items():
        delta = torch.zeros(len(plan), 1, d_model)
        for row, (target, strength) in enumerate(plan):
            if target == layer:
                delta[row, 0] = vector.added(strength)

        def add(module, args, output, delta=delta):
            hidden = output[0] if isinstance(output, tuple) else output
            steered = hidden + delta.to(hidden.device, hidden.dtype)
            return (steered,) + tuple(output[1:]) if isinstance(output, tuple) else steered

        patches.append(ForwardHook(layer_path(layer), add))
    return patches


def _perplexities(engine: Engine, prompt: list[int], rows: list[list[int]], lengths: list[int]) -> list[float]:
    """exp(mean NLL) of each row's first ``lengths[r]`` generated tokens after ``prompt`` under the unsteered model
    (rows in chunks, one plain batched forward each)."""
    import torch

    width = len(rows[0])
    vocab = int(engine.config.get_text_config().vocab_size)
    chunk = max(1, (1 << 25) // max(1, (width + 1) * vocab))
    out: list[float] = []
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        ids = torch.tensor([prompt + r for r in part])
        logits = engine.forward(ids, logits_to_keep=width + 1).logits[:, :-1].float()  # predicts each generated
        logp = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(part, device=logits.device)[..., None])
        for k, row_logp in enumerate(logp[..., 0].cpu()):
            n = lengths[start + k]
            out.append(float(torch.exp(-row_logp[:n].mean())))
    return out


def iter_sweep(model: str | None = None, positive="sentiment", negative=None, layers=(4, 10, 16, 22),
               strengths=(0.25, 0.5, 1.0, 2.0), prompt: str = "I think the movie was", max_new_tokens: int = 16,
               chat_template: bool = False, engine: Engine | None = None,
               should_stop: Callable[[], bool] | None = None) -> Iterator:
    """Run the sweep, yielding :class:`Progress` per greedy step, then the :class:`SweepResult`.

    Args:
        positive, negative: as ``/steer`` (a built-in set name as ``positive`` takes both sides; the built-in
            sets' texts also get the marker ratio).
        layers: blocks (0-based) to steer, a list or a comma-separated string.
        strengths: multiples of each layer's mean residual norm (finite), a list or a comma-separated string.
        max_new_tokens: greedy tokens per row (capped at ``Limits.max_new_tokens``).
        should_stop: polled between steps; when it returns True the sweep ends early and says so.
    Raises:
        ValueError: empty ``prompt`` or side, ``layers`` empty or out of range, a ``strengths`` value not finite or
            overflowing, more cells than ``Limits.max_sweep_cells``, a prompt too long (messages name the argument).
    """
    import torch

    check_text(prompt, "prompt")
    engine = engine or get_engine(model)
    require_causal(engine, "Steering")
    notices: list[str] = []
    layers = sorted(set(parse_values(layers, "layers", int)))
    strengths = [check_strength(s, "strengths") for s in parse_values(strengths, "strengths", float)]
    strengths = list(dict.fromkeys(strengths))
    cap = get_limits().max_sweep_cells
    if len(layers) * len(strengths) > cap:
        raise ValueError(f"strengths × layers: {len(strengths)} × {len(layers)} = {len(layers) * len(strengths)} "
                         f"cells exceed the cap of {cap} (LLM_EXPLORER_MAX_SWEEP_CELLS).")
    num_layers = int(engine.config.get_text_config().num_hidden_layers)
    if layers[0] < 0 or layers[-1] >= num_layers:
        raise ValueError(f"layers must be in 0 … {num_layers - 1} (got {layers}).")
    name = set_of(positive, negative)
    if isinstance(positive, str) and positive.strip() in SETS:
        positive, negative = SETS[positive.strip()][0], negative or SETS[positive.strip()][1]
    max_new_tokens = check_max_new_tokens(max_new_tokens, get_limits().max_new_tokens, notices)
    vectors = steering_vectors(engine, positive, negative, layers, chat_template)
    notices.extend(next(iter(vectors.values())).notices)
    ids = engine.chat_ids(prompt) if chat_template else engine.encode(prompt)
    engine.check_length(len(ids) + max_new_tokens)
    plan = [(None, 0.0)] + [(layer, s) for layer in layers for s in strengths]
    markers = marker_ids(engine, name)
    d_model = int(next(iter(vectors.values())).vector.shape[-1])
    eos = engine.eos_token_ids()
    tokens = [[] for _ in plan]
    ratios = [[] for _ in plan]
    ended = [False] * len(plan)
    overflow = [False] * len(plan)

    def select(row, logits, index):
        if not bool(torch.isfinite(logits).all()):
            overflow[row] = True
            logits = torch.nan_to_num(logits, nan=0.0, posinf=0.0, neginf=0.0)
        if markers is not None and not ended[row]:
            ratios[row].append(float(torch.logsumexp(logits[markers[0]], 0) - torch.logsumexp(logits[markers[1]], 0)))
        token = int(logits.argmax())
        tokens[row].append(token)
        ended[row] = ended[row] or token in eos
        return token

    done = 0
    for step in engine.batch_steps(ids, len(plan), max_new_tokens, select, stop_at_eos=False,
                                   patches=_row_patches(vectors, plan, d_model), prefill_rows=True):
        done = step.index + 1
        yield Progress(done / (max_new_tokens + 1), f"step {done} of {max_new_tokens} ({len(plan)} rows)")
        if all(ended) or (should_stop is not None and should_stop()):
            break
    if done < max_new_tokens and not all(ended):
        notices.append(f"Stopped after {done} of {max_new_tokens} tokens; the cells cover those tokens only.")
    lengths = [next((k + 1 for k, t in enumerate(row) if t in eos), len(row)) for row in tokens]
    ppl = _perplexities(engine, ids, tokens, lengths)
    cells = []
    for row, (layer, strength) in enumerate(plan):
        kept = [t for t in tokens[row][:lengths[row]] if t not in eos]
        if overflow[row]:
            notices.append(f"strength {strength:g} at layer {layer}: the logits overflow (not finite); that cell's "
                           "text is meaningless.")
        cells.append(SweepCell(layer, float(strength), tuple(tokens[row][:lengths[row]]),
                               engine.tokenizer.decode(kept, skip_special_tokens=True),
                               None if overflow[row] or not math.isfinite(ppl[row]) else ppl[row],
                               None if markers is None or overflow[row] else sum(ratios[row]) / len(ratios[row]),
                               overflow[row]))
    yield SweepResult(engine.name, prompt, tuple(layers), tuple(float(s) for s in strengths), cells[0],
                      tuple(cells[1:]), name, MARKERS.get(name), done, tuple(notices),
                      measured(f"{len(plan)} greedy rows in one batch, perplexity under the unsteered model",
                               model=engine.name))


def run_sweep(*args, **kwargs) -> SweepResult:
    """:func:`iter_sweep` run to the end (same arguments)."""
    return run_to_end(iter_sweep(*args, **kwargs))
