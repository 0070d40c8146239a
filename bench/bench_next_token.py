"""Next token lens benchmark: time per 1,000 scored tokens vs one plain forward pass, the perplexity-by-domain
table and the needle-in-a-haystack grid (lengths up to 4,096 tokens).

    python bench/bench_next_token.py                 # scoring time, domain table, and the stored needle grid
    python bench/bench_next_token.py --write         # also run the needle grid; store data/next_token/*_<model>.json
    python bench/bench_next_token.py --only needle   # run one part (scoring, domains or needle)
    python bench/bench_next_token.py --stored        # print the stored needle grid without running the model

Lines follow bench/common.py: ``name: value unit  (baseline X: value unit, ratio Nx)``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import report  # noqa: E402

LENGTHS = (256, 1024, 4096)
DEPTHS = (0.0, 0.5, 1.0)


def meta(command: str, settings: dict) -> dict:
    """How a stored file was made: command, UTC date, library versions, machine, settings."""
    import scipy
    import torch
    import transformers

    now = time.time()
    return {"command": command, "date": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(),
            "unix_time": now, "versions": {"python": platform.python_version(), "torch": torch.__version__,
                                           "transformers": transformers.__version__, "scipy": scipy.__version__},
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}",
            "settings": settings}


def bench_scoring(engine) -> None:
    """Seconds per 1,000 scored tokens (chunked log-softmax + rank + top-10) vs one plain forward pass."""
    from explorer.next_token import scoring
    from explorer.next_token.texts import LONG_DOCUMENT

    ids, _ = scoring.encode_window(engine, LONG_DOCUMENT, 4096)
    engine.forward(ids[:32])  # warm-up
    plain = min(_time(lambda: engine.forward(ids)) for _ in range(1))
    scored = min(_time(lambda: scoring.run(LONG_DOCUMENT, engine=engine, top_k=10, cap=4096,
                                                  check_loss=False)) for _ in range(1))
    per_k = 1000.0 / (len(ids) - 1)
    report("score_per_1000_tokens", scored * per_k, "s", plain * per_k, "one plain forward pass",
           target="ratio <= 1.5x")


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def print_domains(table) -> None:
    """One line per domain: perplexity and bits per byte with the bootstrap interval."""
    for r in table.rows:
        print(f"domain {r.name}: perplexity {r.perplexity:.2f} [{r.ppl_low:.2f}, {r.ppl_high:.2f}] per token, "
              f"{r.bits_per_byte:.3f} [{r.bpb_low:.3f}, {r.bpb_high:.3f}] bits/byte, {r.tokens} tokens, "
              f"{r.bytes_per_token:.2f} bytes/token  ({table.provenance.kind})", flush=True)


def print_needle(result) -> None:
    """The grid: one line per length, accuracy and answer log-prob per depth, then the verdict."""
    print(f"needle grid ({result.provenance.kind}: {result.provenance.source}); depths {list(result.depths)}")
    for length, acc, lp in zip(result.lengths, result.grid, result.logprob_grid):
        cells = "  ".join(f"{a:.0f}/{v:+.2f}" for a, v in zip(acc, lp))
        print(f"needle {length} tokens: {cells}  (correct/answer log-prob nats per depth)", flush=True)
    print(result.verdict(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--write", action="store_true", help="store the domain table and the needle grid")
    parser.add_argument("--stored", action="store_true", help="print the stored tables only")
    parser.add_argument("--only", choices=("scoring", "domains", "needle"), help="run one part only")
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    parser.add_argument("--depths", default=",".join(map(str, DEPTHS)))
    args = parser.parse_args()
    from explorer.next_token import domains, needle

    if args.stored:
        for loaded, show in ((domains.load_stored(args.model), print_domains),
                             (needle.load_stored(args.model), print_needle)):
            print("(nothing stored)") if loaded is None else show(loaded)
        return
    from explorer.core.engine import get_engine

    engine = get_engine(args.model)
    command = "python bench/bench_next_token.py " + " ".join(sys.argv[1:])
    if args.only in (None, "scoring"):
        bench_scoring(engine)
    if args.only in (None, "domains"):
        table = domains.run(engine=engine)
        print_domains(table)
        if args.write:
            print("wrote", domains.save(table, meta(command, {"window_tokens": domains.WINDOW_TOKENS,
                                                              "n_resamples": domains.N_RESAMPLES})))
    if args.only not in (None, "needle"):
        return
    if not args.write and args.only is None:  # the grid takes ~20 min on 2 busy cores: show the stored one
        stored_grid = needle.load_stored(args.model)
        print("(no stored needle grid; run with --write)") if stored_grid is None else print_needle(stored_grid)
        return
    lengths = [int(v) for v in args.lengths.split(",")]
    depths = [float(v) for v in args.depths.split(",")]
    start = time.perf_counter()
    result = None
    settings = {"lengths": lengths, "depths": depths, "needle": "explorer/next_token/texts.py NEEDLE"}
    for item in needle.iter_run(engine=engine, lengths=lengths, depths=depths, max_tokens=max(lengths),
                                max_cells=len(lengths) * len(depths)):
        if hasattr(item, "partial") and item.partial is not None:
            cell = item.partial.cells[-1]
            print(f"  cell {cell.tokens} tokens depth {cell.depth}: correct={cell.correct} "
                  f"logprob={cell.answer_logprob:.2f} generated={cell.generated!r} ({cell.ms / 1000:.1f} s)", flush=True)
            if args.write:  # keep what is done so far (a partial grid shows its missing cells as empty)
                needle.save(item.partial, meta(command, {**settings, "complete": False}))
        else:
            result = item
    elapsed = time.perf_counter() - start
    report("needle_grid_seconds", elapsed, "s", target="under ~900 s on 2 cores")
    print_needle(result)
    if args.write:
        print("wrote", needle.save(result, meta(command, {**settings, "complete": True, "seconds": elapsed})))


if __name__ == "__main__":
    main()
