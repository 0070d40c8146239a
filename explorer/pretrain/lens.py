"""The pretraining lens contract: start a background job, follow it (``iter_run``), block (``run``), JSON
(``to_api``, the one serialiser: :meth:`PretrainResult.to_api`).

Job kinds: ``pretrain`` (one model from random weights), ``hyper`` (a pair of short runs for one hyperparameter
row), ``data`` (the same compute on the clean, corrupted and repeated corpora), ``induction`` (the pinned 2-layer
attention-only run). Every job goes through :mod:`explorer.pretrain.runs` (cap, queue, one per session).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Iterator

from explorer.core.progress import Progress, run_to_end, to_api  # noqa: F401 (to_api: the one serialiser)
from explorer.core.provenance import Provenance, measured
from explorer.pretrain import experiments, induction, runs
from explorer.pretrain.data import VARIANTS, check_seq_len, corpus
from explorer.pretrain.loop import CHINCHILLA_TOKENS_PER_PARAM, Curve, curve_steps, new_curve
from explorer.pretrain.model import settings_from_dict

KINDS = ("pretrain", "hyper", "data", "induction")
POLL_S = 0.25


@dataclass(frozen=True)
class PretrainResult:
    """A frozen view of a job.

    Attributes:
        run_id, kind, status, message: the job (status ``queued``, ``running``, ``done``, ``stopped``, ``failed``;
            a diverged pretraining run is ``stopped`` with a message saying so, its curve ``diverged``).
        curves: copies of its :class:`~explorer.pretrain.loop.Curve` (or
            :class:`~explorer.pretrain.induction.InductionCurve`) records. info: kind extras (the hyperparameter row
            key, the planned steps). queue_position: 1-based place while queued (0 otherwise); wait_s: expected
            seconds until it starts (0 once running). notices: capped values.
    """

    run_id: str
    kind: str
    status: str
    message: str
    curves: tuple
    info: dict
    planned_steps: int
    queue_position: int = 0
    wait_s: float = 0.0
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("pretraining run"))

    @property
    def steps_done(self) -> int:
        """Steps completed over all curves."""
        return sum(len(c.losses) for c in self.curves)

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.status in runs.ACTIVE

    def to_api(self) -> dict:
        """The JSON of the job. A ``pretrain`` job gives the ``/pretrain`` JSON: ``{"run_id", "losses" (train,
        nats/token, one per step), "val_losses" (clean validation windows, at "val_steps"), "tokens_seen",
        "non_embedding_params", "embedding_params", "tokens_per_param" (Chinchilla's ~20 beside it), "samples":
        [{"step", "text"}], "status", "message", "corpus", "corpus_tokens", "settings", "notices", "provenance"}``;
        other kinds give ``{"run_id", "kind", "status", "message", "curves": [{"label", "status", "losses"}],
        "provenance"}``."""
        if self.kind != "pretrain":
            return {"run_id": self.run_id, "kind": self.kind, "status": self.status, "message": self.message,
                    "curves": [{"label": c.label, "status": c.status, "losses": list(c.losses)} for c in self.curves],
                    "provenance": self.provenance.to_api()}
        curve: Curve | None = self.curves[0] if self.curves else None
        return {"run_id": self.run_id, "status": self.status, "message": self.message,
                "losses": list(curve.losses) if curve else [], "val_losses": list(curve.val_losses) if curve else [],
                "val_steps": list(curve.val_steps) if curve else [], "tokens_seen": curve.tokens_seen if curve else 0,
                "non_embedding_params": curve.non_embedding_params if curve else 0,
                "embedding_params": curve.embedding_params if curve else 0,
                "tokens_per_param": curve.tokens_per_param if curve else 0.0,
                "chinchilla_tokens_per_param": CHINCHILLA_TOKENS_PER_PARAM,
                "samples": [{"step": s, "text": t} for s, t in (curve.samples if curve else [])],
                "corpus": curve.corpus if curve else "", "corpus_tokens": curve.corpus_tokens if curve else 0,
                "settings": self.info.get("settings", {}), "notices": list(self.notices),
                "provenance": self.provenance.to_api()}


def snapshot(job: runs.Job) -> PretrainResult:
    """A frozen copy of ``job`` (reading it counts as a page polling the job)."""
    runs.REGISTRY.touch(job)
    curves = tuple(copy.copy(c) for c in list(job.curves))
    for c in curves:
        for name, value in vars(c).items():
            if isinstance(value, list):
                setattr(c, name, list(value))
    status = job.state
    position = runs.queue_position(job) if status == runs.QUEUED else 0
    what = {"pretrain": "a tiny Llama trained from random weights", "hyper": "a pair of tiny Llama runs",
            "data": "three tiny Llama runs on three corpora", "induction": "a 2-layer attention-only model"}[job.kind]
    return PretrainResult(
        run_id=job.run_id, kind=job.kind, status=status, message=job.message, curves=curves, info=dict(job.info),
        planned_steps=job.planned_steps, queue_position=position,
        wait_s=runs.expected_wait_s(runs.jobs_ahead(job)) if position else 0.0, notices=tuple(job.notices),
        provenance=measured(f"{what} on this server's CPU: {sum(len(c.losses) for c in curves)} of "
                            f"{job.planned_steps} steps"))


def _train_curves(job: runs.Job, plans: list) -> Iterator[int]:
    """The job's steps: train ``plans`` (``[(label, PretrainSettings, variant)]``) one after another, appending each
    curve to the job and yielding once per step. A diverged pretraining run ends the job (``stopped``, saying so);
    in a pair or trio the next run goes on."""
    for label, settings, variant in plans:
        data = corpus(variant)
        curve, model = new_curve(label, settings, data)
        job.curves.append(curve)
        yield from curve_steps(curve, model, data, runs.yield_to_interactive)
        if curve.status == "diverged" and job.kind == "pretrain":
            job.status, job.message = "stopped", curve.message
            return


def start(owner: str, kind: str = "pretrain", settings: dict | None = None, row: str | None = None) -> runs.Job:
    """Validate and queue a job of ``kind`` for ``owner``.

    Args:
        settings: ``/pretrain`` settings (kind ``pretrain``; missing keys take the defaults).
        row: the hyperparameter row key (kind ``hyper``).
    Raises:
        ValueError: an unknown kind or row, bad settings (see :func:`explorer.pretrain.model.settings_from_dict`),
            ``seq_len`` longer than the corpus allows, a job already going for ``owner``, a full queue.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} (got {kind!r})")
    notices: list[str] = []
    seed = int((settings or {}).get("seed", 0) or 0)
    if kind == "pretrain":
        parsed, notices = settings_from_dict(settings)
        check_seq_len(parsed.seq_len, corpus("clean"))  # before queueing
        plans = [("run", parsed, "clean")]
        info = {"settings": parsed.as_dict()}
    elif kind == "hyper":
        the_row = experiments.hyper_row(row)
        plans = [(label, settings_from_dict(values)[0], "clean")
                 for label, values in experiments.pair_settings(the_row, seed)]
        info = {"row": the_row.key}
    elif kind == "data":
        values = settings_from_dict(experiments.data_settings(seed))[0]
        plans = [(variant, values, variant) for variant in VARIANTS]
        info = {"variants": list(VARIANTS)}
    else:
        return runs.start_job(owner, kind, induction.PINNED["steps"], _induction_steps,
                              info={"settings": dict(induction.PINNED)})
    return runs.start_job(owner, kind, sum(p[1].steps for p in plans), lambda job: _train_curves(job, plans),
                          info=info, notices=notices)


def _induction_steps(job: runs.Job) -> Iterator[int]:
    curve = induction.InductionCurve(settings=dict(job.info["settings"]))
    job.curves.append(curve)
    yield from induction.steps(curve, runs.yield_to_interactive)


def follow(job: runs.Job, poll_s: float = POLL_S) -> Iterator[Progress | PretrainResult]:
    """Yield a :class:`Progress` (``partial`` = the :class:`PretrainResult` so far) whenever the job moves, then
    the final result. Following a job keeps it from being stopped as idle."""
    last = None
    while True:
        snap = snapshot(job)
        if not snap.active:
            yield snap
            return
        key = (snap.status, snap.steps_done, snap.queue_position)
        if key != last:
            last = key
            message = (f"waiting in the queue: place {snap.queue_position}, about {snap.wait_s:.0f} s"
                       if snap.status == runs.QUEUED else f"step {snap.steps_done} of {snap.planned_steps}")
            yield Progress(snap.steps_done / max(1, snap.planned_steps), message, partial=snap)
        if job.thread is not None:
            job.thread.join(poll_s)


def iter_run(settings: dict | None = None, owner: str = "local", kind: str = "pretrain",
             row: str | None = None) -> Iterator[Progress | PretrainResult]:
    """Start a job (see :func:`start`) and follow it (see :func:`follow`)."""
    yield from follow(start(owner, kind, settings, row))


def run(settings: dict | None = None, owner: str = "local", kind: str = "pretrain",
        row: str | None = None) -> PretrainResult:
    """Run a job to its end and return its :class:`PretrainResult` (see :func:`start` for errors)."""
    return run_to_end(iter_run(settings, owner, kind, row))
