"""Beyond the training context: perplexity of a fixed passage placed at large positions, with RoPE scaling.

The passage keeps its length (so the cost is that of a short passage) but its second half is placed ``offset``
positions further on (:func:`skip_positions`), so it looks back at the first half across more than the trained
length. Shifting every position by the same amount would change nothing at all (RoPE is relative; the tests
show it). Past the trained length (``max_position_embeddings``) the rotation angles of the low-frequency pairs
reach values the model never saw and quality falls; RoPE scaling stretches them back (handbook: training vs
inference context). Scaling types are ``transformers``' own (``modeling_rope_utils.ROPE_INIT_FUNCTIONS``):
``linear`` (position interpolation, Chen et al. 2023, arXiv:2306.15595), ``dynamic`` (NTK-aware base change
recomputed from the longest position, bloc97/emozilla 2023), ``yarn`` (Peng et al. 2023, arXiv:2309.00071).

The rotary module computes ``inv_freq`` in its constructor, so a scaled copy of the config alone changes
nothing: :func:`scaled_rotary` builds a new module from the scaled config and :func:`run` swaps it into the
shared model for one locked pass (a ``ModuleSwap`` patch from ``model_rope.rotary_swap``, restored in
``finally``). For Gemma 3 the
scaling goes to the global (``full_attention``) layers only, as Gemma 3's own long-context recipe does (Gemma
Team 2025, arXiv:2503.19786, section 2.3); the local sliding-window layers never see distances past their window.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_float, check_int, check_text
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))
from explorer.positions.model_rope import (check_position, layer_types, require_rope, rotary_module,
                                          rotary_swap, text_config)

SCALING_TYPES = ("none", "linear", "dynamic", "yarn")
MAX_ROWS = 64
MAX_FACTOR = 64.0
DEFAULT_PASSAGE = (
    "The river begins as a thin stream high in the mountains, fed by snow that melts each spring. It gathers "
    "smaller brooks as it descends, cutting a narrow valley through the rock, until it reaches the plain where "
    "farmers have used its water for centuries. In summer the level drops and sandbanks appear; in autumn the "
    "rains return and the current grows strong again. Near the coast the river slows, spreads into a wide delta "
    "and finally meets the sea, carrying the soil of the mountains with it."
)


@dataclass(frozen=True)
class ExtensionRow:
    """One measured perplexity.

    Attributes:
        offset: positions inserted between the passage's halves (tokens; 0 = contiguous).
        scaling: one of :data:`SCALING_TYPES`.
        factor: the scaling factor (1.0 for ``none``). perplexity: ``exp(mean next-token loss)`` of the passage.
        last_position: the largest position used (offset + tokens - 1), also the longest query-key distance.
    """

    offset: int
    scaling: str
    factor: float
    perplexity: float
    last_position: int


@dataclass(frozen=True)
class ExtensionResult:
    """Rows of :func:`run` and what they apply to.

    Attributes:
        rows: :class:`ExtensionRow` per (scaling, offset). tokens: passage length (tokens).
        trained_length: the model's ``max_position_embeddings`` (tokens). scaled_layers: which layers the scaling
        changes (``"all layers"`` or Gemma's ``"global (full_attention) layers 5, 11, ..."``).
    """

    model: str
    rows: tuple[ExtensionRow, ...]
    tokens: int
    trained_length: int
    scaled_layers: str
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("engine forward with labels"))

    def to_api(self) -> dict:
        """JSON (the /context_extension API): ``{"rows": [{"offset", "scaling", "factor", "perplexity",
        "last_position"}], "tokens", "trained_length", "scaled_layers", "notices", "provenance"}``."""
        return {"model": self.model,
                "rows": [{"offset": r.offset, "scaling": r.scaling, "factor": r.factor, "perplexity": r.perplexity,
                          "last_position": r.last_position} for r in self.rows],
                "tokens": self.tokens, "trained_length": self.trained_length, "scaled_layers": self.scaled_layers,
                "notices": list(self.notices), "provenance": self.provenance.to_api()}


def scaled_layers(engine: Engine) -> str:
    """Which decoder layers a scaling changes: all of them, or Gemma's global (full_attention) ones."""
    types = layer_types(engine)
    if types and len(set(types)) > 1 and "full_attention" in types:
        globals_ = [i for i, t in enumerate(types) if t == "full_attention"]
        return ("global (full_attention) layers " + ", ".join(map(str, globals_)) +
                "; local sliding-window layers keep their base")
    return "all layers"


def scaled_config(engine: Engine, scaling: str, factor: float):
    """A deep copy of the decoder config whose ``rope_parameters`` use ``scaling`` with ``factor``.

    Gemma-style per-layer-type parameters get the scaling on ``full_attention`` only.
    """
    cfg = copy.deepcopy(text_config(engine))
    params = copy.deepcopy(cfg.rope_parameters)
    per_type = isinstance(params.get("full_attention"), dict)
    target = params["full_attention"] if per_type else params
    target["rope_type"] = "default" if scaling == "none" else scaling
    for key in ("factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow"):
        target.pop(key, None)
    if scaling != "none":
        target["factor"] = float(factor)
    if scaling == "yarn":
        target["original_max_position_embeddings"] = int(engine.context_length())
    cfg.rope_parameters = params
    return cfg


def scaled_rotary(engine: Engine, scaling: str, factor: float):
    """A new rotary module of the model's own class built from :func:`scaled_config` (on the engine's device)."""
    cls = type(rotary_module(engine))
    return cls(scaled_config(engine, scaling, factor)).to(engine.device)


def _check_scalings(scalings) -> list[tuple[str, float]]:
    if isinstance(scalings, dict):
        scalings = [scalings]
    if not isinstance(scalings, (list, tuple)) or not scalings:
        raise ValueError('scalings must be a non-empty list like [{"type": "linear", "factor": 4}].')
    out = []
    for n, item in enumerate(scalings):
        if not isinstance(item, dict) or "type" not in item:
            raise ValueError(f'scalings[{n}] must be an object {{"type": ..., "factor": ...}} (got {item!r}).')
        kind = item["type"]
        if kind not in SCALING_TYPES:
            raise ValueError(f"Unknown scalings[{n}].type: {kind!r}. Choose from: {', '.join(SCALING_TYPES)}.")
        factor = 1.0 if kind == "none" else check_float(item.get("factor", 2.0), f"scalings[{n}].factor",
                                                        minimum=1.0, maximum=MAX_FACTOR)
        out.append((kind, factor))
    return out


def check_offsets(offsets, tokens: int, notices: list[str]) -> list[int]:
    """Offsets as ints: at least 0, capped at ``Limits.max_position_offset``, refused where ``offset + tokens``
    reaches 2**24 (float32 cannot tell neighbouring positions apart there).

    Raises:
        ValueError: not a list of integers, too many, negative or unrepresentable.
    """
    if isinstance(offsets, (int, float)) and not isinstance(offsets, bool):
        offsets = [offsets]
    if not isinstance(offsets, (list, tuple)) or not offsets:
        raise ValueError("offsets must be a non-empty list of integers (tokens).")
    cap = get_limits().max_position_offset
    out = []
    for n, value in enumerate(offsets):
        value = check_int(value, f"offsets[{n}]", minimum=0)
        check_position(value + tokens - 1, f"offsets[{n}] + passage length")
        out.append(check_int(value, f"offsets[{n}]", cap=cap, notices=notices))
    return out


def skip_positions(n: int, offset: int):
    """Position ids ``(n,)`` of the passage: the first half at ``0 .. m-1``, the second half at
    ``offset + m .. offset + n - 1`` (``m = n // 2``), so the second half sees the first across ``offset`` extra
    positions. This is positional skipping (PoSE, Zhu et al. 2023, arXiv:2309.10400): long distances at the cost
    of a short passage. A plain shift of every position would change nothing, since RoPE scores depend on
    distances only (see rope.py)."""
    import torch

    m = n // 2
    return torch.cat([torch.arange(0, m), torch.arange(offset + m, offset + n)])


def perplexity(engine: Engine, ids, offset: int, patches=()) -> float:
    """``exp`` of the model's own mean next-token loss (``labels``) over the passage's second half, with
    :func:`skip_positions` (the second half's tokens are the ones that look back across the gap); ``patches``
    (e.g. a scaled rotary module, :func:`explorer.positions.model_rope.rotary_swap`) hold for that one pass."""
    n = len(ids)
    labels = engine.as_input(ids).clone()
    labels[0, : n // 2] = -100
    position_ids = skip_positions(n, offset).to(engine.device).unsqueeze(0)
    out = engine.forward(ids, labels=labels, position_ids=position_ids, logits_to_keep=0, patches=patches)
    return float(math.exp(float(out.loss)))


def iter_run(offsets, scalings, model: str | None = None, text: str | None = None, engine: Engine | None = None):
    """Yield ``(done, total)`` after each measured row, then the :class:`ExtensionResult`.

    One locked forward pass per row; for a scaled row the scaled rotary module is swapped in for that pass only.

    Raises:
        ValueError: not a RoPE decoder, bad offsets/scalings (see :func:`check_offsets`), too many rows.
    """
    engine = engine or get_engine(model)
    require_rope(engine, "Context extension")
    notices: list[str] = []
    ids = engine.encode(check_text(text if text is not None else DEFAULT_PASSAGE, name="passage"))
    if len(ids) < 2:
        raise ValueError("The passage needs at least 2 tokens to measure a perplexity.")
    offs = check_offsets(offsets, len(ids), notices)
    kinds = _check_scalings(scalings)
    if len(offs) * len(kinds) > MAX_ROWS:
        raise ValueError(f"{len(offs)} offsets x {len(kinds)} scalings = {len(offs) * len(kinds)} passes; "
                         f"at most {MAX_ROWS} per request.")
    rows, total = [], len(offs) * len(kinds)
    for kind, factor in kinds:
        for offset in offs:
            if kind == "none":
                ppl = perplexity(engine, ids, offset)
            else:
                with engine.patched([rotary_swap(engine, scaled_rotary(engine, kind, factor))]):  # one locked pass
                    ppl = perplexity(engine, ids, offset)
            rows.append(ExtensionRow(offset, kind, factor, ppl, offset + len(ids) - 1))
            yield len(rows), total
    yield ExtensionResult(engine.name, tuple(rows), len(ids), engine.context_length(), scaled_layers(engine),
                          tuple(notices), measured("engine forward with labels and offset position_ids; "
                                                   "transformers ROPE_INIT_FUNCTIONS", model=engine.name))


def run(offsets, scalings, model: str | None = None, text: str | None = None,
        engine: Engine | None = None) -> ExtensionResult:
    """All rows of :func:`iter_run` at once (errors as there)."""
    result = None
    for item in iter_run(offsets, scalings, model, text, engine):
        result = item
    return result


def rows_table(result: ExtensionResult) -> np.ndarray:
    """``(len(rows), 5)`` object array: offset, scaling, factor, perplexity, last position (for a Dataframe)."""
    return np.array([[r.offset, r.scaling, r.factor, round(r.perplexity, 3), r.last_position] for r in result.rows],
                    dtype=object)
