"""Steering benchmark: a strength × layer sweep on SmolLM2 against as many plain greedy generations.

Prints (baselines measured in the same run):
- seconds for the whole sweep (``explorer.circuits.sweep.run_sweep``: the vectors, one batch of ``cells + 1`` greedy
  rows with per-row steering, the batched perplexity pass) vs ``cells`` plain greedy generations of the same length
  from the same prompt through ``Engine.greedy_continuation`` (target <= 1.2x);
- one steered greedy generation (``/steer``'s path, one row) vs one plain one, for scale.

Run: ``/work/shared/tools/bench-quiet -- .venv/bin/python bench/bench_steering.py [--model smollm2-135m-instruct]``;
``--smoke`` runs a 2 × 2 grid of 4 tokens (checks the script, times nothing worth reading).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import report, timed  # noqa: E402  (also puts the repository root on sys.path)

from explorer.circuits.steering import SETS, generate, steering_vector  # noqa: E402
from explorer.circuits.sweep import run_sweep  # noqa: E402
from explorer.core.engine import get_engine  # noqa: E402

PROMPT = "I think the movie was"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--layers", default="4, 8, 12, 16, 20, 24")
    parser.add_argument("--strengths", default="-1, 0.25, 0.5, 1, 2, 4")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.layers, args.strengths, args.tokens = "2, 8", "0.5, 1", 4
    engine = get_engine(args.model)
    ids = engine.encode(PROMPT)
    engine.greedy_continuation(ids, 2)  # warm-up
    start = time.perf_counter()
    result = run_sweep(positive="sentiment", layers=args.layers, strengths=args.strengths, prompt=PROMPT,
                       max_new_tokens=args.tokens, engine=engine)
    sweep_s = time.perf_counter() - start
    cells = len(result.cells)
    print(f"model {engine.name}, {len(result.layers)} layers × {len(result.strengths)} strengths = {cells} cells, "
          f"{result.tokens_done} tokens each, prompt {len(ids)} tokens")
    plain = sum(timed(lambda: engine.greedy_continuation(ids, args.tokens, stop_at_eos=False), cells))
    report(f"{len(result.layers)}x{len(result.strengths)} steering sweep", sweep_s, "s", plain,
           f"{cells} plain greedy generations", target="<= 1.2x")
    vector = steering_vector(engine, *SETS["sentiment"], result.layers[0])
    one = min(timed(lambda: generate(engine, ids, args.tokens, [vector.patch(0.5)]), 3))
    base = min(timed(lambda: engine.greedy_continuation(ids, args.tokens, stop_at_eos=False), 3))
    report("one steered greedy generation", one, "s", base, "one plain greedy generation", target="~1x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
