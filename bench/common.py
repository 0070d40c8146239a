"""Printing benchmark figures in one format: name, value, unit, and the same-run baseline with the ratio.

Every bench script prints lines like::

    load_from_cache: 0.41 s  (baseline load_from_gguf: 18.2 s, ratio 44.4x)
"""
from __future__ import annotations

import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def report(name: str, value: float, unit: str, baseline: float | None = None, baseline_name: str | None = None,
           target: str | None = None) -> str:
    """Print (and return) one benchmark line; the ratio is ``value / baseline`` when a baseline is given."""
    line = f"{name}: {_fmt(value)} {unit}"
    extras = []
    if baseline is not None:
        ratio = value / baseline if baseline else float("inf")
        extras.append(f"baseline {baseline_name or 'baseline'}: {_fmt(baseline)} {unit}, ratio {ratio:.2f}x")
    if target:
        extras.append(f"target {target}")
    if extras:
        line += "  (" + "; ".join(extras) + ")"
    print(line, flush=True)
    return line


def _fmt(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 100):
        return f"{int(value):,}"
    return f"{value:.4g}"


def timed(fn, repeats: int = 1) -> list[float]:
    """Run ``fn`` ``repeats`` times; return the wall times in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, int(round(q)) - 1))]
