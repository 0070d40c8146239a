"""Long tasks that Stop (or a closed browser tab) really stops.

Gradio cancels a generator handler only when it reaches a ``yield``; a handler blocked inside a
long model loop keeps the CPU and the model lock until the loop ends. ``iterate_in_thread`` runs the
work in a worker thread and yields a heartbeat (``None``) while it runs, so the handler is always
near a ``yield``; when Gradio closes the handler, a stop flag is set and the worker's next
``check()`` raises :class:`Stopped`, ending it at the next step boundary.
"""
from __future__ import annotations

import contextvars
import queue
import threading
from typing import Callable, Iterator


class Stopped(Exception):
    """Raised inside the worker when the consumer has gone away."""


class StopFlag:
    """A flag the worker polls between steps."""

    def __init__(self):
        self._event = threading.Event()

    def set(self) -> None:
        """Ask the worker to stop."""
        self._event.set()

    def is_set(self) -> bool:
        """True once a stop was asked for."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Stopped` if a stop was asked for; call it once per step."""
        if self._event.is_set():
            raise Stopped()


def iterate_in_thread(produce: Callable[[StopFlag], Iterator], heartbeat_s: float = 0.5) -> Iterator:
    """Yield the items of ``produce(flag)`` computed in a worker thread, and ``None`` every ``heartbeat_s``
    seconds while waiting. Errors in the worker are re-raised here. Closing this generator sets the flag.

    The worker runs in a copy of the caller's context, so ``gr.Progress`` and ``gr.Warning`` called inside
    ``produce`` find the request (Gradio keeps it in context variables, which a new thread does not inherit)."""
    flag, items = StopFlag(), queue.Queue()

    def worker():
        try:
            for item in produce(flag):
                items.put(("item", item))
                if flag.is_set():
                    break
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put(("error", exc))
        finally:
            items.put(("done", None))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(worker,), name="stoppable-task",
                              daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, value = items.get(timeout=heartbeat_s)
            except queue.Empty:
                yield None
                continue
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        flag.set()


def drive(produce: Callable[[StopFlag], Iterator], progress, heartbeat, on_partial=None):
    """A handler's loop over a lens ``iter_run`` run by :func:`iterate_in_thread`: yields ``heartbeat`` while
    waiting, reports each :class:`explorer.core.progress.Progress` to ``progress(fraction, desc=message)`` and
    yields ``on_partial(partial)`` for one that carries a partial result (else ``heartbeat``); returns the final
    result (``None`` if the work ended without one). Use as ``result = yield from drive(...)``."""
    from explorer.core.progress import Progress

    result = None
    for item in iterate_in_thread(produce):
        if item is None:
            yield heartbeat
        elif isinstance(item, Progress):
            progress(item.fraction, desc=item.message)
            yield on_partial(item.partial) if on_partial is not None and item.partial is not None else heartbeat
        else:
            result = item
    return result
