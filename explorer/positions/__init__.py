"""Positions lens: RoPE read from the model and checked on real vectors, context extension, attention cost.

Where a change goes: model_rope.py: finding the rotary module/bases, position limits, swapping the module;
rope.py: the shift-invariance check (/rope); extension.py: perplexity past the trained length with RoPE scaling
(/context_extension); cost.py: eager vs SDPA time and memory (/attention_cost).

Lens contract: ``iter_run`` / ``run`` / ``to_api`` are the /rope endpoint (rope.py); the others are exported by
name: ``extension`` (``extension.run``, /context_extension) and ``cost`` (``cost.run``, /attention_cost).
"""
from explorer.positions import cost, extension  # noqa: F401 (the /context_extension and /attention_cost endpoints)
from explorer.positions.rope import RopeResult, ShiftCheck, iter_run, run, to_api  # noqa: F401
from explorer.positions.model_rope import RopeBase, require_rope, rope_bases  # noqa: F401
