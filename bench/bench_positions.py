"""Positions benchmark: eager vs SDPA attention cost (ms per forward, peak attention-step bytes, ratios and the
growth per doubling of the length) and the context-extension perplexity table, on the real model in one run.

Eager attention stores ``heads x n^2`` scores per layer, so its peak bytes should grow about 4x per doubling of n;
SDPA's fused kernel (FlashAttention-style, Dao et al. 2022, arXiv:2205.14135) keeps tiles only. The baseline of
each SDPA line is eager at the same length, measured in the same run.

Run: ``OMP_NUM_THREADS=2 .venv/bin/python bench/bench_positions.py [--lengths 128,256,512,1024] [--model NAME]
[--offsets 0,8192,32768] [--factor 4]``.
"""
from __future__ import annotations

import argparse

from common import report  # noqa: E402  (common puts the repo root on sys.path)

from explorer.core.engine import get_engine
from explorer.positions import cost, extension


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--lengths", default="128,256,512,1024")
    parser.add_argument("--offsets", default="0,8192,32768")
    parser.add_argument("--factor", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    engine = get_engine(args.model)
    lengths = [int(x) for x in args.lengths.split(",")]
    result = cost.run(lengths, engine=engine, repeats=args.repeats)
    print(f"# attention cost on {result.device}, {engine.name} ({engine.dtype})")
    print(f"{'length':>7} {'eager ms':>10} {'sdpa ms':>10} {'ms ratio':>9} {'eager bytes':>14} {'sdpa bytes':>12} "
          f"{'bytes ratio':>11} {'formula n^2':>12} {'max rel diff':>12}")
    for length in sorted(result.max_rel_diff):
        e, s = result.row(length, "eager"), result.row(length, "sdpa")
        print(f"{length:>7} {e.ms:>10.1f} {s.ms:>10.1f} {e.ms / s.ms:>8.2f}x {e.peak_bytes:>14,} {s.peak_bytes:>12,} "
              f"{e.peak_bytes / max(1, s.peak_bytes):>10.1f}x {e.formula_bytes:>12,} "
              f"{result.max_rel_diff[length]:>12.1e}")
    for length in sorted(result.max_rel_diff):
        e, s = result.row(length, "eager"), result.row(length, "sdpa")
        report(f"sdpa_forward_ms_{length}", s.ms, "ms", e.ms, f"eager_forward_ms_{length}")
        report(f"sdpa_attention_peak_bytes_{length}", s.peak_bytes, "bytes", e.peak_bytes,
               f"eager_attention_peak_bytes_{length}")
    ordered = sorted(result.max_rel_diff)
    for impl in cost.IMPLEMENTATIONS:
        for a, b in zip(ordered, ordered[1:]):
            if b == 2 * a:
                report(f"{impl}_peak_bytes_growth_{a}_to_{b}", result.row(b, impl).peak_bytes, "bytes",
                       result.row(a, impl).peak_bytes, f"{impl}_peak_bytes_{a}", target="eager about 4x per doubling")
    offsets = [int(x) for x in args.offsets.split(",")]
    scalings = [{"type": t, "factor": args.factor} for t in extension.SCALING_TYPES]
    ext = extension.run(offsets, scalings, engine=engine)
    print(f"# context extension: {ext.tokens}-token passage, second half shifted by the offset; trained length "
          f"{ext.trained_length:,}; scaling applies to {ext.scaled_layers}")
    print(f"{'offset':>8} " + " ".join(f"{t if t == 'none' else f'{t} x{args.factor:g}':>14}"
                                       for t in extension.SCALING_TYPES))
    for offset in offsets:
        cells = [next(r.perplexity for r in ext.rows if r.offset == offset and r.scaling == t)
                 for t in extension.SCALING_TYPES]
        print(f"{offset:>8} " + " ".join(f"{c:>14.2f}" for c in cells))
    far = offsets[-1]
    none_far = next(r.perplexity for r in ext.rows if r.offset == far and r.scaling == "none")
    for t in extension.SCALING_TYPES[1:]:
        report(f"perplexity_{t}_x{args.factor:g}_offset_{far}",
               next(r.perplexity for r in ext.rows if r.offset == far and r.scaling == t), "", none_far,
               f"perplexity_none_offset_{far}")


if __name__ == "__main__":
    main()
