"""Background runs: a server-side registry of long jobs (fine-tuning, DPO, pretraining) that outlive a page.

A run is a :class:`Run` (an id, an owner session, a kind, a status, its progress records) plus a *worker*: a
function ``work(run) -> Iterator[record]`` that yields one progress record per unit of work (an optimiser step).
:meth:`RunRegistry.start` runs the worker in a daemon thread and appends each record to ``run.records``. Between
records it checks whether the run must stop (:func:`stop_reason`: Stop pressed, no page polled it for the idle
cap, or the run-time cap reached), and then closes the worker (``GeneratorExit`` at its ``yield``) and marks the
run stopped. A worker that raises marks the run failed (:meth:`Run.fail`). The worker takes the model's lock one
step at a time itself (``Engine.session(grad=True)`` or ``Engine.forward``), so other users interleave.

Runs live here, not in the page, so a reload re-attaches (:meth:`RunRegistry.active`), and they belong to their
owner: :meth:`RunRegistry.get` refuses another session's run id. A page that follows a run reads it through
:meth:`RunRegistry.touch` (the LoRA ``snapshot`` does), which keeps it from being stopped as idle.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

from explorer.core.config import get_limits

log = logging.getLogger("llm_explorer")

RUNNING = "running"
FINISHED = ("done", "stopped", "failed", "uploaded")


def new_run_id() -> str:
    """A fresh run id: 12 hex characters."""
    return uuid.uuid4().hex[:12]


@dataclass(kw_only=True)
class Run:
    """One background run (mutable, owned by a :class:`RunRegistry`).

    Attributes:
        run_id: 12 hex characters. owner: the session it belongs to (browser id or ``gr.Request.session_hash``).
        kind: what it trains (``"sft"``, ``"dpo"``, ``"pretrain"`` ...). status: ``running``, ``done``,
            ``stopped``, ``failed`` or ``uploaded``. message: why it ended. notices: what was capped or adapted.
        records: one progress record per completed unit (whatever the worker yields).
        total: records expected when it runs to the end (0: unknown; stop checks then run before every record).
        started: ``time.time()`` at creation. last_polled: ``time.monotonic()`` of the last :meth:`RunRegistry.touch`.
        idle_seconds, max_seconds: the caps of :func:`stop_reason` (None: ``Limits.lora_idle_seconds`` and
            ``Limits.max_run_seconds``).
        stop_event: set to ask the worker to stop after its current record. thread: the worker thread.
    """

    run_id: str
    owner: str
    kind: str = "run"
    status: str = RUNNING
    message: str = ""
    notices: list = field(default_factory=list)
    records: list = field(default_factory=list)
    total: int = 0
    started: float = field(default_factory=time.time)
    last_polled: float = field(default_factory=time.monotonic)
    idle_seconds: float | None = None
    max_seconds: float | None = None
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        """True while the worker thread runs."""
        return self.thread is not None and self.thread.is_alive()

    def stopped_message(self, why: str, done: int) -> str:
        """The message of a run stopped after ``done`` records for reason ``why`` (subclasses add what is kept)."""
        return f"{why}."

    def done_message(self) -> str:
        """The message of a run whose worker finished without setting one."""
        return f"Finished {len(self.records)} steps."

    def fail(self, message: str) -> None:
        """Mark the run failed with ``message`` (subclasses also drop what it built)."""
        self.status, self.message = "failed", message

    def crashed(self, exc: Exception) -> None:
        """The worker raised ``exc``: mark the run failed saying so (subclasses say what was dropped)."""
        self.fail(f"The run failed ({type(exc).__name__}: {exc}).")

    def cleanup(self) -> None:
        """Called once in the worker thread after the run ended, whatever ended it."""


def stop_reason(run: Run, done: int, start: float) -> str | None:
    """Why ``run`` must stop before its record ``done`` (0-based), or None to go on.

    Args:
        done: records completed so far. start: ``time.perf_counter()`` when the work began.
    Returns:
        ``"Stopped after <done> of <total> steps"`` (Stop pressed), the idle reason (no page polled it for
        ``idle_seconds``) or the run-time cap reason (``max_seconds`` since ``start``); None otherwise.
    """
    limits = get_limits()
    idle = limits.lora_idle_seconds if run.idle_seconds is None else run.idle_seconds
    cap = limits.max_run_seconds if run.max_seconds is None else run.max_seconds
    if run.stop_event.is_set():
        return f"Stopped after {done} of {run.total} steps" if run.total else f"Stopped after {done} steps"
    if time.monotonic() - run.last_polled > idle:
        return f"Stopped after {done} steps: no page polled the run for {idle:.0f} s"
    if time.perf_counter() - start > cap:
        return f"Stopped at the run-time cap ({cap:.0f} s) after {done} steps"
    return None


class RunRegistry:
    """The runs of one family (e.g. fine-tuning: SFT and DPO share one), at most one running per owner.

    Args:
        name: what the runs are called in messages (``"LoRA"``).
        max_per_owner: finished runs an owner keeps (the oldest go first).
        max_total: finished runs kept on the server.
    """

    def __init__(self, name: str = "", max_per_owner: int = 6, max_total: int = 64):
        self.name = name
        self.max_per_owner = max_per_owner
        self.max_total = max_total
        self.runs: dict[str, Run] = {}
        self._lock = threading.Lock()
        _REGISTRIES.append(self)

    # -- membership ---------------------------------------------------------------------------------------------
    def _evict(self, owner: str) -> None:
        """Make room for one more run: the owner keeps its newest runs, the server its newest finished ones."""
        mine = [r for r in self.runs.values() if r.owner == owner and r.status in FINISHED]
        for old in sorted(mine, key=lambda r: r.started)[:max(0, len(mine) - self.max_per_owner + 1)]:
            self.runs.pop(old.run_id, None)
        finished = sorted((r for r in self.runs.values() if r.status in FINISHED), key=lambda r: r.started)
        for old in finished[:max(0, len(self.runs) - self.max_total + 1)]:
            self.runs.pop(old.run_id, None)

    def register(self, run: Run) -> None:
        """Add a finished run (e.g. an uploaded adapter), evicting the owner's oldest."""
        with self._lock:
            self._evict(run.owner)
            self.runs[run.run_id] = run

    @contextlib.contextmanager
    def claim(self, run: Run) -> Iterator[Run]:
        """Register a new running ``run`` for the block that builds it; unregistered if the block raises.

        Raises:
            ValueError: the owner already has a run going (one run per session at a time).
        """
        with self._lock:
            if any(r.owner == run.owner and r.status == RUNNING for r in self.runs.values()):
                raise ValueError("A run is already going in this session: wait for it or press Stop first.")
            self._evict(run.owner)
            self.runs[run.run_id] = run
        try:
            yield run
        except BaseException:
            with self._lock:
                self.runs.pop(run.run_id, None)
            raise

    def get(self, run_id: str, owner: str) -> Run:
        """The run ``run_id`` if it belongs to ``owner``.

        Raises:
            ValueError: unknown id, or another session's run (runs are private to their session).
        """
        run = self.runs.get(str(run_id or "").strip())
        if run is None or run.owner != owner:
            raise ValueError(f"No {self.name + ' ' if self.name else ''}run {run_id!r} in this session (runs "
                             "belong to the session that started them).")
        return run

    def lookup(self, run_id: str) -> Run | None:
        """The run ``run_id`` whoever owns it (for code that already checked ownership, e.g. a chunk call)."""
        return self.runs.get(run_id)

    def runs_for(self, owner: str, kind: str | None = None) -> list[Run]:
        """The owner's runs (of ``kind`` when given), oldest first."""
        return sorted((r for r in list(self.runs.values()) if r.owner == owner and kind in (None, r.kind)),
                      key=lambda r: r.started)

    def active(self, owner: str, kind: str | None = None) -> Run | None:
        """The owner's run still going (of ``kind`` when given), if any: what a reloaded page re-attaches to."""
        return next((r for r in self.runs_for(owner) if r.status == RUNNING and kind in (None, r.kind)), None)

    # -- running ------------------------------------------------------------------------------------------------
    def start(self, run: Run, work: Callable[[Run], Iterator]) -> Run:
        """Run ``work(run)`` in a daemon thread; each record it yields (None: no record) goes to ``run.records``.

        Before each record while fewer than ``run.total`` are done (before every one when ``total`` is 0) the
        thread checks :func:`stop_reason`; on a stop it closes the worker and sets ``status`` ``stopped`` with
        :meth:`Run.stopped_message`. A worker that raises ends the run with :meth:`Run.fail`; one that returns
        leaves the status it set, or ``done``. :meth:`Run.cleanup` runs last.

        Raises:
            ValueError: ``run`` is not in this registry (claim it first).
        """

        if self.runs.get(run.run_id) is not run:
            raise ValueError(f"run {run.run_id!r} is not in the {self.name or 'run'} registry: claim it first")

        def loop():
            start = time.perf_counter()
            items = None
            try:
                items = work(run)
                while True:
                    done = len(run.records)
                    why = stop_reason(run, done, start) if (not run.total or done < run.total) else None
                    if why is not None and run.status == RUNNING:
                        run.status, run.message = "stopped", run.stopped_message(why, done)
                        return
                    try:
                        record = next(items)
                    except StopIteration:
                        break
                    if record is not None:
                        run.records.append(record)
                if run.status == RUNNING:
                    run.status, run.message = "done", run.done_message()
            except Exception as exc:  # noqa: BLE001 - reported through the run's status
                log.exception("%s run %s failed", run.kind, run.run_id)
                run.crashed(exc)
            finally:
                try:
                    if items is not None and hasattr(items, "close"):
                        items.close()
                finally:
                    run.cleanup()

        run.thread = threading.Thread(target=loop, name=f"{run.kind}-{run.run_id}", daemon=True)
        run.thread.start()
        return run

    def touch(self, run: Run) -> Run:
        """Mark ``run`` as followed by a page now (a run nobody follows for its idle cap stops)."""
        run.last_polled = time.monotonic()
        return run

    def stop(self, owner: str, kind: str | None = None) -> Run | None:
        """Ask the owner's running run (of ``kind``) to stop after its current record; returns it (or None)."""
        run = self.active(owner, kind)
        if run is not None:
            run.stop_event.set()
        return run

    def wait(self, run: Run, timeout_s: float | None = None) -> Run:
        """Block until ``run``'s thread ends (or ``timeout_s`` seconds pass), counting as a page following it."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while run.alive:
            self.touch(run)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            run.thread.join(1.0 if left is None else min(1.0, left))
        return run

    def shutdown(self, timeout_s: float = 30.0) -> int:
        """Stop every running run after its current record and wait for the threads (``timeout_s`` in all).
        Returns how many were still going."""
        running = [r for r in list(self.runs.values()) if r.alive]
        for run in running:
            run.stop_event.set()
        deadline = time.monotonic() + timeout_s
        for run in running:
            run.thread.join(max(0.0, deadline - time.monotonic()))
        return len(running)


_REGISTRIES: list[RunRegistry] = []


def shutdown_all(timeout_s: float = 30.0) -> int:
    """:meth:`RunRegistry.shutdown` on every registry (at interpreter exit, so no training thread is inside a torch
    op while Python shuts down). Returns how many runs were still going."""
    deadline = time.monotonic() + timeout_s
    return sum(r.shutdown(max(0.0, deadline - time.monotonic())) for r in list(_REGISTRIES))


atexit.register(shutdown_all)
