"""nnsight traces on the shadow module tree: the one way the Circuits lens reads and edits activations.

nnsight (Fiotto-Kaufman et al. 2024, "NNsight and NDIF: Democratizing Access to Foundation Model Internals")
runs a model with a block of code interleaved with its forward pass: inside ``with model.trace(ids):`` a module's
``.output`` / ``.input`` is the real tensor of that pass, read with ``nnsight.save`` or edited in place.

How it is used safely here:

- nnsight wraps :func:`explorer.core.shadow.shadow_of` (a module tree sharing the shared model's parameters),
  never the shared model, because it installs ``forward`` and ``__nnsight__`` state in every wrapped module's
  ``__dict__``. One wrapper per model, built once.
- ``import nnsight`` reads ``NNSIGHT_CONFIG`` = ``explorer/core/nnsight.yaml`` (``PYMOUNT: false``), so ``.save``
  is not mounted on every Python object (Gradio duck-types results on ``hasattr(result, "save")``). Set before
  the import; :func:`nnsight_module` refuses to go on if ``.save`` was mounted anyway.
- :func:`trace` runs one pass, holding one model turn (``Engine.session``) for that pass only.
  :class:`TracedModel` is a model-like callable for ``Engine.steps`` (``model=``) so a continuation after an
  intervention runs the same edit on every pass, one turn per token.
- Gradients (attribution patching) come from ``torch.autograd.grad`` on activations the body marked with
  ``requires_grad_``; the shared parameters keep ``requires_grad=False``, so no ``.grad`` lands on them.
"""
from __future__ import annotations

import os
import sys
import threading
import weakref
from typing import Any, Callable

from explorer.core.shadow import shadow_of

CONFIG_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nnsight.yaml")
_WRAPPED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()

Body = Callable[[Any, dict], None]


def nnsight_module():
    """``import nnsight`` with this project's config (``PYMOUNT: false``).

    Raises:
        RuntimeError: nnsight was imported earlier with ``.save`` mounted on every object.
    """
    if "nnsight" not in sys.modules:
        os.environ["NNSIGHT_CONFIG"] = CONFIG_FILE
    import nnsight

    if hasattr(object(), "save"):
        raise RuntimeError("nnsight mounted .save on every object (PYMOUNT); import it through "
                           "explorer.core.intervene so NNSIGHT_CONFIG points at explorer/core/nnsight.yaml.")
    return nnsight


def save(value):
    """``nnsight.save(value)``: keep ``value`` (a tensor of the pass) after the trace ends."""
    return nnsight_module().save(value)


def traced(engine):
    """The nnsight wrapper (``nnsight.NNsight``) of ``engine``'s shadow tree, built once per model."""
    nnsight = nnsight_module()
    shadow = shadow_of(engine)
    with _LOCK:
        wrapped = _WRAPPED.get(shadow)
        if wrapped is None:
            wrapped = _WRAPPED[shadow] = nnsight.NNsight(shadow)
        return wrapped


def decoder(wrapped):
    """The decoder stack of a causal-LM wrapper or module (``.model``: ``embed_tokens``, ``layers``, ``norm``)."""
    return wrapped.model


def run_trace(wrapped, body: Body, **forward_kwargs) -> dict:
    """Run one traced pass of ``wrapped`` (no lock taken: the caller holds a turn) and return ``body``'s store.

    ``body(wrapped, store)`` runs interleaved with the pass: it reads modules in execution order and puts what it
    keeps into ``store`` through :func:`save`. ``store["output"]`` is the model's output.
    """
    store: dict = {}
    with wrapped.trace(**forward_kwargs):
        body(wrapped, store)
        store["output"] = save(wrapped.output)
    return store


def trace(engine, ids, body: Body, grad: bool = False, after: Callable[[dict], None] | None = None,
          **forward_kwargs) -> dict:
    """One traced forward pass of ``ids`` on the shadow, holding one model turn for that pass.

    Args:
        engine: the model's :class:`explorer.core.engine.Engine`.
        ids: token ids ``(n,)`` or ``(batch, n)``.
        body: ``body(wrapped, store)``, see :func:`run_trace`.
        grad: keep autograd on (attribution patching); otherwise ``torch.inference_mode``. The turn is interactive.
        after: ``after(store)`` runs in the same turn once the pass is done (a backward pass through its graph).
        **forward_kwargs: passed to the model (``logits_to_keep`` ...).
    Returns:
        the store: what ``body`` saved, plus ``"output"``.
    """
    wrapped = traced(engine)
    with engine.session(grad=grad, kind="interactive"):
        store = run_trace(wrapped, body, input_ids=engine.as_input(ids), **forward_kwargs)
        if after is not None:
            after(store)
        return store


class TracedModel:
    """A model-like callable for ``Engine.steps(model=...)``: every pass is a trace with the same ``body``.

    ``Engine.steps`` holds the model's turn around each call, so each generated token is one turn; ``body`` gets
    the pass's ``input_ids`` length through ``store["n_new"]`` (the prompt at the prefill, then 1).

    Attributes:
        config: the shared model's config (``Engine.steps`` builds its ``DynamicCache`` from it).
    """

    def __init__(self, engine, body: Body):
        self.engine = engine
        self.body = body
        self.config = engine.model.config

    def __call__(self, input_ids=None, **kwargs):
        """One traced pass; returns the model output (logits, ``past_key_values``)."""
        n_new = int(input_ids.shape[-1])

        def body(wrapped, store):
            store["n_new"] = n_new
            self.body(wrapped, store)

        return run_trace(traced(self.engine), body, input_ids=input_ids, **kwargs)["output"]
