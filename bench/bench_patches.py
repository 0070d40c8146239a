"""Per-pass patch overhead: a forward pass with hooks installed and removed inside the locked pass
(``Engine.forward(..., patches=[...])``, explorer/core/patches.py) against the same pass with the same hooks
registered once by hand outside it (the baseline, measured in the same run), and against a plain pass.

Target: the per-pass install/remove adds well under 1 ms to a pass of the real model (ratio close to 1.00x).

Run: ``/work/shared/tools/bench-quiet -- .venv/bin/python bench/bench_patches.py [--model NAME] [--tokens 64]
[--repeats 20]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

from common import report  # noqa: E402  (common puts the repo root on sys.path)

from explorer.core.engine import get_engine
from explorer.core.patches import AttnImplementation, ForwardHook


def _ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    engine = get_engine(args.model)
    ids = (engine.encode("The lighthouse keeper climbed the stairs every evening. ") * args.tokens)[:args.tokens]
    layers = engine.model.model.layers
    seen = []

    def hook(module, inputs, output):
        seen.append(1)

    names = [f"model.layers.{i}" for i in range(len(layers))]
    patches = [ForwardHook(name, hook) for name in names]
    plain = _ms(lambda: engine.forward(ids, logits_to_keep=1), args.repeats)
    handles = [layer.register_forward_hook(hook) for layer in layers]
    try:
        by_hand = _ms(lambda: engine.forward(ids, logits_to_keep=1), args.repeats)
    finally:
        for handle in handles:
            handle.remove()
    patched = _ms(lambda: engine.forward(ids, logits_to_keep=1, patches=patches), args.repeats)
    swap = _ms(lambda: engine.forward(ids, logits_to_keep=1, patches=[AttnImplementation("sdpa")]), args.repeats)
    report(f"forward_{len(names)}_hooks_as_patches", patched, "ms", by_hand, "same hooks registered once by hand",
           target="ratio <= 1.05x")
    report("forward_no_op_attn_patch", swap, "ms", plain, "plain forward", target="ratio <= 1.05x")


if __name__ == "__main__":
    main()
