"""Find the induction heads of the embedded models and check them causally; ``--write`` stores the table.

For each model: the head detector (first token + 50 random tokens repeated once, seed 0) scores every head; then
the mean next-token loss (nats) on the repeated half is measured with no ablation, with the top 3 induction heads
zero-ablated, and with 3 random heads zero-ablated (numpy generator, seed 0). Induction heads are what makes the
repeated half predictable, so ablating them should raise that loss far more than ablating random heads.

    python bench/find_induction_heads.py [--write] [--models smollm2-135m-instruct gemma-3-270m]

Not a timing bench (nothing is timed); writes data/circuits/induction_heads.json with --write.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from explorer.circuits import loss_on_repeat, run_heads, top_heads  # noqa: E402
from explorer.circuits.prompts import Component  # noqa: E402
from explorer.circuits.stored import STORED_FILE  # noqa: E402
from explorer.core.engine import get_engine  # noqa: E402
from explorer.core.provenance import run_meta  # noqa: E402
from models.registry import DEFAULT_MODEL, GEMMA  # noqa: E402


def measure(model: str, n: int = 50, seed: int = 0) -> dict:
    """The detector's top heads and the three losses for one model."""
    engine = get_engine(model)
    result = run_heads(n=n, seed=seed, engine=engine)
    top = top_heads(result.scores["induction"], 10)
    layers, heads = result.scores["induction"].shape
    rng = np.random.default_rng(seed)
    top3 = {(t["layer"], t["head"]) for t in top[:3]}
    pool = [(l, h) for l in range(layers) for h in range(heads) if (l, h) not in top3]
    random3 = [pool[i] for i in rng.choice(len(pool), size=3, replace=False)]
    ids = list(result.token_ids)
    losses = {"none": loss_on_repeat(engine, ids),
              "top3": loss_on_repeat(engine, ids, tuple(Component(l, "head", h) for l, h in sorted(top3))),
              "random3": loss_on_repeat(engine, ids, tuple(Component(l, "head", h) for l, h in random3))}
    return {"top": [dict(t, score=round(t["score"], 5)) for t in top], "loss": {k: round(v, 5) for k, v in losses.items()},
            "random_heads": [f"L{l}H{h}" for l, h in random3], "n": n, "seed": seed,
            "sequence_length": result.sequence_length}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {STORED_FILE}")
    parser.add_argument("--models", nargs="+", default=[DEFAULT_MODEL, GEMMA])
    args = parser.parse_args(argv)
    table = {}
    for model in args.models:
        row = table[model] = measure(model)
        heads = ", ".join(f"L{t['layer']}H{t['head']} {t['score']:.3f}" for t in row["top"][:3])
        print(f"{model}: top induction heads {heads}; loss on the repeated half: none {row['loss']['none']:.3f}, "
              f"top-3 ablated {row['loss']['top3']:.3f}, random-3 ({', '.join(row['random_heads'])}) ablated "
              f"{row['loss']['random3']:.3f} nats")
    if args.write:
        table["meta"] = run_meta("bench/find_induction_heads.py", argv, {"n": 50, "seed": 0})
        os.makedirs(os.path.dirname(STORED_FILE), exist_ok=True)
        with open(STORED_FILE, "w", encoding="utf-8") as handle:
            json.dump(table, handle, indent=1)
        print(f"wrote {STORED_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
