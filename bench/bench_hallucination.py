"""Hallucination probes on SmolLM2 on CPU: time of each probe, and each probe's AUROC on the labelled set.

Usage::

    python bench/bench_hallucination.py collect     # answer + score every labelled item (resumable)
    python bench/bench_hallucination.py             # time each probe, then print the AUROC tables

``collect`` appends one JSON line per item to ``data/hallucination/bench_results.jsonl`` as it goes and
skips items already stored, so an interrupted run continues where it stopped. The table is recomputed from
that file alone (``explorer.hallucination.evaluation``), so the app shows it without the model.

Targets (issue 8): every probe < 30 s on CPU; at least two scores with AUROC >= 0.65 whose lower 95 %
bound is above 0.5; the shuffled-score control within 0.5 +/- 0.05.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import report  # noqa: E402
from explorer.core.config import get_limits  # noqa: E402
from explorer import hallucination as H  # noqa: E402
from explorer.hallucination.answer import matches  # noqa: E402
from explorer.hallucination.evaluation import (RESULTS_FILE, auroc_table, load_entities, load_questions,  # noqa: E402
                                         load_results, scores_from_probes)

MODEL = "smollm2-135m-instruct"
BENCH_PROBES = ("token_confidence", "sequence", "semantic_entropy", "logit_lens", "p_true")
N_SAMPLES = 3  # few samples: the bench runs on 2 CPU cores shared with other jobs
SEED = 0
TIMING_QUESTION = "Who discovered penicillin?"
TIMING_CONTEXT = ("Penicillin was discovered in 1928 by the Scottish physician Alexander Fleming, who noticed "
                  "that a mould had killed the bacteria around it on a culture plate.")


def items() -> list[dict]:
    """Every labelled item in collection order: the questions, then the entities (real and invented alternate)."""
    out = [{"id": q["id"], "set": "questions", "question": q["question"], "answers": q["answers"]}
           for q in load_questions()]
    ents = load_entities()
    real, fake = [e for e in ents if e["real"]], [e for e in ents if not e["real"]]
    for r, f in zip(real, fake):
        for e in (r, f):
            out.append({"id": e["id"], "set": "entities", "question": e["question"], "real": e["real"],
                        "name": e["name"], "kind": e["kind"]})
    return out


def _record_collection(path: str) -> None:
    """Append this collection's command, date, library versions and settings to ``<results>.meta.json``."""
    from explorer.core.provenance import run_meta

    meta_path = os.path.splitext(path)[0] + ".meta.json"
    meta = json.load(open(meta_path, encoding="utf-8")) if os.path.exists(meta_path) else {"runs": []}
    meta["runs"].append(run_meta("bench/bench_hallucination.py", None, {
        "model": MODEL, "probes": list(BENCH_PROBES), "n_samples": N_SAMPLES, "seed": SEED}))
    with open(meta_path, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)


def collect(path: str = RESULTS_FILE, limit: int | None = None, only: str | None = None, reverse: bool = False) -> None:
    """Answer and score every item not yet in ``path``; append one JSON line per item.

    ``only`` restricts to ``"questions"`` or ``"entities"`` so two processes can share the work; the file is
    re-read before each item, so an item stored by the other process is skipped; ``reverse`` walks the list
    from the end so a second process on the same set meets the first in the middle.
    """
    _record_collection(path)
    done = {r["id"] for r in load_results(path)}
    todo = [it for it in items() if it["id"] not in done and only in (None, it["set"])]
    todo = (todo[::-1] if reverse else todo)[:limit]
    print(f"collect: {len(done)} stored, {len(todo)} to go -> {path}", flush=True)
    for i, it in enumerate(todo):
        if it["id"] in {r["id"] for r in load_results(path)}:
            continue
        start = time.perf_counter()
        result = H.run(it["question"], MODEL, BENCH_PROBES, n_samples=N_SAMPLES, seed=SEED)
        data = result.to_api()
        record = {"id": it["id"], "set": it["set"], "question": it["question"], "answer": data["answer"],
                  "model": MODEL, "n_samples": N_SAMPLES, "seed": SEED,
                  "scores": scores_from_probes(data["probes"]),
                  "samples": data["probes"].get("semantic_entropy", {}).get("samples"),
                  "elapsed_ms": data["elapsed_ms"]}
        if it["set"] == "questions":
            record.update(answers=it["answers"], correct=matches(data["answer"], it["answers"]))
        else:
            record.update(real=it["real"], name=it["name"], kind=it["kind"])
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(f"[{i + 1}/{len(todo)}] {it['id']} {time.perf_counter() - start:.1f}s "
              f"{data['answer']!r} {record.get('correct', record.get('real'))}", flush=True)


def time_probes() -> None:
    """Time each probe once on one question (the greedy answer separately)."""
    result = H.run(TIMING_QUESTION, MODEL, list(H.PROBES), context=TIMING_CONTEXT, n_samples=N_SAMPLES, seed=SEED)
    for name, ms in result.elapsed_ms.items():
        extra = result.probes.get(name, {})
        if "error" in extra:
            print(f"probe_{name}: error {extra['error']}")
            continue
        report(f"probe_time_{name}", ms / 1000, "s", target="< 30 s")
    from explorer.hallucination.attribution import attribute
    from explorer.core.engine import get_engine

    start = time.perf_counter()
    attribute(get_engine(MODEL), TIMING_QUESTION, result.answer, method="integrated_gradients", unit="word")
    report("probe_time_attribution_integrated_gradients", time.perf_counter() - start, "s", target="< 30 s")


def print_tables(path: str = RESULTS_FILE) -> None:
    """Print the AUROC table for both tasks from the stored records."""
    records = load_results(path)
    for task in ("questions", "entities"):
        chosen = [r for r in records if r.get("set") == task]
        if not chosen:
            print(f"{task}: no stored results")
            continue
        key = "correct" if task == "questions" else "real"
        n_pos = sum(1 for r in chosen if not r[key])
        what = "wrong answers" if task == "questions" else "invented entities"
        report(f"{task}_items", len(chosen), "items")
        report(f"{task}_{what.replace(' ', '_')}", n_pos, "items")
        cap_ms = get_limits().max_probe_seconds * 1000
        report(f"{task}_items_with_a_probe_over_the_time_cap", sum(
            1 for r in chosen if any(v > cap_ms for v in r.get("elapsed_ms", {}).values())), "items")
        rows = auroc_table(records, task)
        for row in rows:
            name = f"auroc[{task}] {row.score} [95% CI {row.low:.3f}-{row.high:.3f}, n={row.n}]"
            report(name, row.auroc, "AUROC",
                   baseline=row.shuffled, baseline_name="shuffled-score control", target=">= 0.65, low > 0.5")
        report(f"{task}_scores_meeting_target", sum(1 for r in rows if r.auroc >= 0.65 and r.low > 0.5), "scores",
               target=">= 2 (AUROC >= 0.65 and lower bound > 0.5)")
        report(f"{task}_worst_shuffled_control_distance_from_0.5", max(abs(r.shuffled - 0.5) for r in rows), "AUROC",
               target="<= 0.05")


def main(argv: list[str] | None = None) -> None:
    """Command line: ``collect`` (resumable) or, by default, probe timings plus the AUROC tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="report", choices=("collect", "report", "table"))
    parser.add_argument("--limit", type=int, default=None, help="collect at most this many items")
    parser.add_argument("--results", default=RESULTS_FILE)
    parser.add_argument("--reverse", action="store_true", help="collect from the end of the list")
    parser.add_argument("--only", choices=("questions", "entities"), default=None, help="collect one set only")
    args = parser.parse_args(argv)
    if args.mode == "collect":
        collect(args.results, args.limit, args.only, args.reverse)
        return
    if args.mode == "report":
        time_probes()
    print_tables(args.results)


if __name__ == "__main__":
    main()
