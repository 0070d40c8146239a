"""How much ZeroGPU time a model-running handler asks for, computed from the call's own arguments.

ZeroGPU (https://huggingface.co/docs/hub/spaces-zerogpu) lends a GPU only inside a function decorated with
``spaces.GPU(duration=...)``; ``duration`` may be a callable that receives the call's arguments, and a shorter
request gets a better place in the queue, while a request above the platform's maximum is refused. Each tab's
``TabSpec.gpu`` maps its model-running handlers to a *sizer* built here: ``sizer(limits, args) -> seconds``,
where ``args`` is ``{parameter name: value}`` of that call. :func:`clamp` keeps every answer within
``[1, Limits.zerogpu_max_seconds]`` (``LLM_EXPLORER_ZEROGPU_MAX_SECONDS``). Work that cannot fit one call is
split by :func:`plan_chunks` (optimiser steps of a LoRA run, decode tokens of a long generation).

The per-unit costs are estimates for a model of about 135M parameters on a ZeroGPU slice (an H200 MIG share),
padded for a larger Hub model; they were not measured on a GPU (none was lent), so they err long: the cap,
not the estimate, bounds what a visitor can spend.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

Sizer = Callable[[Any, Mapping[str, Any]], float]

SECONDS_PER_TOKEN = 0.05  # one locked decode pass, with per-step instrumentation (estimate, seconds)
SECONDS_PER_TRAIN_STEP = 0.4  # one LoRA optimiser step on a small batch (estimate, seconds)
SECONDS_PER_CALL = 5.0  # start-up of a ZeroGPU call: moving weights in, first CUDA kernels (estimate, seconds)


def clamp(seconds: float, limits) -> int:
    """``seconds`` rounded up and kept within ``[1, limits.zerogpu_max_seconds]`` (seconds, int)."""
    top = max(1, int(limits.zerogpu_max_seconds))
    try:
        value = math.ceil(float(seconds))
    except (TypeError, ValueError, OverflowError):
        return top
    return max(1, min(top, value))


def _int(value, default: int) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return int(default)


def _count(value) -> int:
    """How many items a list/table/comma-separated string argument holds (at least 1)."""
    if value is None:
        return 1
    if hasattr(value, "values") and hasattr(value, "columns"):  # a DataFrame of rows
        value = value.values.tolist()
    if isinstance(value, str):
        return max(1, len([v for v in value.split(",") if v.strip()]))
    try:
        return max(1, len([v for v in value if v not in (None, "", [])]))
    except TypeError:
        return 1


def fixed(seconds: float) -> Sizer:
    """A sizer for a handler whose work does not depend on its arguments (a fixed set of texts)."""
    return lambda limits, args: float(seconds)


def generation(tokens: str | None = None, *, count: str | None = None, samples: str | None = None,
               default_tokens: str = "max_new_tokens", per_token: float = SECONDS_PER_TOKEN,
               extra_tokens: float = 0.0) -> Sizer:
    """A sizer for generating/scoring: ``SECONDS_PER_CALL + per_token * tokens * items``.

    Args:
        tokens: the argument holding the number of tokens generated or scored (``None``: the ``default_tokens``
            cap of :class:`~explorer.core.config.Limits`).
        count: an argument whose length multiplies the work (strategy rows, methods, lengths, probes).
        samples: an integer argument that multiplies the work (samples drawn per probe).
        extra_tokens: tokens of fixed work added per item (a prompt's prefill, a probe's scoring).
    """
    def size(limits, args: Mapping[str, Any]) -> float:
        cap = int(getattr(limits, default_tokens))
        n = min(cap, _int(args.get(tokens), cap)) if tokens else cap
        items = _count(args.get(count)) if count else 1
        items *= max(1, _int(args.get(samples), 1)) if samples else 1
        return SECONDS_PER_CALL + per_token * (n + extra_tokens) * items

    return size


TRAIN_CHUNK_STEPS = 30  # at most this many optimiser steps per GPU call, so the loss curve streams between calls


def training(steps: int) -> float:
    """Seconds asked for a chunk of ``steps`` LoRA optimiser steps (estimate)."""
    return SECONDS_PER_CALL + SECONDS_PER_TRAIN_STEP * max(0, int(steps))


def plan_chunks(total: int, seconds_per_unit: float, limits, overhead: float = SECONDS_PER_CALL,
                max_units: int | None = None) -> list[int]:
    """Split ``total`` units of work (optimiser steps, decode tokens) into chunks that each fit one call.

    Every chunk's ``overhead + n * seconds_per_unit`` stays within ``limits.zerogpu_max_seconds``; chunks are as
    even as possible. Returns the chunk sizes (sum ``total``; ``[]`` for ``total <= 0``).

    Raises:
        ValueError: not even one unit fits in the maximum.
    """
    total = int(total)
    if total <= 0:
        return []
    room = float(limits.zerogpu_max_seconds) - overhead
    per_call = int(room // seconds_per_unit) if seconds_per_unit > 0 else total
    per_call = min(per_call, max_units) if max_units and per_call >= 1 else per_call
    if per_call < 1:
        raise ValueError(f"zerogpu_max_seconds={limits.zerogpu_max_seconds} leaves no room for one unit of work "
                         f"({seconds_per_unit} s each); raise LLM_EXPLORER_ZEROGPU_MAX_SECONDS")
    calls = math.ceil(total / per_call)
    base, extra = divmod(total, calls)
    return [base + (1 if i < extra else 0) for i in range(calls)]
