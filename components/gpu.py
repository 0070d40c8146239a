"""ZeroGPU support: on a Hugging Face Space with ZeroGPU, only the handlers that run a model ask for a GPU.

ZeroGPU lends a GPU only inside functions decorated with ``spaces.GPU(duration=...)``
(https://huggingface.co/docs/hub/spaces-zerogpu); a shorter request waits less, a request above the
platform's maximum is refused, and the quota is per visitor (a workshop on one network shares one).
So each tab's ``TabSpec.gpu`` names its model-running handlers with a sizer, and :func:`wrap_for_zero_gpu`
decorates exactly those with ``spaces.GPU(duration=callable)``: the callable computes the seconds from the
call's own arguments (:mod:`components.gpu_budget`), never above ``Limits.zerogpu_max_seconds``. Tokenizing,
formulas, re-renders from a stored result, share links and stored tables are never decorated.

Order matters: app.py wraps for ZeroGPU *before* :func:`components.serving.wire_serving`, so the result cache
and coalescing sit outside the GPU call and a cached or joined request never asks for a GPU. When the quota is
spent or the GPU queue is full, the visitor gets :func:`quota_message` (the wait, and that the embedded models
and the cached, stored and CPU-only views still work). Without the ``spaces`` package (or outside ZeroGPU)
nothing is wrapped. Models go to CUDA outside decorated calls: the default at start-up (app.warm_up), any other
before the call that first needs it (:func:`preload`); adapters and quantised copies follow the engine's device.
"""
from __future__ import annotations

import functools
import inspect
import os
import re

from components.gpu_budget import clamp
from components.registry import TabSpec, tab_specs
from explorer.core.config import Limits

_QUOTA = re.compile(r"quota|queue is full|no gpu (was )?available|gpu task aborted|zerogpu", re.I)
_WAIT_HMS = re.compile(r"(?:try again|retry) in (\d+):(\d{2}):(\d{2})", re.I)
_WAIT_S = re.compile(r"(?:try again|retry|wait)\D{0,12}(\d+)\s*(s|sec|seconds?|min|minutes?)\b", re.I)


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
    parts = (getattr(inspect.unwrap(fn), "__module__", None) or "").split(".")
    return parts[2] if len(parts) >= 3 and parts[:2] == ["components", "tabs"] else None


def sizer_for(spec: TabSpec, fn, api_name: str | None):
    """The sizer ``spec.gpu`` gives handler ``fn`` (by function name or ``api_name``), or ``None`` (CPU-only)."""
    gpu = getattr(spec, "gpu", None) or {}
    name = getattr(inspect.unwrap(fn), "__name__", None)
    return gpu.get(name) or (gpu.get(api_name) if api_name else None)


def duration_of(fn, sizer, limits: Limits):
    """``duration(*args, **kwargs) -> int`` for ``spaces.GPU``: the sizer applied to the call's bound arguments
    (seconds, within ``[1, limits.zerogpu_max_seconds]``; the maximum when the arguments cannot be read)."""
    signature = inspect.signature(fn)

    def duration(*args, **kwargs) -> int:
        try:
            bound = signature.bind_partial(*args, **kwargs)
            return clamp(sizer(limits, dict(bound.arguments)), limits)
        except Exception:  # noqa: BLE001 - a sizing slip must not fail the request; ask for the cap instead
            return clamp(float("inf"), limits)

    return duration


def quota_wait_seconds(message: str) -> int | None:
    """The wait ZeroGPU's message names ("Try again in 0:04:07", "retry in 30s"), in seconds, or ``None``."""
    hms = _WAIT_HMS.search(message or "")
    if hms:
        h, m, s = (int(x) for x in hms.groups())
        return h * 3600 + m * 60 + s
    short = _WAIT_S.search(message or "")
    if short:
        return int(short.group(1)) * (60 if short.group(2).lower().startswith("min") else 1)
    return None


def is_quota_error(exc: BaseException) -> bool:
    """True for the ``spaces`` package's refusals: GPU quota exhausted, queue full, no GPU available in time."""
    module = type(exc).__module__ or ""
    return bool(_QUOTA.search(str(exc))) and (module.startswith(("spaces", "gradio")) or "GPU" in str(exc))


def quota_message(exc: BaseException) -> str:
    """What the visitor reads when ZeroGPU refuses: why, how long to wait, and what still works meanwhile."""
    wait = quota_wait_seconds(str(exc))
    when = (f"in about {wait // 60} min {wait % 60} s" if wait and wait >= 60 else f"in about {wait} s") if wait \
        else "in a few minutes"
    why = "the GPU queue is full" if re.search(r"queue", str(exc), re.I) else "the GPU quota for your network is used up"
    return (f"No GPU right now: {why} (ZeroGPU says: {str(exc).strip()[:200]}). Try again {when}. Meanwhile "
            "results other visitors already computed are served from the shared cache, the Tokens tab, the "
            "calculators and stored views need no GPU, and the small embedded models in the model picker run on "
            "the CPU.")


def preload(args: tuple) -> None:
    """Load the model a request names *before* its GPU call, so weights go to CUDA at start-up time in the main
    process as ZeroGPU expects (a model first loaded inside a decorated call would live only in that call's
    worker). Bad names are left for the handler to report."""
    from components.serving import _model_of, _plain_args
    from explorer.core.engine import get_engine

    model = _model_of(_plain_args(args))
    if model:
        try:
            get_engine(model)
        except Exception:  # noqa: BLE001 - the handler raises the proper message for a bad model
            pass


def _guarded(gpu_fn, fn):
    """``gpu_fn`` (the decorated handler) with the request's model loaded first (:func:`preload`) and ZeroGPU's
    refusals turned into :func:`quota_message`."""
    import gradio as gr

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            preload(args)
            try:
                yield from gpu_fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - re-raised unless it is a ZeroGPU refusal
                if is_quota_error(exc):
                    raise gr.Error(quota_message(exc), duration=None) from None
                raise
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        preload(args)
        try:
            return gpu_fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is a ZeroGPU refusal
            if is_quota_error(exc):
                raise gr.Error(quota_message(exc), duration=None) from None
            raise
    return call


def wrap_for_zero_gpu(demo, limits: Limits, specs: list[TabSpec] | None = None) -> int:
    """On ZeroGPU, decorate each model-running handler (``TabSpec.gpu``) with ``spaces.GPU(duration=callable)``.

    Call before :func:`components.serving.wire_serving` so the cache is consulted first. Also switches LoRA
    runs to chunks of optimiser steps, each one GPU call (:mod:`explorer.lora.chunks`). The wrapper keeps the
    handler's name, module and signature (``functools.wraps``) so gradio and the serving layer still see it.
    Returns how many handlers were decorated (0 off ZeroGPU).
    """
    if not zero_gpu_available():
        return 0
    import spaces

    from components import gpu_budget
    from explorer.lora import chunks

    chunks.configure(lambda fn, steps: gpu_call(fn, gpu_budget.training(steps), limits),
                     lambda total: gpu_budget.plan_chunks(total, gpu_budget.SECONDS_PER_TRAIN_STEP, limits,
                                                          max_units=gpu_budget.TRAIN_CHUNK_STEPS))
    by_key = {spec.key: spec for spec in (specs if specs is not None else tab_specs())}
    wrapped = 0
    for block_fn in demo.fns.values():
        fn = block_fn.fn
        spec = by_key.get(tab_of(fn)) if fn is not None else None
        sizer = sizer_for(spec, fn, getattr(block_fn, "api_name", None)) if spec is not None else None
        if sizer is None:
            continue
        gpu_fn = spaces.GPU(duration=duration_of(fn, sizer, limits))(fn)
        block_fn.fn = _guarded(gpu_fn, fn)
        wrapped += 1
    return wrapped


def gpu_call(fn, seconds: int, limits: Limits):
    """``fn`` decorated for one ZeroGPU call of ``seconds`` (capped), or ``fn`` itself off ZeroGPU.

    For work the server drives in pieces (a LoRA run's chunks of optimiser steps, a long generation's chunks of
    tokens): each piece is one call whose arguments and result ZeroGPU pickles, so they must be CPU objects.
    """
    if not zero_gpu_available():
        return fn
    import spaces

    return _guarded(spaces.GPU(duration=clamp(seconds, limits))(fn), fn)
