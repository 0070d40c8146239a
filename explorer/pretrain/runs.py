"""The pretraining run registry: background runs, one per session at a time, a server-wide cap and a queue.

A :class:`Job` is a unit of background training owned by one session (a pretraining run, a hyperparameter pair,
the data-quality trio, the induction run). At most ``Limits.max_pretrain_runs`` jobs train at once; up to
``Limits.pretrain_queue_size`` more wait in a FIFO queue (their snapshot says their place and the expected wait);
beyond that a new job is refused with the wait shown. Between steps a job yields to interactive work: while any
shared model's turn lock is busy or has waiters, it sleeps (at most :data:`MAX_YIELD_S` per step), so the lenses
stay responsive on two cores. A job nobody polls for ``Limits.lora_idle_seconds`` stops, like a LoRA run; a page
reload finds a job again through :func:`active_job` because jobs live here, not in the page.

(A minimal runner local to this package: the generic registry the project plans in ``explorer/core`` had not
landed when this was written.)
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from explorer.core.config import get_limits
from explorer.core.turns import all_turn_locks

log = logging.getLogger("llm_explorer")

QUEUED, RUNNING = "queued", "running"
ACTIVE = (QUEUED, RUNNING)
MAX_JOBS_PER_OWNER = 8
MAX_YIELD_S = 0.5
DEFAULT_STEP_S = 0.2  # expected seconds per step before any run has finished (two shared CPU cores)


@dataclass
class Job:
    """A background job and its curves (mutable; the worker thread writes, pollers read).

    Attributes:
        job_id, owner: ids; ``owner`` is the session. kind: ``pretrain``, ``hyper``, ``data``, ``induction``.
        planned_steps: steps of all its curves together (for the expected wait).
        status: ``queued``, ``running``, ``done``, ``stopped``, ``diverged`` or ``failed``; message: why.
        curves: what it trained so far (``explorer.pretrain.loop.Curve`` or the induction record).
        info: kind-specific extras (e.g. the hyperparameter row).
    """

    job_id: str
    owner: str
    kind: str
    planned_steps: int
    work: Callable[["Job"], None] = field(repr=False)
    status: str = QUEUED
    message: str = ""
    notices: list = field(default_factory=list)
    curves: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    last_polled: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = field(default=None, repr=False)
    waited_s: float = 0.0

    def steps_done(self) -> int:
        """Steps completed over all curves."""
        return sum(len(getattr(c, "losses", [])) for c in self.curves)

    def stop_reason(self, _step: int = 0) -> str | None:
        """Why the job must stop now (Stop pressed, nobody polling, the run-time cap), or ``None``."""
        limits = get_limits()
        if self.stop_event.is_set():
            return "Stopped"
        if time.monotonic() - self.last_polled > limits.lora_idle_seconds:
            return f"Stopped: no page polled the run for {limits.lora_idle_seconds:.0f} s"
        if time.time() - self.started > limits.max_run_seconds + self.waited_s:
            return f"Stopped at the run-time cap ({limits.max_run_seconds:.0f} s)"
        return None


_JOBS: dict[str, Job] = {}
_COND = threading.Condition()
_QUEUE: list[str] = []
_STEP_S = [DEFAULT_STEP_S]


def yield_to_interactive() -> None:
    """Sleep while a shared model is running or waiting for an interactive turn (at most :data:`MAX_YIELD_S`)."""
    deadline = time.monotonic() + MAX_YIELD_S
    while time.monotonic() < deadline and any(lock.busy or lock.waiting for lock in all_turn_locks()):
        time.sleep(0.02)


def _running() -> list[Job]:
    return [j for j in _JOBS.values() if j.status == RUNNING]


def expected_wait_s(ahead: list[Job] | None = None) -> float:
    """Seconds until a new job would start: the remaining steps of the running jobs and of ``ahead`` (the queue
    by default), at the latest measured seconds per step, shared over the slots."""
    jobs = _running() + (ahead if ahead is not None else [_JOBS[i] for i in _QUEUE if i in _JOBS])
    steps = sum(max(0, j.planned_steps - j.steps_done()) for j in jobs)
    return steps * _STEP_S[0] / max(1, get_limits().max_pretrain_runs)


def queue_position(job: Job) -> int:
    """1-based place of a queued job (0 once it runs)."""
    with _COND:
        return _QUEUE.index(job.job_id) + 1 if job.job_id in _QUEUE else 0


def start_job(owner: str, kind: str, planned_steps: int, work: Callable[[Job], None], info: dict | None = None,
              notices: list | None = None) -> Job:
    """Register a job for ``owner`` and start its thread; it waits in the queue for a free slot.

    Raises:
        ValueError: no owner, the owner already has a job queued or running, or the queue is full
            (the message gives the expected wait).
    """
    if not owner:
        raise ValueError("No session id: reload the page.")
    limits = get_limits()
    job = Job(job_id=uuid.uuid4().hex[:12], owner=owner, kind=kind, planned_steps=int(planned_steps), work=work,
              info=dict(info or {}), notices=list(notices or []))
    with _COND:
        if any(j.owner == owner and j.status in ACTIVE for j in _JOBS.values()):
            raise ValueError("A training run is already going in this session: wait for it or press Stop first.")
        if len(_running()) >= limits.max_pretrain_runs and len(_QUEUE) >= limits.pretrain_queue_size:
            raise ValueError(f"The server's training queue is full ({len(_QUEUE)} runs waiting, "
                             f"{limits.max_pretrain_runs} training): about {expected_wait_s():.0f} s until a slot "
                             "frees. Try again then.")
        _evict(owner)
        _JOBS[job.job_id] = job
        _QUEUE.append(job.job_id)
    job.thread = threading.Thread(target=_worker, args=(job,), name=f"pretrain-{job.job_id}", daemon=True)
    job.thread.start()
    return job


def _evict(owner: str) -> None:
    mine = sorted((j for j in _JOBS.values() if j.owner == owner and j.status not in ACTIVE), key=lambda j: j.started)
    for old in mine[:max(0, len(mine) - MAX_JOBS_PER_OWNER + 1)]:
        _JOBS.pop(old.job_id, None)


def _wait_for_slot(job: Job) -> bool:
    queued_at = time.time()
    with _COND:
        while True:
            if job.stop_event.is_set():
                _QUEUE.remove(job.job_id)
                job.status, job.message = "stopped", "Stopped while waiting in the queue."
                _COND.notify_all()
                return False
            if _QUEUE[0] == job.job_id and len(_running()) < get_limits().max_pretrain_runs:
                _QUEUE.pop(0)
                job.status, job.waited_s = RUNNING, time.time() - queued_at
                job.last_polled = time.monotonic()
                _COND.notify_all()
                return True
            _COND.wait(0.25)


def _worker(job: Job) -> None:
    import torch

    # one intra-op thread for this thread only (OpenMP's thread count is per thread): a tiny model gains nothing
    # from two, and the other core stays free for the lenses
    torch.set_num_threads(1)
    if not _wait_for_slot(job):
        return
    try:
        job.work(job)
        if job.status == RUNNING:
            job.status = "done"
    except Exception as exc:  # noqa: BLE001 - reported through the job's status
        log.exception("pretraining job %s failed", job.job_id)
        job.status, job.message = "failed", f"The run failed ({type(exc).__name__}: {exc})."
    finally:
        step_s = [t for c in job.curves for t in getattr(c, "step_s", [])]
        if step_s:
            _STEP_S[0] = float(sum(step_s) / len(step_s))
        with _COND:
            _COND.notify_all()


def get_job(job_id: str, owner: str) -> Job:
    """The job ``job_id`` if it belongs to ``owner``.

    Raises:
        ValueError: unknown id or another session's job.
    """
    job = _JOBS.get(str(job_id or "").strip())
    if job is None or job.owner != owner:
        raise ValueError(f"No training run {job_id!r} in this session (runs belong to the session that started them).")
    return job


def jobs_for(owner: str, kind: str | None = None) -> list[Job]:
    """The owner's jobs (of ``kind`` if given), oldest first."""
    return sorted((j for j in list(_JOBS.values()) if j.owner == owner and kind in (None, j.kind)),
                  key=lambda j: j.started)


def active_job(owner: str) -> Job | None:
    """The owner's queued or running job, if any (a reloaded page re-attaches to it)."""
    return next((j for j in jobs_for(owner) if j.status in ACTIVE), None)


def stop(owner: str) -> Job | None:
    """Ask the owner's active job to stop after its current step; returns it (or ``None``)."""
    job = active_job(owner)
    if job is not None:
        job.stop_event.set()
    return job


def wait(job: Job, timeout_s: float | None = None) -> Job:
    """Block until ``job`` ends (or ``timeout_s`` passes), counting as a poller meanwhile; returns it."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while job.thread is not None and job.thread.is_alive():
        job.last_polled = time.monotonic()
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        job.thread.join(0.5 if left is None else min(0.5, left))
    return job


def shutdown(timeout_s: float = 10.0) -> None:
    """Stop every active job and wait for the threads (called at interpreter exit)."""
    jobs = [j for j in list(_JOBS.values()) if j.thread is not None and j.thread.is_alive()]
    for job in jobs:
        job.stop_event.set()
    deadline = time.monotonic() + timeout_s
    for job in jobs:
        job.thread.join(max(0.0, deadline - time.monotonic()))


atexit.register(shutdown)
