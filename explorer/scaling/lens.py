"""The scaling lens contract: ``/scaling_fit`` (the law fitted to the stored grid) and ``/moe_compare`` (a job in
the pretraining run registry: queue, one per session, Stop, idle stop), followed by ``iter_run``.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.core.config import data_path
from explorer.core.progress import Progress, run_to_end, to_api  # noqa: F401 (to_api: the one serialiser)
from explorer.core.provenance import Provenance, formula, measured, meta_line, stored
from explorer.pretrain import runs
from explorer.scaling import experts, famous, grid, moe
from explorer.scaling.fit import HOFFMANN, LawFit, bootstrap_fits, fit_law, intervals, isoflop_minima

POLL_S = 0.25
BOOTSTRAP_RESAMPLES = 100
# a run of fewer steps is still leaving its random initialisation (its loss is the warm-up transient, which
# L(N, D) does not describe); such runs are shown but not fitted
MIN_FIT_STEPS = 100
FIT_FILE = data_path("scaling", "fit.json")


def _finished(path: str) -> list[dict]:
    """The grid's finished runs, each with ``in_fit``: at least :data:`MIN_FIT_STEPS` steps."""
    rows = [dict(r, in_fit=r["steps"] >= MIN_FIT_STEPS) for r in grid.load_grid(path)
            if r.get("status") == "done" and r.get("loss")]
    if sum(r["in_fit"] for r in rows) < 5:
        raise ValueError(f"the stored grid holds {len(rows)} finished runs; at least 5 are needed for a fit")
    return rows


def compute_fit(path: str | None = None, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[LawFit, list[LawFit]]:
    """Fit the law to the grid file's finished runs and bootstrap it: ``(law, bootstrap fits)`` (tens of seconds
    on two cores; :func:`write_fit` stores it).

    Raises:
        ValueError: fewer than 5 finished runs. FileNotFoundError: no grid file.
    """
    rows = [r for r in _finished(path or grid.GRID_FILE) if r["in_fit"]]
    n, d, loss = (np.array([r[k] for r in rows], dtype=float) for k in ("non_embedding_params", "tokens", "loss"))
    law = fit_law(n, d, loss)
    return law, bootstrap_fits(n, d, loss, law, resamples=resamples)


def write_fit(path: str | None = None, out: str | None = None) -> str:
    """Fit the grid (see :func:`compute_fit`) and store the law and its bootstrap fits in ``data/scaling/fit.json``
    with the grid file's SHA-256; returns the path."""
    path, out = path or grid.GRID_FILE, out or FIT_FILE
    law, boot = compute_fit(path)
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({"grid_sha256": _sha256(path), "min_fit_steps": MIN_FIT_STEPS,
                   "law": {**law.as_dict(), "objective": law.objective}, "bootstrap": [f.as_dict() for f in boot],
                   "resamples": BOOTSTRAP_RESAMPLES}, handle)
    return out


def _sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@functools.lru_cache(maxsize=2)
def _stored_fit(path: str) -> tuple:
    """``(rows, law, bootstrap fits, stored?)``: from ``fit.json`` when it was made from this very grid file,
    else fitted now (and kept in memory)."""
    rows = _finished(path)
    if path == grid.GRID_FILE and os.path.exists(FIT_FILE):
        with open(FIT_FILE, encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("grid_sha256") == _sha256(path) and data.get("min_fit_steps") == MIN_FIT_STEPS:
            law = LawFit(**data["law"], source="fitted to the stored grid (Huber on log loss, L-BFGS-B)")
            return rows, law, tuple(LawFit(**f) for f in data["bootstrap"]), True
    law, boot = compute_fit(path)
    return rows, law, tuple(boot), False


@dataclass(frozen=True)
class ScalingFit:
    """The ``/scaling_fit`` result.

    Attributes:
        runs: the stored grid runs (dicts). law: the fit here; published: Hoffmann et al.'s. boot: bootstrap fits.
        compute: the budget asked about (FLOPs); optimal_params / optimal_tokens: the fit's compute-optimal split
        of it (``6 N D = compute``). notices: e.g. extrapolation beyond the grid. grid_range: (lowest, highest)
        budget of the grid. made: how the grid was made.
    """

    runs: tuple
    law: LawFit
    boot: tuple
    compute: float
    optimal_params: float
    optimal_tokens: float
    notices: tuple = ()
    grid_range: tuple = (0.0, 0.0)
    made: str = ""
    published: LawFit = HOFFMANN
    provenance: Provenance = field(default_factory=lambda: stored("data/scaling/grid.jsonl", "bench_scaling"))

    @property
    def tokens_per_param_optimal(self) -> float:
        """``D_opt / N_opt`` at :attr:`compute` (Chinchilla: about 20)."""
        return self.optimal_tokens / self.optimal_params

    def residuals(self) -> list[float]:
        """``log(predicted) - log(observed)`` loss of each fitted run (``in_fit``) under the fit."""
        return [float(np.log(self.law.loss(r["non_embedding_params"], r["tokens"])) - np.log(r["loss"]))
                for r in self.runs if r["in_fit"]]

    def to_api(self) -> dict:
        """``{"runs": [{"non_embedding_params", "tokens", "loss", "budget", "key", "steps", "in_fit"}],
        "fit": {E, A, alpha, B, beta},
        "intervals": {name: [low, high]} (90 % bootstrap), "compute", "optimal_params", "optimal_tokens",
        "tokens_per_param_optimal", "chinchilla_tokens_per_param", "published_fit", "published_optimal",
        "residuals" (of the fitted runs), "isoflop_minima" (Approach 2 parabolas), "min_fit_steps", "notices",
        "grid_range", "made", "provenance"}``."""
        pub_n, pub_d = self.published.optimal(self.compute)
        return {"runs": [{k: r[k] for k in ("non_embedding_params", "tokens", "loss", "budget", "key", "steps",
                                            "in_fit")} for r in self.runs], "min_fit_steps": MIN_FIT_STEPS,
                "fit": self.law.as_dict(), "intervals": intervals(list(self.boot), self.compute),
                "compute": self.compute, "optimal_params": self.optimal_params, "optimal_tokens": self.optimal_tokens,
                "tokens_per_param_optimal": self.tokens_per_param_optimal,
                "chinchilla_tokens_per_param": famous.CHINCHILLA_TOKENS_PER_PARAM,
                "chinchilla_source": famous.CHINCHILLA_SOURCE,
                "published_fit": {**self.published.as_dict(), "source": self.published.source},
                "published_optimal": {"params": pub_n, "tokens": pub_d, "tokens_per_param": pub_d / pub_n},
                "residuals": self.residuals(),
                "isoflop_minima": isoflop_minima([r for r in self.runs if r["in_fit"]]),
                "notices": list(self.notices), "grid_range": list(self.grid_range),
                "made": self.made, "provenance": self.provenance.to_api()}


def scaling_fit(compute: float | None = None, path: str | None = None) -> ScalingFit:
    """Fit ``L(N, D)`` to the stored grid's runs of at least :data:`MIN_FIT_STEPS` steps (stored in
    ``data/scaling/fit.json``, else fitted now and cached per file) and split ``compute`` FLOPs (default: the grid's
    largest budget) compute-optimally. A compute outside the grid's budgets is answered, with a notice that it
    is an extrapolation; so is an optimal size outside the sizes trained.

    Raises:
        ValueError: ``compute`` not a finite number > 0; too few finished runs. FileNotFoundError: no grid file.
    """
    path = path or grid.GRID_FILE
    rows, law, boot, _ = _stored_fit(path)
    budgets = sorted({float(r["budget"]) for r in rows})
    if compute is None:
        compute = budgets[-1]
    try:
        compute = float(compute)
    except (TypeError, ValueError):
        raise ValueError(f"compute must be a number of FLOPs (got {compute!r})") from None
    if not np.isfinite(compute) or compute <= 0:
        raise ValueError(f"compute must be a finite number of FLOPs > 0 (got {compute})")
    notices = []
    if not budgets[0] <= compute <= budgets[-1]:
        notices.append(f"compute {compute:.3g} FLOPs is outside the grid's budgets ({budgets[0]:.3g} to "
                       f"{budgets[-1]:.3g}): the optimum there is an extrapolation of the fitted law.")
    n_opt, d_opt = law.optimal(compute)
    sizes = [r["non_embedding_params"] for r in rows]
    if not min(sizes) <= n_opt <= max(sizes):
        notices.append(f"the optimal size {n_opt:,.0f} parameters lies outside the sizes trained ({min(sizes):,} to "
                       f"{max(sizes):,}): it is an extrapolation of the fitted law.")
    meta = grid.grid_meta(path)
    command = meta.get("command", "python bench/bench_scaling.py --write")
    return ScalingFit(runs=tuple(rows), law=law, boot=boot, compute=compute, optimal_params=n_opt,
                      optimal_tokens=d_opt, notices=tuple(notices), grid_range=(budgets[0], budgets[-1]),
                      made=meta_line(meta), provenance=stored("data/scaling/grid.jsonl", command))


def calculator(params: float, tokens: float) -> dict:
    """The ``C = 6 N D`` calculator (see :func:`explorer.scaling.famous.calculate`) with the known models as points
    and a FORMULA provenance."""
    return {**famous.calculate(params, tokens), "models": [m.as_dict() for m in famous.known_models()],
            "provenance": formula("C = 6 N D, Kaplan et al. 2020, arXiv:2001.08361, section 2.1").to_api()}


def moe_shapes() -> list[dict]:
    """Active and total parameters of real MoE configs (see :mod:`explorer.scaling.experts`)."""
    return [experts.moe_counts(s) for s in experts.MOE_SHAPES]


@dataclass(frozen=True)
class MoeResult:
    """A frozen view of a ``/moe_compare`` job.

    Attributes:
        run_id, status, message: the job. settings: the validated :class:`~explorer.scaling.moe.MoeSettings`.
        curves: copies of its :class:`~explorer.scaling.moe.MoeCurve` records (dense, moe, moe without aux loss).
        planned_steps: steps of all its models.
    """

    run_id: str
    status: str
    message: str
    settings: moe.MoeSettings
    curves: tuple
    planned_steps: int
    provenance: Provenance = field(default_factory=lambda: measured("moe_compare"))

    def curve(self, label: str):
        """The curve called ``label`` (or ``None``)."""
        return next((c for c in self.curves if c.label == label), None)

    @property
    def steps_done(self) -> int:
        """Steps completed over all models."""
        return sum(len(c.losses) for c in self.curves)

    def to_api(self) -> dict:
        """``{"dense_losses", "moe_losses", "router_load": [[tokens per expert] per step], "active_params",
        "total_params", "dense_params", "tokens_routed" (tokens x layers per step), "top_k", "dense_flops",
        "moe_flops" (cumulative 6 N_active D), "aux_values", "moe_no_aux_losses", "router_load_no_aux",
        "aux_values_no_aux", "settings", "run_id", "status", "message", "provenance"}``."""
        dense, moe_c, off = self.curve("dense"), self.curve("moe"), self.curve("moe (no aux loss)")
        s = self.settings
        return {"run_id": self.run_id, "status": self.status, "message": self.message,
                "dense_losses": list(dense.losses) if dense else [], "moe_losses": list(moe_c.losses) if moe_c else [],
                "router_load": [list(r) for r in moe_c.router_load] if moe_c else [],
                "active_params": moe_c.active_params if moe_c else 0,
                "total_params": moe_c.total_params if moe_c else 0,
                "dense_params": dense.total_params if dense else 0,
                "tokens_routed": moe.BATCH_SIZE * moe.SEQ_LEN * moe.LAYERS, "top_k": s.top_k,
                "dense_flops": list(dense.flops) if dense else [], "moe_flops": list(moe_c.flops) if moe_c else [],
                "aux_values": list(moe_c.aux_values) if moe_c else [],
                "moe_no_aux_losses": list(off.losses) if off else [],
                "router_load_no_aux": [list(r) for r in off.router_load] if off else [],
                "aux_values_no_aux": list(off.aux_values) if off else [],
                "settings": dict(s.__dict__), "provenance": self.provenance.to_api()}


def start_moe(owner: str, settings: dict | None = None) -> runs.Job:
    """Validate and queue a ``/moe_compare`` job for ``owner`` (dense, MoE, and MoE without the auxiliary loss
    when ``aux_loss > 0``; same seed, same tokens).

    Raises:
        ValueError: bad settings (see :func:`explorer.scaling.moe.moe_settings`), a job already going for
            ``owner``, a full queue.
    """
    s = moe.moe_settings(settings)
    models = 3 if s.aux_loss > 0 else 2

    def steps(job: runs.Job) -> Iterator[int]:
        from explorer.pretrain.data import corpus
        from explorer.pretrain.tokenizer import VOCAB_SIZE

        data = corpus("clean")
        for curve, model in moe.new_curves(s, VOCAB_SIZE):
            job.curves.append(curve)
            yield from moe.curve_steps(curve, model, s, data, runs.yield_to_interactive)

    return runs.start_job(owner, "moe", s.steps * models, steps, info={"settings": s})


def snapshot(job: runs.Job) -> MoeResult:
    """A frozen copy of a ``/moe_compare`` job (reading it counts as polling it)."""
    runs.REGISTRY.touch(job)
    curves = []
    for c in list(job.curves):
        c = copy.copy(c)
        for name, value in vars(c).items():
            if isinstance(value, list):
                setattr(c, name, list(value))
        curves.append(c)
    done = sum(len(c.losses) for c in curves)
    return MoeResult(run_id=job.run_id, status=job.state, message=job.message, settings=job.info["settings"],
                     curves=tuple(curves), planned_steps=job.planned_steps,
                     provenance=measured(f"a tiny Mixtral MoE and a dense Llama trained on this server's CPU: "
                                         f"{done} of {job.planned_steps} steps"))


def follow(job: runs.Job, poll_s: float = POLL_S) -> Iterator[Progress | MoeResult]:
    """Yield a :class:`Progress` (``partial`` = the :class:`MoeResult` so far) whenever the job moves, then the
    final result."""
    last = None
    while True:
        snap = snapshot(job)
        if snap.status not in runs.ACTIVE:
            yield snap
            return
        key = (snap.status, snap.steps_done)
        if key != last:
            last = key
            yield Progress(snap.steps_done / max(1, snap.planned_steps),
                           f"step {snap.steps_done} of {snap.planned_steps}", partial=snap)
        if job.thread is not None:
            job.thread.join(poll_s)


def iter_run(settings: dict | None = None, owner: str = "local") -> Iterator[Progress | MoeResult]:
    """Start a ``/moe_compare`` job (see :func:`start_moe`) and follow it (see :func:`follow`)."""
    yield from follow(start_moe(owner, settings))


def run(settings: dict | None = None, owner: str = "local") -> MoeResult:
    """Run a ``/moe_compare`` job to its end (see :func:`start_moe` for errors)."""
    return run_to_end(iter_run(settings, owner))


def moe_compare(settings: dict | None = None, owner: str = "local") -> dict:
    """The ``/moe_compare`` JSON (see :meth:`MoeResult.to_api`)."""
    return run(settings, owner).to_api()
