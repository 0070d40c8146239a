"""Scaling lens: scaling laws fitted to a grid of tiny Llamas trained here (Chinchilla's L(N, D), IsoFLOP
curves, the compute-optimal split), a C = 6ND calculator, and a tiny mixture of experts beside a dense model.

Where a change goes:
- grid.py: the stored grid (sizes x budgets), one run's trainer (``bench/bench_scaling.py --write``), loading.
- fit.py: the Huber fit of L(N, D) = E + A/N^alpha + B/D^beta, the bootstrap, the compute-optimal split.
- famous.py: C = 6ND, the known models as points (with sources), over-training verdicts.
- moe.py: the tiny Mixtral MoE and its dense twin, router loads; experts.py: active/total counts of real configs.
- lens.py: ``/scaling_fit``, ``/moe_compare`` (a pretraining-registry job), ``iter_run`` / ``run`` / ``to_api``.
"""
from explorer.scaling.lens import (MoeResult, ScalingFit, calculator, iter_run, moe_compare, moe_shapes, run,
                                   scaling_fit, snapshot, start_moe, to_api)

__all__ = ["MoeResult", "ScalingFit", "calculator", "iter_run", "moe_compare", "moe_shapes", "run", "scaling_fit",
           "snapshot", "start_moe", "to_api"]
