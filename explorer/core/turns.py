"""Fair turns on a shared model: who runs the next forward pass or optimiser step.

Every model has one :class:`TurnLock` (``turn_lock(loaded.lock)``), which :class:`explorer.core.engine.Engine`
exposes as ``engine.lock``. It is re-entrant like the ``threading.RLock`` it wraps (and holds that RLock while a
turn runs, so code that takes the raw lock still serialises), but when the model is free and several threads
wait, it picks the next one by kind instead of by luck:

- ``"interactive"`` turns (a user's forward pass or decode step) go first;
- ``"training"`` turns (a LoRA optimiser step) still get at least one turn in three, counted in model time:
  once two interactive turns have run while training waited *and* they took at least twice as long as the
  last training step, the oldest training waiter goes next. So a run keeps a third of the model and finishes
  (within about 3x its time alone) even in a busy room, while a long optimiser step cannot take two thirds
  of the time from users whose steps are short.

A waiter whose wait exceeds ``Limits.max_wait_seconds`` gets :class:`ModelBusy` (a ``ValueError`` with a
readable message, shown as an error rather than a spinner). The lock also counts what the Serving lens shows:
turns granted (forward passes or optimiser steps), generated tokens and batch sizes over the last minute.

Nothing here imports gradio: the app registers :data:`WAIT_LISTENERS` to tell a waiting user their place.
"""
from __future__ import annotations

import collections
import contextlib
import contextvars
import itertools
import threading
import time
from typing import Callable, Iterator

from explorer.core.config import get_limits

KINDS = ("interactive", "training")
TRAINING_SHARE = 3  # training gets at least one turn in this many while interactive work waits
WINDOW_S = 60.0  # seconds of history kept for batch sizes and tokens/s

_kind: contextvars.ContextVar[str] = contextvars.ContextVar("turn_kind", default="interactive")
_TICKETS = itertools.count()

# Called as listener(model_name, ahead, estimate_s) once per waiting turn that waits longer than NOTICE_AFTER_S.
WAIT_LISTENERS: list[Callable[[str, int, float], None]] = []
NOTICE_AFTER_S = 1.0

# Called as check() -> bool in the requesting thread; True means the client behind it has gone (disconnected or
# cancelled), so the request ends at its next turn and frees its place. The app registers one (components/serving.py).
CANCEL_CHECKS: list[Callable[[], bool]] = []


class ModelBusy(ValueError):
    """A request waited longer than its cap for a turn on the model."""


class Cancelled(ModelBusy):
    """The client behind this request went away (disconnected or cancelled); its place was given up."""


def cancelled() -> bool:
    """True when a registered :data:`CANCEL_CHECKS` check says this thread's client has gone."""
    return any(check() for check in list(CANCEL_CHECKS))


def raise_if_cancelled() -> None:
    """Raise :class:`Cancelled` when this thread's client has gone (see :func:`cancelled`)."""
    if cancelled():
        raise Cancelled("The request was cancelled: its client went away, so its place was given up.")


@contextlib.contextmanager
def turn_kind(kind: str) -> Iterator[None]:
    """Mark the turns taken in this block (this thread or context) as ``kind`` (one of :data:`KINDS`).

    Raises:
        ValueError: unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"turn kind must be one of {KINDS} (got {kind!r})")
    token = _kind.set(kind)
    try:
        yield
    finally:
        _kind.reset(token)


class TurnLock:
    """A re-entrant lock with priority turns (interactive before training, training at least 1 in 3).

    Attributes:
        name: the model's name (for stats and messages).
        raw: the wrapped ``threading.RLock`` (held while a turn runs).
        granted: turns granted per kind since start (``{"interactive": n, "training": m}``).
        tokens: tokens generated on this model since start.
    """

    def __init__(self, raw=None, name: str = ""):
        self.raw = raw if raw is not None else threading.RLock()
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._waiting: dict[int, tuple[str, int]] = {}  # ticket -> (kind, thread id)
        self._interactive_in_a_row = 0
        self._interactive_ms = 0.0  # interactive model time since the last training turn
        self._last_training_ms = 0.0
        self._hold_ms = {"interactive": 50.0, "training": 500.0}  # moving averages for the wait estimate
        self._started: float = 0.0
        self._owner_kind = "interactive"
        self.granted = {k: 0 for k in KINDS}
        self.tokens = 0
        self._history: collections.deque = collections.deque()  # (time, batch size, tokens)
        self._hist_lock = threading.Lock()

    # -- the lock protocol -------------------------------------------------------------------------------------
    def acquire(self, blocking: bool = True, timeout: float = -1, kind: str | None = None,
                cancellable: bool = True) -> bool:
        """Wait for a turn; ``kind`` defaults to the context's :func:`turn_kind` (``"interactive"``).

        Args:
            timeout: seconds; ``-1`` means the ``max_wait_seconds`` cap.
            cancellable: end the request (:class:`Cancelled`) when its client has gone, before the turn or
                while waiting (False for a thread that serves many clients, such as the batching loop).
        Returns:
            True when the turn was granted (False only with ``blocking=False`` and the model busy).
        Raises:
            ModelBusy: the wait exceeded the cap.
            Cancelled: the client went away (its place in the line is freed).
        """
        me = threading.get_ident()
        kind = kind or _kind.get()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
        if cancellable:
            raise_if_cancelled()
        with self._cond:
            free = self._owner is None and not self._waiting
            if free:
                self._grant(me, kind)
        if free:
            return self._take_raw()  # outside the condition: code holding the raw lock directly only delays us
        with self._cond:
            if not blocking:
                return False
            ticket = next(_TICKETS)
            self._waiting[ticket] = (kind, me)
            cap = get_limits().max_wait_seconds if timeout is None or timeout < 0 else float(timeout)
            start = time.monotonic()
            noticed = False
            try:
                while not (self._owner is None and self._next() == ticket):
                    waited = time.monotonic() - start
                    if cancellable and cancelled():
                        raise Cancelled(f"The request was cancelled after waiting {waited:.0f} s: its client went "
                                        "away, so its place was given up.")
                    if waited >= cap:
                        ahead = self._ahead(ticket)
                        raise ModelBusy(
                            f"The model is busy: this request waited {waited:.0f} s for its turn "
                            f"({ahead} ahead of it) and was ended at the {cap:.0f} s cap. Please try again shortly.")
                    if not noticed and waited >= NOTICE_AFTER_S:
                        noticed = True
                        ahead = self._ahead(ticket)
                        estimate = self.estimate_s(ahead)
                        self._cond.release()
                        try:
                            for listener in list(WAIT_LISTENERS):
                                listener(self.name, ahead, estimate)
                        finally:
                            self._cond.acquire()
                        continue
                    self._cond.wait(min(0.25, max(0.01, cap - waited)))
            finally:
                self._waiting.pop(ticket, None)
                self._cond.notify_all()
            self._grant(me, kind)
        return self._take_raw()

    def release(self) -> None:
        """End this thread's turn (or one level of a re-entrant hold).

        Raises:
            RuntimeError: the calling thread does not hold the lock.
        """
        me = threading.get_ident()
        with self._cond:
            if self._owner != me:
                raise RuntimeError("cannot release a turn this thread does not hold")
            self._depth -= 1
            if self._depth:
                return
            held = (time.monotonic() - self._started) * 1000.0
            kind = self._owner_kind
            self._hold_ms[kind] = 0.8 * self._hold_ms[kind] + 0.2 * held
            if kind == "training":
                self._last_training_ms = held
            else:
                self._interactive_ms += held
            self._owner = None
            self.raw.release()
            self._cond.notify_all()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @contextlib.contextmanager
    def turn(self, kind: str | None = None) -> Iterator["TurnLock"]:
        """Hold one turn of ``kind`` for the block (see :data:`KINDS`; default: the context's :func:`turn_kind`)."""
        self.acquire(kind=kind)
        try:
            yield self
        finally:
            self.release()

    # -- scheduling ---------------------------------------------------------------------------------------------
    def _next(self) -> int | None:
        """The ticket that goes next: the oldest interactive waiter, unless training is owed its 1-in-3 turn."""
        if not self._waiting:
            return None
        by_kind = {k: [t for t, (kk, _) in sorted(self._waiting.items()) if kk == k] for k in KINDS}
        owed = (self._interactive_in_a_row >= TRAINING_SHARE - 1
                and self._interactive_ms >= (TRAINING_SHARE - 1) * self._last_training_ms)
        if by_kind["training"] and (not by_kind["interactive"] or owed):
            return by_kind["training"][0]
        return by_kind["interactive"][0] if by_kind["interactive"] else by_kind["training"][0]

    def _ahead(self, ticket: int) -> int:
        """How many waiters would go before ``ticket`` (interactive first), plus the running turn."""
        kind = self._waiting.get(ticket, ("interactive", 0))[0]
        older_same = sum(1 for t, (k, _) in self._waiting.items() if k == kind and t < ticket)
        other = sum(1 for k, _ in self._waiting.values() if k != kind)
        if kind == "interactive":  # training waiters go before it only every third turn
            other = min(other, (older_same + 1) // (TRAINING_SHARE - 1))
        return older_same + other + (1 if self._owner is not None else 0)

    def _grant(self, me: int, kind: str) -> None:
        training_waits = any(k == "training" for k, _ in self._waiting.values())
        if kind == "training":
            self._interactive_in_a_row, self._interactive_ms = 0, 0.0
        elif training_waits:
            self._interactive_in_a_row += 1
        self._owner, self._depth, self._owner_kind = me, 1, kind
        self._started = time.monotonic()
        self.granted[kind] += 1

    def _take_raw(self) -> bool:
        self.raw.acquire()
        return True

    # -- numbers for the Serving lens --------------------------------------------------------------------------
    def estimate_s(self, ahead: int) -> float:
        """Seconds until a waiter with ``ahead`` turns before it runs (moving average of interactive turns)."""
        return ahead * self._hold_ms["interactive"] / 1000.0

    @property
    def waiting(self) -> int:
        """Threads waiting for a turn now."""
        return len(self._waiting)

    def held_by_current_thread(self) -> bool:
        """True while the calling thread holds a turn (at any re-entrant depth)."""
        return self._owner == threading.get_ident()

    @property
    def busy(self) -> bool:
        """True while a turn runs."""
        return self._owner is not None

    def record(self, tokens: int, batch_size: int = 1) -> None:
        """Count ``tokens`` generated by one forward pass over ``batch_size`` sequences (for tokens/s and batch sizes)."""
        now = time.time()
        with self._hist_lock:
            self.tokens += int(tokens)
            self._history.append((now, int(batch_size), int(tokens)))
            while self._history and self._history[0][0] < now - WINDOW_S:
                self._history.popleft()

    def recent(self, window_s: float = WINDOW_S) -> tuple[list[int], float]:
        """``(batch sizes of the passes in the last window_s seconds, generated tokens per second over it)``."""
        now = time.time()
        with self._hist_lock:
            rows = [r for r in self._history if r[0] >= now - window_s]
        return [r[1] for r in rows], sum(r[2] for r in rows) / window_s


_LOCKS: dict[int, tuple[object, TurnLock]] = {}
_LOCKS_GUARD = threading.Lock()


def turn_lock(raw, name: str = "") -> TurnLock:
    """The one :class:`TurnLock` wrapping ``raw`` (a model's ``RLock``); created on first use."""
    with _LOCKS_GUARD:
        entry = _LOCKS.get(id(raw))
        if entry is None or entry[0] is not raw:
            entry = _LOCKS[id(raw)] = (raw, TurnLock(raw, name))
        return entry[1]


def all_turn_locks() -> list[TurnLock]:
    """Every model's turn lock created so far."""
    with _LOCKS_GUARD:
        return [entry[1] for entry in _LOCKS.values()]
