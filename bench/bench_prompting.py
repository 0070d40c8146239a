"""Prompting patterns and benchmark scoring on the embedded models, every held-out item: the stored tables.

Usage::

    python bench/bench_prompting.py --write                 # score every (task, model, pattern); resumable
    python bench/bench_prompting.py --write --limit 20      # fewer items per row (said in each row)
    python bench/bench_prompting.py --write --workers 8     # items at once, sharing decode passes (default 8)
    python bench/bench_prompting.py                         # print the stored table

``--write`` appends one JSON line per (task, model, pattern) to ``data/prompting/bench_results.jsonl`` as each
finishes (with the command, versions and settings) and skips rows already there, so an interrupted run resumes.
The Prompting & agents tab reads that file (``explorer.prompting.stored``) and shows it as STORED.
Patterns run as the live API runs them (``explorer.prompting.lens``): few-shot k=3, self-consistency N=5 at
temperature 0.7 with seed 0, tree of thoughts on arithmetic only. SmolLM2 (instruct) gets chat turns, Gemma 3 270M
(base) plain text.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from explorer.core.config import data_path  # noqa: E402
from explorer.core.progress import run_to_end  # noqa: E402
from explorer.prompting import benchmark, lens, stored  # noqa: E402
from explorer.prompting.patterns import PATTERNS  # noqa: E402
from explorer.prompting.stats import accuracy_interval  # noqa: E402
from explorer.prompting.tasks import TASKS, items  # noqa: E402

MODELS = ("smollm2-135m-instruct", "gemma-3-270m")
SETTINGS = {"few_shot": {"k": 3}, "self_consistency": {"n_samples": 5}}


def _versions() -> dict:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def _score_rows(models, tasks, limit, samples, done, out, workers=1):
    from explorer.core.engine import get_engine

    for model in models:
        engine = get_engine(model)
        for task in tasks:
            n = min(limit or len(items(task)), len(items(task)))
            for pattern in PATTERNS + ("benchmark",):
                if pattern == "tree_of_thoughts" and task != "arithmetic":
                    continue
                key = (task, model, pattern)
                if key in done:
                    continue
                start = time.perf_counter()
                if pattern == "benchmark":
                    res = run_to_end(benchmark.iter_run(task, limit=n, engine=engine))
                    row = {"acc": res.acc, "acc_norm": res.acc_norm, "interval": list(res.interval),
                           "interval_norm": list(res.interval_norm), "n": res.n, "chat_template": res.chat_template,
                           "correct": [i.pick == i.label for i in res.items]}
                else:
                    extra = dict(SETTINGS.get(pattern, {}))
                    if pattern == "self_consistency" and samples:
                        extra["n_samples"] = samples
                    items_for = items(task)[:n]
                    _, pattern_name, k, n_samples, _, _ = lens.check_settings(task, pattern, extra.get("k", 0),
                                                                                 extra.get("n_samples", 1), 1)
                    chat, _ = lens.resolve_form(engine, None)
                    shots = items(task, "dev")[:k]
                    # items run in parallel threads: their decode steps share forward passes (Engine.steps
                    # share=True, the step batcher), as concurrent visitors' requests do; results keep item order
                    with ThreadPoolExecutor(max_workers=workers) as pool:
                        scored = list(pool.map(
                            lambda pair: lens.score_item(engine, task, pair[1], pattern_name, shots, chat, n_samples,
                                                         0, pair[0]), enumerate(items_for)))
                    acc, low, high = accuracy_interval([s.correct for s in scored])
                    row = {"accuracy": acc, "interval": [low, high], "n": len(scored), "k": k, "n_samples": n_samples,
                           "chat_template": chat, "tokens_per_item": sum(s.tokens for s in scored) / len(scored),
                           "correct": [s.correct for s in scored]}
                row.update(task=task, model=model, pattern=pattern, seconds=round(time.perf_counter() - start, 2),
                           command="python " + " ".join(sys.argv), versions=_versions(), limit=n)
                out.write(json.dumps(row) + "\n")
                out.flush()
                done.add(key)
                value = row.get("accuracy", row.get("acc"))
                print(f"prompting {task:10s} {model:22s} {pattern:17s} accuracy {value:.3f} "
                      f"[{row['interval'][0]:.3f}, {row['interval'][1]:.3f}] n={row['n']} ({row['seconds']:.0f} s)",
                      flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="score the missing rows and append them")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--limit", type=int, default=None, help="items per row (default: every test item)")
    parser.add_argument("--samples", type=int, default=None, help="self-consistency N (default 5)")
    parser.add_argument("--workers", type=int, default=8,
                        help="items scored at once; their decode steps share forward passes (default 8)")
    args = parser.parse_args()
    path = data_path(*stored.RESULTS_FILE)
    if args.write:
        done = {(r["task"], r["model"], r["pattern"]) for r in stored.load_rows()}
        with open(path, "a", encoding="utf-8") as out:
            _score_rows(args.models, args.tasks, args.limit, args.samples, done, out, args.workers)
    table = stored.load_stored()
    if table is None:
        print("no stored rows yet: run with --write")
        return
    for row in table.rows:
        value = row.get("accuracy", row.get("acc"))
        print(f"stored {row['task']:10s} {row['model']:22s} {row['pattern']:17s} {value:.3f} n={row['n']}")


if __name__ == "__main__":
    main()
