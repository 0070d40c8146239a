"""Per-pass patches: the one door for anything that changes how the shared model runs.

A lens never registers a hook, swaps a module, switches the attention implementation or enables an adapter
itself. It describes the change as a :class:`Patch` and hands it to :meth:`Engine.forward`,
:meth:`Engine.steps`, :meth:`Engine.batch_steps` or :meth:`Engine.greedy_continuation` (``patches=[...]``).
The engine installs the patches inside each locked pass (:func:`applied`) and removes them in ``finally``, in
reverse order, on success, on an exception, on a cancelled request and on Stop (a stopped generator is closed
between passes, when nothing is installed). So a patch is never in place while another user's pass runs: users
interleave between passes, and patches live only inside one.

Patch kinds:

- :class:`ForwardHook` / :class:`PreForwardHook`: ``torch.nn.Module.register_forward_hook`` /
  ``register_forward_pre_hook`` on a submodule named by its dotted path (``"model.layers.3.self_attn"``).
- :class:`ModuleSwap`: the submodule at a dotted path replaced by another module (e.g. a rotary embedding
  with other settings), the original put back after the pass.
- :class:`AttnImplementation`: ``model.set_attn_implementation(name)`` for the pass (``"eager"`` returns
  attention probabilities; ``"sdpa"`` is the default).
- :class:`Adapter`: a PEFT LoRA adapter (on a weight-sharing shadow of the shared model) enabled for the pass;
  the pass then runs through the PEFT model, and the other patches go on the shadow it wraps.

Module paths are resolved with ``Module.get_submodule`` on the model the pass runs (the shared model, a quantised
copy or a LoRA shadow), so one description serves every copy. A patch may also name a module object directly.
"""
from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence


class Patch(abc.ABC):
    """What changes for one pass. Subclasses implement :meth:`install`."""

    @abc.abstractmethod
    def install(self, model) -> Callable[[], None]:
        """Apply the patch to ``model`` (a ``torch.nn.Module``); return the function that undoes it."""


def submodule(model, module) -> Any:
    """The submodule of ``model`` at dotted path ``module`` (``""`` is ``model`` itself), or ``module`` itself
    when it is already a module object.

    Raises:
        ValueError: no submodule at that path (the message names the path).
    """
    if not isinstance(module, str):
        return module
    try:
        return model.get_submodule(module)
    except AttributeError as exc:
        raise ValueError(f"module {module!r} is not a submodule of {type(model).__name__}") from exc


@dataclass(frozen=True)
class ForwardHook(Patch):
    """``hook(module, args, output)`` (``hook(module, args, kwargs, output)`` with ``with_kwargs``) after the
    forward of ``module`` (a dotted path or a module object); a non-None return replaces the output, as in
    ``torch.nn.Module.register_forward_hook``."""

    module: Any
    hook: Callable
    with_kwargs: bool = False

    def install(self, model) -> Callable[[], None]:
        """Register the hook; the undo removes its handle."""
        return submodule(model, self.module).register_forward_hook(self.hook, with_kwargs=self.with_kwargs).remove


@dataclass(frozen=True)
class PreForwardHook(Patch):
    """``hook(module, args)`` (``hook(module, args, kwargs)`` with ``with_kwargs``) before the forward of
    ``module``; a non-None return replaces the inputs, as in ``torch.nn.Module.register_forward_pre_hook``."""

    module: Any
    hook: Callable
    with_kwargs: bool = False

    def install(self, model) -> Callable[[], None]:
        """Register the hook; the undo removes its handle."""
        target = submodule(model, self.module)
        return target.register_forward_pre_hook(self.hook, with_kwargs=self.with_kwargs).remove


@dataclass(frozen=True)
class ModuleSwap(Patch):
    """The submodule at dotted ``path`` (e.g. ``"model.rotary_emb"``, ``"model.layers.2.mlp"``) replaced by
    ``replacement`` for the pass; the original is put back by the undo.

    Raises (at install):
        ValueError: ``path`` is empty or names no submodule.
    """

    path: str
    replacement: Any

    def install(self, model) -> Callable[[], None]:
        """Swap the module in; the undo swaps the original back."""
        if not self.path:
            raise ValueError("path must name a submodule (the model itself cannot be swapped)")
        parent_path, _, name = self.path.rpartition(".")
        parent = submodule(model, parent_path)
        original = submodule(model, self.path)
        setattr(parent, name, self.replacement)
        return lambda: setattr(parent, name, original)


@dataclass(frozen=True)
class AttnImplementation(Patch):
    """The attention implementation ``name`` (``"eager"``, ``"sdpa"``, ...) for the pass, via transformers'
    ``set_attn_implementation``; the previous one (``"sdpa"`` when unset) is restored by the undo."""

    name: str

    def install(self, model) -> Callable[[], None]:
        """Switch the implementation (nothing to do when it is already ``name``)."""
        previous = getattr(model.config, "_attn_implementation", None) or "sdpa"
        if previous == self.name:
            return lambda: None
        model.set_attn_implementation(self.name)
        return lambda: model.set_attn_implementation(previous)


@dataclass(frozen=True)
class Adapter(Patch):
    """A PEFT LoRA adapter enabled for the pass: ``peft_model`` (a ``PeftModel`` on a shadow of the shared model
    that shares its weights) with adapter ``name`` active, in training mode when ``train``; the undo disables the
    adapter layers and puts the model back in eval mode. The pass runs through ``peft_model``.

    Raises (at install):
        ValueError: ``peft_model`` is None (a discarded adapter).
    """

    peft_model: Any
    name: str
    train: bool = False
    label: str = field(default="", compare=False)

    def install(self, model) -> Callable[[], None]:
        """Enable the adapter on ``peft_model`` (``model`` is ignored: an adapter belongs to its shadow)."""
        if self.peft_model is None:
            raise ValueError(f"adapter {self.label or self.name!r} was discarded (its run failed)")
        peft = self.peft_model

        def undo():
            peft.base_model.disable_adapter_layers()
            peft.eval()

        try:
            peft.base_model.enable_adapter_layers()
            peft.set_adapter(self.name, inference_mode=not self.train)
            peft.train(self.train)
        except BaseException:
            undo()
            raise
        return undo


def check(patches: Iterable[Patch] | None) -> tuple[Patch, ...]:
    """``patches`` as a tuple, each checked to be a :class:`Patch`, at most one :class:`Adapter`.

    Raises:
        ValueError: an entry is not a Patch, or more than one adapter was given (the message names ``patches``).
    """
    out = tuple(patches or ())
    for p in out:
        if not isinstance(p, Patch):
            raise ValueError(f"patches must hold Patch objects (explorer.core.patches), got {type(p).__name__}")
    if sum(isinstance(p, Adapter) for p in out) > 1:
        raise ValueError("patches may hold at most one Adapter")
    return out


@contextlib.contextmanager
def applied(model, patches: Sequence[Patch] = (), lock=None) -> Iterator[Any]:
    """Install ``patches`` on ``model`` for the block and yield the module to call for the pass.

    With an :class:`Adapter` the block calls its PEFT model, and the other patches go on the shadow it wraps
    (``peft_model.get_base_model()``), so module paths are those of the plain model. Every installed patch is
    undone in ``finally``, in reverse order, whatever ends the block; a patch whose install raised undoes the
    ones before it.

    Args:
        model: the module tree the pass runs (the shared model, a quantised copy, a LoRA shadow).
        patches: :class:`Patch` objects, installed in order.
        lock: the engine's :class:`explorer.core.turns.TurnLock`; when given, the calling thread must hold it.
    Raises:
        RuntimeError: ``lock`` is given and not held by this thread (patches belong inside a locked pass).
        ValueError: see :func:`check`, or a patch that names a missing module.
    """
    patches = check(patches)
    if not patches:
        yield model
        return
    if lock is not None and not lock.held_by_current_thread():
        raise RuntimeError("patches are installed only inside a locked pass (Engine.forward / Engine.steps)")
    adapter = next((p for p in patches if isinstance(p, Adapter)), None)
    target = model
    if adapter is not None and adapter.peft_model is not None:
        target = adapter.peft_model.get_base_model()
    undo: list[Callable[[], None]] = []
    try:
        for patch in ([adapter] if adapter else []) + [p for p in patches if p is not adapter]:
            undo.append(patch.install(target))
        yield adapter.peft_model if adapter is not None else model
    finally:
        errors = []
        for step in reversed(undo):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - undo the rest, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]
