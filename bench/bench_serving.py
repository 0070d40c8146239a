"""One at a time vs static batching vs continuous batching on the embedded model (same requests, same tokens).

Prints throughput per method with one-at-a-time as the baseline, the latency percentiles, and whether all
three produced the same tokens; ``--write`` stores the result in ``data/serving/batching_comparison.json``
with the command, date and library versions (the Serving tab reads it).

``--wait-policy`` instead times 32 greedy steps of the embedded model (``Engine.steps``) in fresh interpreters
with OpenMP's default wait policy and with ``OMP_WAIT_POLICY=PASSIVE`` (what ``python app.py`` sets, see
``explorer/serving/threads.py``), ``--rounds`` times each, alternating, and prints each time and the ratio.

Usage: ``python bench/bench_serving.py [--write | --wait-policy [--rounds N]]``
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from common import ROOT, report

_STEPS = """
import time
from explorer.core.engine import get_engine
e = get_engine("smollm2-135m-instruct")
ids = e.chat_ids("Write one sentence about the sea, please, with some detail about waves.")
list(e.steps(ids, 4))
t = time.perf_counter()
n = len(list(e.steps(ids, 32, stop_at_eos=False)))
print(time.perf_counter() - t)
"""


def wait_policy(rounds: int) -> int:
    """Time 32 steps with the default OpenMP wait policy and with PASSIVE, each in a fresh interpreter."""
    times: dict[str, list[float]] = {"default": [], "PASSIVE": []}
    for _ in range(rounds):
        for policy in times:
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            env["PYTHONPATH"] = ROOT
            if policy != "default":
                env["OMP_WAIT_POLICY"] = policy
            out = subprocess.run([sys.executable, "-c", _STEPS], capture_output=True, text=True, env=env, cwd=ROOT,
                                 check=True)
            times[policy].append(float(out.stdout.split()[-1]))
    load = os.getloadavg()
    for policy, values in times.items():
        print(f"steps_32_{policy}: " + ", ".join(f"{v:.2f}" for v in values) + " s", flush=True)
    report("steps_32_passive_best", min(times["PASSIVE"]), "s", baseline=min(times["default"]),
           baseline_name="default wait policy, best")
    print(f"load_average_1_5_15_min: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores; other work shares them)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="store the result under data/serving/")
    parser.add_argument("--wait-policy", action="store_true", help="OpenMP default vs PASSIVE wait policy")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.wait_policy:
        return wait_policy(args.rounds)
    from explorer.serving import batching, compare

    try:
        result = compare.run()
    finally:
        batching.stop_all()
    by = {m.method: m for m in result.methods}
    base = by["one_at_a_time"].tokens_per_s
    for name in compare.METHODS:
        report(f"throughput_{name}", by[name].tokens_per_s, "tokens/s", baseline=base,
               baseline_name="one_at_a_time",
               target="handbook: 5-10x for continuous batching" if name == "continuous" else None)
    report("continuous_over_static", result.speedup("continuous", "static"), "x")
    for row in compare.latency_summary(result):
        print(f"latency_{row['method']}: p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms "
              f"({len(result.max_new_tokens)} requests, {by[row['method']].tokens} tokens)")
    print(f"same_tokens: {result.same_tokens}")
    if args.write:
        path = compare.write_stored(result, "python bench/bench_serving.py --write")
        print(f"wrote {path}")
    return 0 if result.same_tokens else 1


if __name__ == "__main__":
    sys.exit(main())
