"""Cross-request step batching: 12 distinct greedy ``/decode``-like requests at once vs one after another.

Each request is what ``/decode`` runs for a greedy strategy (``explorer.decoding.sampling.token_loop``, 32 tokens,
records on) on the embedded SmolLM2 with its own chat-templated prompt. Prints, measured in this run:

- ``concurrent_shared``: the 12 requests in 12 threads with step batching on (``LLM_EXPLORER_STEP_BATCHING=1``),
  against ``sequential``: the same 12 one after another (the issue's target: ratio >= 3x);
- ``concurrent_unshared``: the 12 in threads with step batching off (interleaved passes, the old behaviour);
- ``single_shared`` vs ``single_unshared``: one request alone, the median of ``--single-repeats`` runs of each
  taken in turn (target: no slower, within noise);
- whether every request's tokens equal its sequential run's, and the step batch sizes seen.

The OpenMP wait policy is the server's (``explorer.serving.threads.configure``: ``PASSIVE``, set by ``app.py``
before torch loads), so the threads behave as they do under ``/decode``; ``--wait-policy default`` leaves libgomp's
default (idle pool threads spin a while at every barrier), which the server does not run with.

Usage: ``/work/shared/tools/bench-quiet -- .venv/bin/python bench/bench_step_batching.py [--tokens 32]``
"""
from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from common import report

PROMPTS = ["Write one sentence about the sea.", "Name three colours of autumn leaves.", "What is a prime number?",
           "Describe a cat in a few words.", "Give me a tip for learning to cook.", "Why is the sky blue?",
           "Write a haiku about mountains.", "What does a librarian do?", "Explain rain to a child.",
           "List two uses of a paperclip.", "What is the capital of Italy?", "Suggest a name for a small boat."]


def _set_batching(on: bool) -> None:
    from explorer.core.config import get_limits

    os.environ["LLM_EXPLORER_STEP_BATCHING"] = "1" if on else "0"
    get_limits.cache_clear()


def _one(engine, ids, tokens):
    from explorer.decoding.sampling import token_loop
    from explorer.decoding.strategies import Strategy

    return token_loop(engine, ids, Strategy("greedy", {}), tokens)[0]


def _concurrent(engine, prompts, tokens):
    out = [None] * len(prompts)

    def work(k):
        out[k] = _one(engine, prompts[k], tokens)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(prompts))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--single-repeats", type=int, default=3, help="alternated single runs of each kind")
    parser.add_argument("--wait-policy", choices=["server", "default"], default="server",
                        help="server: OMP_WAIT_POLICY as app.py sets it (PASSIVE); default: libgomp's own")
    args = parser.parse_args()
    if args.wait_policy == "server":
        from explorer.serving.threads import configure

        configure()  # before torch loads (the engine import below), as app.py's main does
    print(f"omp_wait_policy: {os.environ.get('OMP_WAIT_POLICY', 'libgomp default')}")
    from explorer.core.engine import get_engine
    from explorer.core.step_batcher import batcher_for

    engine = get_engine("smollm2-135m-instruct")
    prompts = [engine.chat_ids(p) for p in PROMPTS]
    _set_batching(False)
    _one(engine, prompts[0], 4)  # warm-up
    start = time.perf_counter()
    sequential = [_one(engine, ids, args.tokens) for ids in prompts]
    sequential_s = time.perf_counter() - start
    unshared_s, unshared = _concurrent(engine, prompts, args.tokens)
    _set_batching(True)
    _one(engine, prompts[0], 4)  # warm-up of the shared path
    before = len(batcher_for(engine).recent_sizes())
    shared_s, shared = _concurrent(engine, prompts, args.tokens)
    sizes = batcher_for(engine).recent_sizes()[before:]
    singles: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.single_repeats):  # alternated, so a change of load hits both sides alike
        for on in (False, True):
            _set_batching(on)
            start = time.perf_counter()
            _one(engine, prompts[0], args.tokens)
            singles[on].append(time.perf_counter() - start)
    single_unshared, single_shared = statistics.median(singles[False]), statistics.median(singles[True])
    report("concurrent_shared", shared_s, "s", baseline=sequential_s, baseline_name="sequential")
    report("speedup_vs_sequential", sequential_s / shared_s, "x", target=">= 3x")
    report("concurrent_unshared", unshared_s, "s", baseline=sequential_s, baseline_name="sequential")
    report("single_shared", single_shared, "s", baseline=single_unshared, baseline_name="single_unshared",
           target="ratio <= 1 within noise")
    print(f"single_runs_s: shared {[round(x, 3) for x in singles[True]]}, unshared "
          f"{[round(x, 3) for x in singles[False]]} (medians above)")
    same = sum(a == b for a, b in zip(shared, sequential))
    print(f"tokens_equal_to_sequential: {same}/{len(prompts)} (unshared: "
          f"{sum(a == b for a, b in zip(unshared, sequential))}/{len(prompts)})")
    if sizes:
        print(f"step_batch_sizes: mean {sum(sizes) / len(sizes):.2f}, max {max(sizes)}, passes {len(sizes)}")
    load = os.getloadavg()
    print(f"load_average_1_5_15_min: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
