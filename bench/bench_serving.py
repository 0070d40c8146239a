"""One at a time vs static batching vs continuous batching on the embedded model (same requests, same tokens).

Prints throughput per method with one-at-a-time as the baseline, the latency percentiles, and whether all
three produced the same tokens; ``--write`` stores the result in ``data/serving/batching_comparison.json``
with the command, date and library versions (the Serving tab reads it).

Usage: ``python bench/bench_serving.py [--write]``
"""
from __future__ import annotations

import argparse
import sys

from common import report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="store the result under data/serving/")
    args = parser.parse_args()
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
