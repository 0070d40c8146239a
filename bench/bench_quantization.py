"""Quantisation benchmark on the embedded SmolLM2: time to prepare each method, greedy decode tokens/s per
method against the reference (ratio), and the llama.cpp-style quality table on the reference passage.

Run ``python bench/bench_quantization.py [--write] [--methods reference,bf16,...] [--tokens N]``;
``--write`` stores the quality table in ``data/quantization/quality_smollm2.json`` for the tab.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import report  # noqa: E402

from explorer import quantization  # noqa: E402
from explorer.core.engine import get_engine  # noqa: E402
from explorer.core.provenance import run_meta  # noqa: E402
from explorer.quantization.methods import METHODS, clear_variants, get_variant  # noqa: E402
from explorer.quantization.quality import PRECOMPUTED_PATH  # noqa: E402

PROMPT = "Explain in two sentences why the sky is blue."


def main(argv=None) -> None:
    """Prepare every method, time decoding, score the passage, print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--tokens", type=int, default=32, help="greedy tokens timed per method")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--write", action="store_true", help="store the quality table for the tab")
    args = parser.parse_args(argv)
    names = quantization.check_methods(args.methods.split(","))
    engine = get_engine("smollm2-135m-instruct")
    print(f"# {engine.name} on {engine.device}, reference dtype {engine.dtype}", flush=True)
    clear_variants()
    variants = {}
    for name in names:
        try:
            variants[name] = get_variant(engine, name)
        except Exception as exc:  # noqa: BLE001 - a method that cannot run here is reported, not fatal
            print(f"{name}: could not run here: {type(exc).__name__}: {exc}", flush=True)
    ref_bytes = variants["reference"].weight_bytes
    for name, v in variants.items():
        if name != "reference":
            report(f"prepare_{name}", v.prepare_s, "s")
        report(f"weight_bytes_{name}", v.weight_bytes, "bytes", ref_bytes, "reference")
        report(f"linear_weight_bytes_{name}", v.linear_weight_bytes, "bytes",
               variants["reference"].linear_weight_bytes, "reference")
    ids = engine.chat_ids(PROMPT)
    speed = {}
    for name, v in variants.items():
        quantization.greedy_generate(v.engine, ids, 2)  # warm-up
        _, speed[name], _ = quantization.greedy_generate(v.engine, ids, args.tokens)
    for name in variants:
        report(f"decode_{name}", speed[name], "tokens/s", speed["reference"], "reference")
    pq = quantization.run_passage(engine=engine, methods=list(variants), window=args.window)
    print(f"# reference passage: {pq.n_tokens} tokens, windows of {pq.window}", flush=True)
    for name, s in pq.stats.items():
        if isinstance(s, str):
            print(f"{name}: could not run here: {s}", flush=True)
            continue
        report(f"passage_kld_mean_{name}", s.kld_mean, "nats")
        report(f"passage_kld_p99_{name}", s.kld_p99, "nats")
        report(f"passage_kld_max_{name}", s.kld_max, "nats")
        report(f"passage_same_top_{name}", s.same_top_pct, "%")
        report(f"passage_rms_dp_{name}", s.rms_dp_pct, "% points")
        report(f"passage_ppl_{name}", s.ppl, "ppl", s.ppl_ref, "reference")
    if args.write:
        data = pq.to_api()
        data["meta"] = run_meta("bench/bench_quantization.py", argv, {
            "model": engine.name, "device": str(engine.device), "dtype": str(engine.dtype).replace("torch.", ""),
            "methods": list(variants), "window": args.window, "tokens_timed": args.tokens})
        PRECOMPUTED_PATH.write_text(json.dumps(data), encoding="utf-8")
        print(f"# wrote {PRECOMPUTED_PATH}", flush=True)


if __name__ == "__main__":
    main()
