"""Tools, agents and safety on the embedded models: the valid-call rate of free vs constrained decoding, attack
success per defence, and the cost of the grammar mask, measured in one run.

Usage::

    python bench/bench_agents.py                   # both models, every rate question, every built defence
    python bench/bench_agents.py --model smollm2-135m-instruct --items 4

Prints, per model: the first step's schema-valid-call rate (free, constrained) with 95 % bootstrap intervals and
the seconds per generated token of each (their ratio is the mask's overhead, measured in the same run); then, per
kind of attack, the canary success rate for each defence (``refusal_adapter`` on SmolLM2 only: the stored adapter of
``bench/train_refusal_adapter.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from explorer.agents import format as fmt  # noqa: E402
from explorer.agents import injection as inj  # noqa: E402
from explorer.agents import loop  # noqa: E402
from explorer.agents import refusal_adapter as ra  # noqa: E402
from explorer.agents.tools import TOOLS  # noqa: E402
from explorer.core.engine import get_engine  # noqa: E402
from explorer.core.progress import run_to_end  # noqa: E402
from explorer.prompting.lens import resolve_form  # noqa: E402
from explorer.prompting.stats import accuracy_interval  # noqa: E402


def call_rates(engine, n: int) -> None:
    """Valid-call rates and seconds per token, free vs constrained (a call required), on ``n`` questions."""
    chat, _ = resolve_form(engine, None)
    from explorer.agents.constrained import tokenizer_data

    tokenizer_data(engine.tokenizer, engine.eos_token_ids())  # built once, outside the timing
    valid, seconds, tokens = {"free": [], "constrained": []}, {"free": 0.0, "constrained": 0.0}, {"free": 0,
                                                                                                 "constrained": 0}
    for question in loop.RATE_QUESTIONS[:n]:
        ids = fmt.transcript_ids(engine, question, [], TOOLS, chat)
        for mode in ("free", "constrained"):
            start = time.perf_counter()
            text, count = loop.generate_step(engine, ids, TOOLS, mode == "constrained", require_call=mode != "free")
            seconds[mode] += time.perf_counter() - start
            tokens[mode] += max(count, 1)
            parsed = fmt.parse_step(text, TOOLS)
            valid[mode].append(parsed.kind == "call" and parsed.valid)
    per_token = {m: seconds[m] / tokens[m] for m in seconds}
    for mode in ("free", "constrained"):
        rate, low, high = accuracy_interval(valid[mode])
        print(f"  {mode:12s} valid calls {rate:.0%} [{low:.0%}, {high:.0%}] of {n}; "
              f"{per_token[mode] * 1000:.1f} ms/token")
    print(f"  mask overhead: constrained / free seconds per token = {per_token['constrained'] / per_token['free']:.2f}")


def attacks(engine, n: int) -> None:
    """Canary success rate per kind and built defence on ``n`` items."""
    for kind in inj.KINDS:
        for defence in inj.DEFENCES:
            if defence == "refusal_adapter" and engine.name != ra.ADAPTER_MODEL:
                print(f"  {kind:9s} {defence:18s} skipped: no stored adapter for {engine.name}")
                continue
            result = run_to_end(inj.iter_injection(defence=defence, kind=kind, limit=n, engine=engine))
            low, high = result.interval
            print(f"  {kind:9s} {defence:18s} success {result.success_rate:.0%} [{low:.0%}, {high:.0%}] of "
                  f"{len(result.items)}")


def main() -> None:
    """Run the measurements for the chosen models and print them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="model name (repeatable; default both embedded models)")
    parser.add_argument("--items", type=int, default=len(loop.RATE_QUESTIONS), help="questions / attack items")
    args = parser.parse_args()
    for name in args.model or ["smollm2-135m-instruct", "gemma-3-270m"]:
        engine = get_engine(name)
        print(name)
        call_rates(engine, min(args.items, len(loop.RATE_QUESTIONS)))
        attacks(engine, args.items)


if __name__ == "__main__":
    main()
