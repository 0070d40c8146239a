"""Scaling-laws benchmark and grid writer.

``python bench/bench_scaling.py --write``: train the scaling grid (:mod:`explorer.scaling.grid`: 5 sizes x 4
compute budgets) one run after another with one intra-op thread, appending one JSON line per finished run (with
the command, library versions, settings, machine and seconds) to ``data/scaling/grid.jsonl``. Resumable: runs
already in the file are skipped; stop it any time (Ctrl-C) and run it again. A last ``summary`` line records the
wall time and the machine. Then the law is fitted (72 starts) and bootstrapped (100 resamplings) and stored in
``data/scaling/fit.json`` with the grid file's SHA-256 (``--fit`` redoes only that).

Without ``--write`` (through ``/work/shared/tools/bench-quiet``) it prints:
- seconds for ``/moe_compare`` with its defaults (target <= 30 s for 20 steps), and the dense half alone as the
  same-run baseline;
- seconds for ``/scaling_fit`` (the Huber fit from its grid of starts plus the bootstrap) on the stored grid.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from common import report


def machine() -> str:
    """A short description of this machine: CPU model, logical cores, load average."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} logical cores, load average {load:.2f} at the end"


def write_grid(path: str, seed: int) -> None:
    """Train the grid's missing runs and append them to ``path`` (see the module docstring)."""
    import torch

    from explorer.core.provenance import run_meta
    from explorer.scaling import grid

    torch.set_num_threads(1)
    done = set()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            done = {json.loads(line).get("key") for line in handle if line.strip()}
    todo = [r for r in grid.plan() if r.key not in done]
    print(f"{len(todo)} of {len(grid.plan())} runs to train", flush=True)
    start = time.perf_counter()
    for i, planned in enumerate(todo):
        record = grid.train_run(planned, seed)
        record["meta"] = run_meta("bench/bench_scaling.py", sys.argv[1:], planned.settings(seed))
        record["machine"] = machine()
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        print(f"[{i + 1}/{len(todo)}] {record['key']} N={record['non_embedding_params']:,} steps={record['steps']}"
              f" loss={record['loss']} {record['seconds']:.0f}s", flush=True)
    if todo:
        summary = {"kind": "summary", "key": f"summary-{time.time():.0f}", "runs": len(todo),
                   "wall_seconds": time.perf_counter() - start, "machine": machine(),
                   "meta": run_meta("bench/bench_scaling.py", sys.argv[1:], {"seed": seed})}
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(summary) + "\n")


def dense_seconds() -> float:
    """Wall seconds of the dense model of ``/moe_compare``'s defaults alone (same steps and batches)."""
    from explorer.pretrain.data import corpus
    from explorer.pretrain.tokenizer import VOCAB_SIZE
    from explorer.scaling import moe

    s = moe.moe_settings({})
    curve, model = moe.new_curves(s, VOCAB_SIZE)[0]
    start = time.perf_counter()
    for _ in moe.curve_steps(curve, model, s, corpus("clean")):
        pass
    return time.perf_counter() - start


def timings() -> None:
    """Print the ``/moe_compare`` and ``/scaling_fit`` timings (see the module docstring)."""
    from explorer.pretrain.data import corpus
    from explorer.scaling import lens

    corpus("clean")  # encoded once per process, before either timing
    t0 = time.perf_counter()
    lens.moe_compare({}, owner="bench-scaling")
    moe_s = time.perf_counter() - t0
    report("moe_compare_default_seconds", moe_s, "s", dense_seconds(), "dense model alone", target="<= 30 s")
    t0 = time.perf_counter()
    lens.compute_fit()
    report("scaling_fit_seconds", time.perf_counter() - t0, "s", target="fit + bootstrap, stored in fit.json")
    t0 = time.perf_counter()
    lens.scaling_fit()
    report("scaling_fit_api_seconds", time.perf_counter() - t0, "s", target="<= 1 s from fit.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="train the grid into data/scaling/grid.jsonl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path", default=None, help="grid file (default data/scaling/grid.jsonl)")
    parser.add_argument("--fit", action="store_true", help="only refit the stored grid into data/scaling/fit.json")
    args = parser.parse_args()
    if args.fit:
        from explorer.scaling.lens import write_fit

        print("fit stored in", write_fit(), flush=True)
    elif args.write:
        from explorer.scaling.grid import GRID_FILE

        write_grid(args.path or GRID_FILE, args.seed)
        if args.path is None:
            from explorer.scaling.lens import write_fit

            print("fit stored in", write_fit(), flush=True)
    else:
        timings()


if __name__ == "__main__":
    main()
