"""ZeroGPU support: on a Hugging Face Space with ZeroGPU, run the handlers of model-running tabs inside ``@spaces.GPU``.

ZeroGPU lends a GPU only inside functions decorated with ``spaces.GPU(duration=seconds)``
(https://huggingface.co/docs/hub/spaces-zerogpu). Each tab says how long its handlers may need in its
``TabSpec.gpu_seconds(limits)`` (derived from the caps, so a Space that tightens a cap also asks for less GPU
time); a tab whose ``gpu_seconds`` is ``None`` (Tokens) never runs a model and is not wrapped, and neither are
app-level handlers (share links, downloads). A handler belongs to the tab whose ``components/tabs/<key>/``
module defines it. Without the ``spaces`` package (or outside ZeroGPU) nothing is wrapped.
"""
from __future__ import annotations

import os

from components.registry import TabSpec, tab_specs
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


def tab_of(fn) -> str | None:
    """The tab key of a handler: ``<key>`` when ``fn`` is defined in ``components.tabs.<key>...``, else ``None``."""
    parts = (getattr(fn, "__module__", None) or "").split(".")
    return parts[2] if len(parts) >= 3 and parts[:2] == ["components", "tabs"] else None


def gpu_durations(limits: Limits, specs: list[TabSpec] | None = None) -> dict[str, int]:
    """``{tab key: seconds}`` for every tab that runs a model (``TabSpec.gpu_seconds`` set)."""
    return {spec.key: int(spec.gpu_seconds(limits)) for spec in (specs if specs is not None else tab_specs())
            if spec.gpu_seconds is not None}


def wrap_for_zero_gpu(demo, limits: Limits, specs: list[TabSpec] | None = None) -> int:
    """On ZeroGPU, wrap each handler of a model-running tab in ``spaces.GPU(duration=...)``; returns how many."""
    if not zero_gpu_available():
        return 0
    import spaces

    durations = gpu_durations(limits, specs)
    wrapped = 0
    for block_fn in demo.fns.values():
        key = tab_of(block_fn.fn) if block_fn.fn is not None else None
        if key in durations:
            block_fn.fn = spaces.GPU(duration=durations[key])(block_fn.fn)
            wrapped += 1
    return wrapped
