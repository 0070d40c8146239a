"""Positions lens: RoPE read from the model and checked on real vectors, context extension, attention cost.

Where a change goes: model_rope.py: finding the rotary module/bases, position limits, swapping the module;
rope.py: the shift-invariance check (/rope); extension.py: perplexity past the trained length with RoPE scaling
(/context_extension); cost.py: eager vs SDPA time and memory (/attention_cost).
"""
from explorer.positions.rope import RopeResult, ShiftCheck, run, to_api  # noqa: F401
from explorer.positions.model_rope import RopeBase, require_rope, rope_bases  # noqa: F401
