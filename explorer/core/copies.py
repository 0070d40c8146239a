"""Weight-sharing copies of the shared model: a module tree of its own whose parameters are the very same tensors.

A LoRA run injects its adapter layers into such a copy (PEFT rewrites the module tree it is given), the serving
batcher switches its copy to paged attention, and the merge check merges into one; none of it reaches the shared
model, which is never mutated. Buffers (RoPE's ``inv_freq``, a few KB) and the config are copied; parameters are not,
so a copy costs no weight memory. Runs of a copy still take turns on the shared engine's lock (they read the
shared weights), through :meth:`explorer.core.engine.Engine.forward` / ``patched``.
"""
from __future__ import annotations

import copy


def shadow_copy(model, clone: frozenset[str] = frozenset(), attn_implementation: str | None = None):
    """A copy of ``model``'s module tree that shares its parameter tensors (no weight memory copied).

    Args:
        model: a ``torch.nn.Module`` (the shared model, or a PEFT model built on a shadow).
        clone: parameter names copied too (the merge check merges into those, never into shared weights).
        attn_implementation: set on the copy only (e.g. ``"paged|sdpa"`` for continuous batching); its config is
            its own, so the shared model keeps its implementation.
    Returns:
        the copy (same class as ``model``).
    """
    memo = {id(p): p for name, p in model.named_parameters(remove_duplicate=False) if name not in clone}
    shadow = copy.deepcopy(model, memo)
    if attn_implementation is not None:
        shadow.set_attn_implementation(attn_implementation)
    return shadow
