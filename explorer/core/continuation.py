"""A generation longer than one GPU call, continued in the next: the state between calls is the ids so far.

ZeroGPU (https://huggingface.co/docs/hub/spaces-zerogpu) caps one call's duration and pickles what goes in and
out of it, so a long greedy generation is split into chunks of ``max_new_tokens`` (sizes from the caller's plan,
e.g. ``components.gpu_budget.plan_chunks``): each chunk is one call that re-prefills the ids so far (a plain list
of ints, nothing on the GPU crosses the call) and adds its tokens through :meth:`Engine.steps`; an
end-of-sequence token ends the generation early. Greedy only: the selected tokens do not depend on where the
chunks are cut (up to the re-prefill's rounding, which the test checks on the tiny model).
"""
from __future__ import annotations

from typing import Callable


def decode_chunk(model: str, ids: list[int], max_new_tokens: int, engine=None) -> tuple[list[int], bool]:
    """Greedy ``max_new_tokens`` after ``ids`` on ``model`` (or ``engine``); returns ``(new ids, ended at EOS)``."""
    import torch

    from explorer.core.engine import get_engine

    engine = engine or get_engine(model)
    steps = list(engine.steps(torch.tensor(ids, dtype=torch.long), int(max_new_tokens)))
    return [s.token for s in steps], bool(steps and steps[-1].finished)


def generate_in_chunks(model: str, ids: list[int], plan: list[int], wrap: Callable | None = None,
                       engine=None) -> list[int]:
    """Greedy generation of ``sum(plan)`` tokens at most after ``ids``, one call per entry of ``plan``.

    Args:
        plan: tokens per call (e.g. ``plan_chunks(max_new_tokens, SECONDS_PER_TOKEN, limits)``).
        wrap: ``wrap(fn, tokens) -> fn`` decorating one call (``spaces.GPU`` sized for ``tokens``); ``None``: direct.
        engine: a loaded engine instead of ``model`` (tests; with ``wrap`` the call must stay picklable).
    Returns:
        the generated ids (prompt excluded).
    """
    generated: list[int] = []
    for tokens in plan:
        call = wrap(decode_chunk, tokens) if wrap is not None else decode_chunk
        new, ended = call(model, list(ids) + generated, tokens, *(() if engine is None else (engine,)))
        generated.extend(new)
        if ended:
            break
    return generated
