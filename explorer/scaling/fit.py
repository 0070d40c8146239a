"""The Chinchilla scaling law L(N, D) = E + A / N^alpha + B / D^beta, fitted as Hoffmann et al. did.

Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models" (arXiv:2203.15556), section 3.3 and
appendix D.2: minimise the Huber loss (delta = 1e-3) between the log of the predicted loss and the log of the
observed loss, over ``(a, b, e, alpha, beta)`` with ``A = exp(a)``, ``B = exp(b)``, ``E = exp(e)`` and
``log L = LSE(a - alpha log N, b - beta log D, e)``, by L-BFGS from a grid of starting points, keeping the best.
Here the exponents are bounded (scipy's L-BFGS-B) and intervals come from a bootstrap over the runs.

The compute-optimal split of a compute ``C = 6 N D`` (their eq. 4): ``N_opt = G (C/6)^(beta/(alpha+beta))``,
``D_opt = (C/6)^(alpha/(alpha+beta)) / G`` with ``G = (alpha A / (beta B))^(1/(alpha+beta))``, so
``6 N_opt D_opt = C`` exactly.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, appendix D.2
# (lower, upper) for a, b, e, alpha, beta: exponents bounded to (0.05, 2); E below every observed loss is not
# forced, the data decide
BOUNDS = ((-10.0, 40.0), (-10.0, 40.0), (-5.0, 3.0), (0.05, 2.0), (0.05, 2.0))
# a coarser grid than Hoffmann et al.'s 4,500 starts (two shared CPU cores): 72 starts
START_GRID = {"a": (0.0, 5.0, 10.0), "b": (0.0, 5.0, 10.0), "e": (-1.0, 0.5), "alpha": (0.3, 0.8),
              "beta": (0.3, 0.8)}
PARAM_NAMES = ("E", "A", "alpha", "B", "beta")


@dataclass(frozen=True)
class LawFit:
    """One fitted law ``L(N, D) = E + A / N^alpha + B / D^beta`` (loss in nats/token, N parameters, D tokens).

    Attributes:
        E, A, alpha, B, beta: the law's constants. objective: the summed Huber loss at the optimum (0 for a
            published fit). source: where it comes from.
    """

    E: float
    A: float
    alpha: float
    B: float
    beta: float
    objective: float = 0.0
    source: str = ""

    def loss(self, n, d):
        """Predicted loss (nats/token) at ``n`` parameters and ``d`` tokens (numbers or numpy arrays)."""
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        return self.E + self.A / n ** self.alpha + self.B / d ** self.beta

    def optimal(self, compute: float) -> tuple[float, float]:
        """``(N_opt, D_opt)`` minimising the law on the budget ``compute = 6 N D`` FLOPs (Hoffmann et al. eq. 4).

        Raises:
            ValueError: ``compute`` not a finite number > 0.
        """
        compute = float(compute)
        if not np.isfinite(compute) or compute <= 0:
            raise ValueError(f"compute must be a finite number of FLOPs > 0 (got {compute})")
        total = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / total)
        n = g * (compute / 6) ** (self.beta / total)
        return n, compute / (6 * n)

    def as_dict(self) -> dict:
        """``{"E", "A", "alpha", "B", "beta"}``."""
        return {name: float(getattr(self, name)) for name in PARAM_NAMES}


# Hoffmann et al. 2022, eq. 10 (their Approach 3 fit on Chinchilla's runs; MassiveText, loss in nats/token)
HOFFMANN = LawFit(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28,
                  source="Hoffmann et al. 2022, arXiv:2203.15556, eq. 10 (Approach 3)")


def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float):
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    pred = top + np.log(total)
    weights /= total
    r = pred - log_l
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta)).sum()
    slope = np.clip(r, -delta, delta)  # Huber derivative
    grad = np.array([(slope * weights[0]).sum(), (slope * weights[1]).sum(), (slope * weights[2]).sum(),
                     -(slope * weights[0] * log_n).sum(), -(slope * weights[1] * log_d).sum()])
    return value, grad


def _starts() -> list[np.ndarray]:
    axes = (START_GRID[k] for k in ("a", "b", "e", "alpha", "beta"))
    return [np.array(p, dtype=float) for p in itertools.product(*axes)]


def fit_law(n, d, loss, starts: list | None = None, delta: float = HUBER_DELTA) -> LawFit:
    """Fit ``L(N, D)`` to runs: ``n`` parameters, ``d`` tokens, ``loss`` (nats/token), 1-D arrays of one length.

    Every start (default :data:`START_GRID`, 72 points ``(a, b, e, alpha, beta)``) runs scipy's L-BFGS-B with
    :data:`BOUNDS`; the lowest Huber objective wins.

    Raises:
        ValueError: fewer than 5 runs, lengths that differ, or a value that is not finite and > 0.
    """
    from scipy.optimize import minimize

    n, d, loss = (np.asarray(x, dtype=float).ravel() for x in (n, d, loss))
    if not (n.size == d.size == loss.size):
        raise ValueError(f"n, d and loss must have one length (got {n.size}, {d.size}, {loss.size})")
    if n.size < 5:
        raise ValueError(f"runs: at least 5 are needed to fit 5 constants (got {n.size})")
    for name, x in (("n", n), ("d", d), ("loss", loss)):
        if not np.all(np.isfinite(x)) or np.any(x <= 0):
            raise ValueError(f"{name} must hold finite numbers > 0")
    args = (np.log(n), np.log(d), np.log(loss), delta)
    best = None
    for start in (starts if starts is not None else _starts()):
        res = minimize(_objective, np.asarray(start, dtype=float), args=args, jac=True, method="L-BFGS-B",
                       bounds=BOUNDS, options={"maxiter": 500})
        if best is None or res.fun < best.fun:
            best = res
    a, b, e, alpha, beta = best.x
    return LawFit(E=float(np.exp(e)), A=float(np.exp(a)), alpha=float(alpha), B=float(np.exp(b)), beta=float(beta),
                  objective=float(best.fun), source="fitted here (Huber on log loss, L-BFGS-B)")


def theta_of(law: LawFit) -> np.ndarray:
    """``(a, b, e, alpha, beta)`` of ``law`` (a start for another fit)."""
    return np.array([np.log(law.A), np.log(law.B), np.log(law.E), law.alpha, law.beta])


def bootstrap_fits(n, d, loss, law: LawFit, resamples: int = 100, seed: int = 0) -> list[LawFit]:
    """Refits of the law on ``resamples`` resamplings of the runs (with replacement, drawn by a private ``numpy``
    generator seeded ``seed``), each started from ``law``'s constants and 2 grid starts; resamplings with fewer
    than 5 distinct runs are skipped."""
    n, d, loss = (np.asarray(x, dtype=float).ravel() for x in (n, d, loss))
    rng = np.random.default_rng(seed)
    starts = [theta_of(law)] + _starts()[::36]
    fits = []
    for _ in range(resamples):
        pick = rng.integers(0, n.size, n.size)
        if np.unique(pick).size >= 5:
            fits.append(fit_law(n[pick], d[pick], loss[pick], starts=starts))
    return fits


def intervals(fits: list[LawFit], compute: float | None = None, level: float = 0.9) -> dict:
    """Percentile intervals (the central ``level`` share) over bootstrap ``fits``: ``{name: [low, high]}`` for
    E, A, alpha, B, beta and, with a ``compute`` (FLOPs), ``optimal_params``, ``optimal_tokens``,
    ``tokens_per_param_optimal`` at it.

    Raises:
        ValueError: no fits.
    """
    if not fits:
        raise ValueError("fits: no bootstrap fits to take intervals from")
    samples: dict[str, list] = {}
    for refit in fits:
        values = refit.as_dict()
        if compute is not None:
            n_opt, d_opt = refit.optimal(compute)
            values.update(optimal_params=n_opt, optimal_tokens=d_opt, tokens_per_param_optimal=d_opt / n_opt)
        for key, value in values.items():
            samples.setdefault(key, []).append(value)
    tail = (1 - level) / 2 * 100
    return {key: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] for key, v in samples.items()}


def isoflop_minima(runs: list[dict]) -> list[dict]:
    """Hoffmann et al.'s Approach 2: for each budget with 3+ runs, a parabola in ``log N`` fitted to the final
    losses (``numpy.polyfit``) and its vertex, the budget's compute-optimal size.

    Args:
        runs: dicts with ``budget`` (FLOPs), ``non_embedding_params`` and ``loss`` (nats/token).
    Returns:
        ``[{"budget", "params", "tokens" (budget / 6N), "in_range" (vertex within the budget's sizes)}]``,
        budgets ascending; a budget whose parabola opens downwards (no minimum) is left out.
    """
    out = []
    for budget in sorted({float(r["budget"]) for r in runs}):
        pts = [r for r in runs if float(r["budget"]) == budget]
        if len(pts) < 3:
            continue
        x = np.log([r["non_embedding_params"] for r in pts])
        a, b, _ = np.polyfit(x, [r["loss"] for r in pts], 2)
        if a <= 0:
            continue
        n = float(np.exp(-b / (2 * a)))
        out.append({"budget": budget, "params": n, "tokens": budget / (6 * n),
                    "in_range": bool(x.min() <= np.log(n) <= x.max())})
    return out
