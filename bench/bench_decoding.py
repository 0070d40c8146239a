"""Decoding benchmark: our recording loops vs ``model.generate`` with the same settings, and prompt lookup.

Prints, for greedy, sampling and beam search, tokens/s of the recording loop (per-step records included)
and of ``model.generate`` measured in the same run, plus the per-token time ratio (target <= 1.3x); then
prompt-lookup speculative decoding vs plain greedy on a task that quotes the prompt (target >= 1.5x,
identical output); then the Decoding tab's default columns as one request, greedy/sampling columns batched on
``Engine.batch_steps`` vs one column at a time (same tokens required). Best of ``BENCH_REPEATS`` (default 3)
timings each, since shared CPUs are noisy.

Run: ``python bench/bench_decoding.py`` (``BENCH_NEW_TOKENS`` sets tokens per run, default 32;
``--columns`` runs only the batched-columns figure).
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import report  # noqa: E402  (also puts the repository root on sys.path, offline flags)

import torch  # noqa: E402

from explorer import decoding  # noqa: E402
from explorer.decoding.speculative import run_speculative  # noqa: E402
from explorer.decoding.strategies import generate_kwargs, parse_strategy  # noqa: E402
from explorer.core.engine import get_engine  # noqa: E402

NEW_TOKENS = int(os.environ.get("BENCH_NEW_TOKENS", "32"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
QUOTE = ("Copy the following paragraph exactly, word for word:\n\n"
         "The old lighthouse stood at the edge of the cliff for more than a hundred years. Every night its "
         "keeper climbed the spiral stairs, trimmed the wick and polished the great lens, so that ships passing "
         "in the dark would know where the rocks were hidden beneath the waves.")
STRATEGIES = {
    "greedy": {"name": "greedy"},
    "sampling": {"name": "sampling", "temperature": 0.7, "top_p": 0.95, "top_k": 0, "seed": 7},
    "beam": {"name": "beam", "num_beams": 4},
}


def _interleaved(first, second):
    """Best wall times of ``first`` and ``second`` (seconds), alternating them so load changes hit both."""
    best, outs = [float("inf"), float("inf")], [None, None]
    for _ in range(REPEATS):
        for k, fn in enumerate((first, second)):
            start = time.perf_counter()
            outs[k] = fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best, outs


def bench_strategies(engine) -> None:
    """Tokens/s and ms/token of each strategy: our recording loop vs model.generate, same settings."""
    prompt_ids = engine.chat_ids(PROMPT)
    inputs = torch.tensor([prompt_ids], device=engine.device)
    for name, raw in STRATEGIES.items():
        strategy = parse_strategy(raw, engine.config.vocab_size, 8)

        def ours():
            return decoding.run(PROMPT, strategies=[strategy], max_new_tokens=NEW_TOKENS, engine=engine)

        def generate():
            torch.manual_seed(strategy.seed or 0)
            with engine.session():
                return engine.model.generate(inputs, max_new_tokens=NEW_TOKENS, **generate_kwargs(strategy))

        (ours_s, gen_s), (result, out) = _interleaved(ours, generate)
        ours_ids = result.runs[0].token_ids.tolist()
        gen_ids = out[0, len(prompt_ids):].tolist()
        report(f"{name}_tokens_per_s", len(ours_ids) / ours_s, "tokens/s", baseline=len(gen_ids) / gen_s,
               baseline_name="model.generate")
        report(f"{name}_ms_per_token", 1000 * ours_s / len(ours_ids), "ms", baseline=1000 * gen_s / len(gen_ids),
               baseline_name="model.generate", target="<= 1.3x (recording overhead)")
        print(f"{name}_ids_equal_generate: {ours_ids == gen_ids}", flush=True)


def bench_prompt_lookup(engine) -> None:
    """Prompt-lookup speculative decoding vs plain greedy on a task that quotes the prompt."""
    results = [run_speculative(QUOTE, engine=engine, max_new_tokens=2 * NEW_TOKENS, num_draft=10, ngram_size=3)
               for _ in range(REPEATS)]
    best = min(results, key=lambda r: r.seconds)
    baseline_s = min(r.baseline_seconds for r in results)  # plain greedy, timed in the same calls
    report("prompt_lookup_tokens_per_s", len(best.token_ids) / best.seconds, "tokens/s",
           baseline=len(best.baseline_ids) / baseline_s, baseline_name="plain greedy",
           target=">= 1.5x with identical output")
    report("prompt_lookup_acceptance_rate", best.acceptance_rate, "fraction")
    report("prompt_lookup_forward_passes", best.forward_passes, "passes", baseline=len(best.baseline_ids),
           baseline_name="plain greedy")
    print(f"prompt_lookup_identical_to_greedy: {all(r.identical for r in results)}", flush=True)


def bench_columns(engine) -> None:
    """The Decoding tab's default columns in one request: step-wise columns batched vs one column at a time."""
    from components.tabs.decoding.tab import DEFAULT_PRESETS

    columns = [dict(decoding.PRESETS[name]) for name in DEFAULT_PRESETS]
    for k, raw in enumerate(columns):  # fixed seeds so both paths draw the same tokens
        if raw["name"] == "sampling":
            raw["seed"] = k + 1
    (batched_s, single_s), (batched, single) = _interleaved(
        lambda: decoding.run(PROMPT, strategies=columns, max_new_tokens=NEW_TOKENS, engine=engine),
        lambda: decoding.run(PROMPT, strategies=columns, max_new_tokens=NEW_TOKENS, engine=engine, batched=False))
    same = all(a.token_ids.tolist() == b.token_ids.tolist() for a, b in zip(batched.runs, single.runs))
    print(f"decode_columns_batched: {1000 * batched_s:,.0f} ms (baseline one column at a time: "
          f"{1000 * single_s:,.0f} ms, ratio {single_s / batched_s:.2f} x; columns {', '.join(DEFAULT_PRESETS)}; "
          f"tokens identical: {same})", flush=True)


def main() -> None:
    """Run every figure of the benchmark on the embedded model."""
    engine = get_engine()
    print(f"# decoding bench on {engine.name}, {engine.device} {engine.dtype}, {torch.get_num_threads()} CPU "
          f"threads, {NEW_TOKENS} new tokens, best of {REPEATS}", flush=True)
    decoding.run("warm up", strategies=[{"name": "greedy"}], max_new_tokens=2, engine=engine)
    if "--columns" in sys.argv[1:]:
        bench_columns(engine)
        return
    bench_strategies(engine)
    bench_prompt_lookup(engine)
    bench_columns(engine)


if __name__ == "__main__":
    main()
