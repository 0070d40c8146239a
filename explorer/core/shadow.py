"""A shadow module tree per shared model: the same parameter tensors in a separate tree of modules.

Libraries that instrument a model change its modules for good: nnsight 0.8.1 installs its own ``forward`` and
``__nnsight__`` state in the ``__dict__`` of every module it wraps, PEFT replaces ``nn.Linear`` modules. Doing
that to the shared model would change it for every tab and session. So the interventions wrap a *shadow*
(``explorer.core.copies.shadow_copy``): a copy of the module tree whose parameters are the very same tensors, so no
weight memory is copied (buffers such as RoPE's ``inv_freq`` are, a few KB). It is built once per shared model, under the model's
lock (so a capture switch or a temporary hook in flight is never copied), with every hook cleared, and dropped
with the model (weak keys). Its parameters are only ever read: nothing writes to them and no ``.grad`` lands on
them (they keep ``requires_grad=False``).
"""
from __future__ import annotations

import threading
import weakref

from explorer.core.copies import shadow_copy

_SHADOWS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
               "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks")


def hookless_shadow(model):
    """:func:`explorer.core.copies.shadow_copy` of ``model`` (parameters shared, no weight memory copied) with every
    hook copied from ``model`` cleared, in eval mode. Call it under the model's lock.

    Returns:
        ``torch.nn.Module`` of the same class.
    """
    shadow = shadow_copy(model)
    for module in shadow.modules():
        for name in _HOOK_DICTS:
            hooks = module.__dict__.get(name)
            if hooks:
                hooks.clear()
    return shadow.eval()


def shadow_of(engine):
    """The shadow of ``engine``'s shared model, built on first use (under the model's lock) and then reused.

    Returns:
        ``torch.nn.Module``: the shadow tree (see the module docstring).
    """
    model = engine.model
    with _LOCK:
        shadow = _SHADOWS.get(model)
    if shadow is not None:
        return shadow
    with engine.turn():
        built = hookless_shadow(model)
    with _LOCK:
        return _SHADOWS.setdefault(model, built)
