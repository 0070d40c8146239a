"""Pretraining jobs in the shared run registry (:mod:`explorer.core.runs`), with a server-wide cap and a queue.

A :class:`Job` is a :class:`~explorer.core.runs.Run` of kind ``pretrain``, ``hyper``, ``data`` or ``induction``
owned by one session; the registry gives one run per session, Stop between steps, the idle and run-time stops and
re-attach after a reload. On top of it: at most ``Limits.max_pretrain_runs`` jobs train at once and up to
``Limits.pretrain_queue_size`` more wait in a FIFO queue (their snapshot says their place and the expected wait);
beyond that a new job is refused with the wait shown. Between steps a job yields to interactive work: while any
shared model's turn lock is busy or has waiters it sleeps (at most :data:`MAX_YIELD_S` per step), and its thread
uses one intra-op thread (OpenMP's count is per thread), so the lenses stay responsive on two cores.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from explorer.core.config import get_limits
from explorer.core.runs import FINISHED, RUNNING, Run, RunRegistry, new_run_id
from explorer.core.turns import all_turn_locks

QUEUED = "queued"
ACTIVE = (QUEUED, RUNNING)
MAX_YIELD_S = 0.5
DEFAULT_STEP_S = 0.2  # expected seconds per step before any run has finished (two shared CPU cores)
QUEUE_POLL_S = 0.25

REGISTRY = RunRegistry("pretraining", max_per_owner=8, max_total=64)
_COND = threading.Condition()
_QUEUE: list[str] = []
_TRAINING: set[str] = set()
_STEP_S = [DEFAULT_STEP_S]


@dataclass(kw_only=True)
class Job(Run):
    """A pretraining job: a registry run with its curves.

    Attributes:
        planned_steps: steps of all its curves together (``Run.total``, used for the expected wait).
        queued: True while it waits for a training slot. waited_s: seconds it waited.
        curves: what it trained so far (``explorer.pretrain.loop.Curve`` or the induction record).
        info: kind-specific extras (e.g. the hyperparameter row).
    """

    queued: bool = True
    waited_s: float = 0.0
    curves: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def planned_steps(self) -> int:
        """Steps of all its curves together."""
        return self.total

    @property
    def state(self) -> str:
        """``queued`` while waiting for a slot, else the registry status."""
        return QUEUED if self.queued and self.status == RUNNING else self.status

    def steps_done(self) -> int:
        """Steps completed over all curves."""
        return sum(len(getattr(c, "losses", [])) for c in self.curves)

    def stopped_message(self, why: str, done: int) -> str:
        """Stopped after ``done`` of its planned steps (what trained so far is kept)."""
        if self.queued:
            return "Stopped while waiting in the queue."
        return f"Stopped after {self.steps_done()} of {self.total} steps."

    def done_message(self) -> str:
        """Finished, with the step count."""
        return f"Finished {self.steps_done()} steps."


def yield_to_interactive() -> None:
    """Sleep while a shared model is running or waiting for an interactive turn (at most :data:`MAX_YIELD_S`)."""
    deadline = time.monotonic() + MAX_YIELD_S
    while time.monotonic() < deadline and any(lock.busy or lock.waiting for lock in all_turn_locks()):
        time.sleep(0.02)


def expected_wait_s(ahead: list[Job] | None = None) -> float:
    """Seconds until a new job would start: the remaining steps of the training jobs and of ``ahead`` (the whole
    queue by default), at the latest measured seconds per step, shared over the slots."""
    with _COND:
        ids = list(_TRAINING) + ([j.run_id for j in ahead] if ahead is not None else list(_QUEUE))
    jobs = [REGISTRY.lookup(i) for i in ids]
    steps = sum(max(0, j.total - j.steps_done()) for j in jobs if j is not None)
    return steps * _STEP_S[0] / max(1, get_limits().max_pretrain_runs)


def queue_position(job: Job) -> int:
    """1-based place of a queued job (0 once it trains)."""
    with _COND:
        return _QUEUE.index(job.run_id) + 1 if job.run_id in _QUEUE else 0


def jobs_ahead(job: Job) -> list[Job]:
    """The queued jobs before ``job``."""
    with _COND:
        ids = _QUEUE[:max(0, _QUEUE.index(job.run_id))] if job.run_id in _QUEUE else []
    return [j for j in (REGISTRY.lookup(i) for i in ids) if j is not None]


def start_job(owner: str, kind: str, planned_steps: int, steps: Callable[[Job], Iterator], info: dict | None = None,
              notices: list | None = None) -> Job:
    """Register a job for ``owner`` and start it; it waits in the queue for a free slot, then runs ``steps(job)``
    (a generator yielding one record per training step).

    Raises:
        ValueError: no owner, the owner already has a job queued or running, or the queue is full (the message
            gives the expected wait).
    """
    if not owner:
        raise ValueError("No session id: reload the page.")
    limits = get_limits()
    job = Job(run_id=new_run_id(), owner=owner, kind=kind, total=int(planned_steps), info=dict(info or {}),
              notices=list(notices or []))
    with REGISTRY.claim(job):
        with _COND:
            if len(_TRAINING) >= limits.max_pretrain_runs and len(_QUEUE) >= limits.pretrain_queue_size:
                raise ValueError(f"The server's training queue is full ({len(_QUEUE)} runs waiting, "
                                 f"{len(_TRAINING)} training): about {expected_wait_s():.0f} s until a slot frees. "
                                 "Try again then.")
            _QUEUE.append(job.run_id)
    return REGISTRY.start(job, lambda run: _work(run, steps))


def _work(job: Job, steps: Callable[[Job], Iterator]) -> Iterator:
    # no torch.set_num_threads here: it also sets the process-wide default that every thread started later takes,
    # so one training run would leave every later request of every user on one intra-op thread
    queued_at = time.time()
    try:
        while True:
            with _COND:
                if _QUEUE[0] == job.run_id and len(_TRAINING) < get_limits().max_pretrain_runs:
                    _QUEUE.pop(0)
                    _TRAINING.add(job.run_id)
                    break
                _COND.wait(QUEUE_POLL_S)
            yield None  # the registry checks Stop, idle and the run-time cap between these
        job.queued, job.waited_s = False, time.time() - queued_at
        job.last_polled = time.monotonic()
        yield from steps(job)
    finally:
        with _COND:
            if job.run_id in _QUEUE:
                _QUEUE.remove(job.run_id)
            _TRAINING.discard(job.run_id)
            _COND.notify_all()
        step_s = [t for c in job.curves for t in getattr(c, "step_s", [])]
        if step_s:
            _STEP_S[0] = float(sum(step_s) / len(step_s))


def get_job(job_id: str, owner: str) -> Job:
    """The job ``job_id`` if it belongs to ``owner``.

    Raises:
        ValueError: unknown id or another session's job.
    """
    return REGISTRY.get(job_id, owner)


def jobs_for(owner: str, kind: str | None = None) -> list[Job]:
    """The owner's jobs (of ``kind`` if given), oldest first."""
    return REGISTRY.runs_for(owner, kind)


def active_job(owner: str) -> Job | None:
    """The owner's queued or running job, if any (a reloaded page re-attaches to it)."""
    return REGISTRY.active(owner)


def stop(owner: str) -> Job | None:
    """Ask the owner's active job to stop after its current step; returns it (or ``None``)."""
    return REGISTRY.stop(owner)


def wait(job: Job, timeout_s: float | None = None) -> Job:
    """Block until ``job`` ends (or ``timeout_s`` passes), counting as a poller meanwhile; returns it."""
    return REGISTRY.wait(job, timeout_s)


__all__ = ["ACTIVE", "FINISHED", "QUEUED", "RUNNING", "REGISTRY", "Job", "active_job", "expected_wait_s", "get_job",
           "jobs_ahead", "jobs_for", "queue_position", "start_job", "stop", "wait", "yield_to_interactive"]
