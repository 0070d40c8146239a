"""CPU threads when many people share two cores: OpenMP threads sleep instead of spinning while they wait.

PyTorch's CPU kernels run on an OpenMP pool (libgomp here) whose idle threads, by default, spin for a while at
every barrier before they sleep. A forward pass of a small model is hundreds of short parallel regions; when the
pool's threads share two cores with anything else (the server's own handler threads building figures and
sampling, the load bench's clients, another process) a spinning thread holds a core the thread it waits for
needs, and a pass gets many times slower. Measured with ``python bench/bench_serving.py --wait-policy`` on this
2-core machine while other engineers' jobs ran (load average 4-11), SmolLM2-135M, 32 greedy steps through
``Engine.steps``: 23-32 s with the default policy, 3.4-6.9 s with ``OMP_WAIT_POLICY=PASSIVE`` (2 threads).
Both threads still work on every pass; the price is the wake-up of sleeping threads at each region, which a
quiet machine would show and which was not measured here (no quiet 2-core machine was available).

libgomp reads the variable once, when it is loaded (when torch is first imported), so :func:`configure` must run
before that: ``app.py``'s ``main`` calls it first thing. A value already in the environment is kept
(``OMP_WAIT_POLICY=ACTIVE python app.py`` restores spinning).
"""
from __future__ import annotations

import os
import sys

POLICY = "PASSIVE"


def configure(environ=None) -> bool:
    """Set ``OMP_WAIT_POLICY`` to :data:`POLICY` unless it is already set.

    Args:
        environ: the mapping to change (default ``os.environ``).
    Returns:
        True when the policy in effect is the one in the mapping; False when torch was imported before this
        call (with ``os.environ``), so the OpenMP pool already read its setting and keeps spinning.
    """
    env = os.environ if environ is None else environ
    env.setdefault("OMP_WAIT_POLICY", POLICY)
    return environ is not None or "torch" not in sys.modules
