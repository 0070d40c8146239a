"""Circuits benchmark: a 31 × 20 residual-stream patching grid on SmolLM2 against as many plain forwards.

Prints (one line each, baselines measured in the same run):
- seconds for the whole 31 × 20 ``resid`` grid (620 patched runs, batched ``Limits.patch_batch`` per pass) vs 620
  plain forward passes of the same 20-token prompt through ``Engine.forward`` (target ≤ 1.3×);
- seconds to the first grid row (the first partial result the tab draws; target ≤ 3 s);
- one nnsight-traced forward on the shadow vs one plain forward (the issue measured 1.1–1.2×);
- attribution patching's time (one forward + one backward) vs the exact grid, and the correlation between them.

Run: ``/work/shared/tools/bench-quiet -- .venv/bin/python bench/bench_circuits.py [--model smollm2-135m-instruct]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import report, timed  # noqa: E402  (also puts the repository root on sys.path)

from explorer.circuits import iter_patch  # noqa: E402
from explorer.circuits.patching import attribution_grid, check_inputs, clean_activations  # noqa: E402
from explorer.core.engine import get_engine  # noqa: E402
from explorer.core.intervene import trace  # noqa: E402
from explorer.core.progress import Progress  # noqa: E402

CLEAN = "When Mary and John went to the store after a long day at school, John gave a drink to"
CORRUPTED = "When Mary and John went to the store after a long day at school, Mary gave a drink to"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    engine = get_engine(args.model)
    ids = engine.encode(CLEAN)
    print(f"model {engine.name}, prompt {len(ids)} tokens, {engine.config.num_hidden_layers + 1} residual rows")

    plain = statistics.median(timed(lambda: engine.forward(ids, logits_to_keep=1), args.repeats))
    traced = statistics.median(timed(lambda: trace(engine, ids, lambda w, s: None, logits_to_keep=1), args.repeats))
    report("one nnsight-traced forward", traced, "s", plain, "plain Engine.forward", target="1.1-1.2x")

    start, first_row, result = time.perf_counter(), None, None
    columns = len(ids)
    for item in iter_patch(CLEAN, CORRUPTED, " Mary", " John", "resid", engine=engine):
        if isinstance(item, Progress):
            if first_row is None and item.partial is not None and item.partial.cells_done >= columns:
                first_row = time.perf_counter() - start
        else:
            result = item
    grid_s = time.perf_counter() - start
    cells = result.grid.size
    plain_all = sum(timed(lambda: engine.forward(ids, logits_to_keep=1), cells))
    report(f"{result.grid.shape[0]}x{result.grid.shape[1]} resid patching grid ({cells} cells)", grid_s, "s",
           plain_all, f"{cells} plain forwards", target="<= 1.3x")
    report("first grid row drawn after", first_row or grid_s, "s", target="<= 3 s")

    inputs = check_inputs(engine, CLEAN, CORRUPTED, " Mary", " John")
    acts, _ = clean_activations(engine, inputs.clean, "resid")
    attribution_s = statistics.median(timed(
        lambda: attribution_grid(engine, inputs.corrupted, "resid", acts, inputs.answer, inputs.wrong), args.repeats))
    report("attribution patching (one forward + one backward)", attribution_s, "s", grid_s, "exact grid")
    print(f"attribution vs exact patching: correlation {result.correlation:.3f} over {result.cells_done} cells")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
