"""Accuracy with a percentile-bootstrap interval (Efron & Tibshirani 1993): items resampled with replacement."""
from __future__ import annotations

import numpy as np

N_BOOT = 2000


def accuracy_interval(correct, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Accuracy of ``correct`` (bools, one per item) and its ``level`` percentile-bootstrap interval.

    Returns:
        ``(accuracy, low, high)``, each in [0, 1]; ``(nan, nan, nan)`` for no items.
    """
    values = np.asarray(correct, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(values.mean()), float(low), float(high)
