"""ZeroGPU support: on a Hugging Face Space with ZeroGPU, run every handler inside ``@spaces.GPU``.

ZeroGPU lends a GPU only inside functions decorated with ``spaces.GPU(duration=seconds)``
(https://huggingface.co/docs/hub/spaces-zerogpu). The duration is derived from the configured caps,
so a Space that tightens a cap also asks for less GPU time. Without the ``spaces`` package (or
outside ZeroGPU) nothing is wrapped.
"""
from __future__ import annotations

import os

from explorer.core.config import Limits


def zero_gpu_available() -> bool:
    """True on a ZeroGPU Space: the ``spaces`` package imports and ``SPACES_ZERO_GPU`` is set."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return False
    try:
        import spaces  # noqa: F401
    except ImportError:
        return False
    return True


def gpu_duration(fn_name: str, limits: Limits) -> int:
    """Seconds of GPU to ask for a handler, from the caps.

    Training gets ``max_run_seconds``; probes ``max_probe_seconds`` per probe (at most 4 at once);
    generation ~0.25 s per allowed new token per sample; anything else 60 s.
    """
    name = fn_name.lower()
    if "train" in name or "lora" in name:
        return int(limits.max_run_seconds)
    if "probe" in name or "attribut" in name or "halluc" in name:
        return int(getattr(limits, "max_probe_seconds", 60) * 4)
    if "decod" in name or "generat" in name or "kv" in name or "quant" in name:
        return int(min(600, 30 + 0.25 * limits.max_new_tokens * max(1, limits.max_samples // 2)))
    return 60


def wrap_for_zero_gpu(demo, limits: Limits) -> int:
    """Wrap every event handler of ``demo`` in ``spaces.GPU`` when on ZeroGPU; returns how many were wrapped."""
    if not zero_gpu_available():
        return 0
    import spaces

    wrapped = 0
    for block_fn in demo.fns.values():
        if block_fn.fn is None:
            continue
        name = block_fn.api_name or getattr(block_fn.fn, "__name__", "")
        block_fn.fn = spaces.GPU(duration=gpu_duration(str(name), limits))(block_fn.fn)
        wrapped += 1
    return wrapped
