"""Stored bench tables say how they were made, and the tabs show it (issue 13, item 10)."""
from __future__ import annotations

import datetime
import glob
import json
import os

from explorer.core.provenance import meta_line, run_meta
from components.tabs.hallucination import tab as hallucination_tab
from components.tabs.quantization import tab as quantization_tab
from explorer.core.config import REPO_ROOT


def test_run_meta_records_command_date_versions_and_settings():
    meta = run_meta("bench/bench_quantization.py", ["--write", "--window", "512"], {"window": 512})
    assert meta["command"] == "python bench/bench_quantization.py --write --window 512"
    assert datetime.datetime.fromisoformat(meta["date"]).tzinfo is not None
    import torch
    import transformers

    assert meta["versions"]["torch"] == torch.__version__
    assert meta["versions"]["transformers"] == transformers.__version__
    assert meta["settings"] == {"window": 512}
    line = meta_line(meta)
    assert "python bench/bench_quantization.py --write --window 512" in line and meta["date"][:10] in line
    assert f"torch {torch.__version__}" in line


def test_quantization_note_names_the_command_that_writes_the_table():
    data = {"n_tokens": 10, "model": "m", "window": 8, "device": "cpu", "methods": {}}
    empty = quantization_tab._passage_note(None, live=False)
    assert "python bench/bench_quantization.py --write" in empty
    unrecorded = quantization_tab._passage_note(data, live=False)
    assert "--write" in unrecorded and "not recorded" in unrecorded
    meta = run_meta("bench/bench_quantization.py", ["--write"], {"window": 8})
    recorded = quantization_tab._passage_note({**data, "meta": meta}, live=False)
    assert meta["command"] in recorded and meta["date"][:10] in recorded and "transformers" in recorded


def test_auroc_note_states_the_collection_settings():
    _, _, text = hallucination_tab.auroc_view("questions")
    records = [json.loads(line) for line in open(os.path.join(REPO_ROOT, "data/hallucination/bench_results.jsonl"))
               if line.strip()]
    samples = sorted({r["n_samples"] for r in records if r["set"] == "questions"})
    seeds = sorted({r["seed"] for r in records if r["set"] == "questions"})
    assert f"{samples[0]} samples" in text and f"seed {seeds[0]}" in text
    assert "python bench/bench_hallucination.py collect" in text


def test_bench_scripts_print_targets_as_targets_not_as_baselines():
    for path in glob.glob(os.path.join(REPO_ROOT, "bench", "*.py")):
        source = open(path, encoding="utf-8").read()
        assert 'baseline_name="target"' not in source, f"{path} prints a target as a baseline"


def test_the_shipped_quantisation_table_says_how_it_was_made():
    import json

    from explorer.quantization.quality import PRECOMPUTED_PATH

    data = json.loads(PRECOMPUTED_PATH.read_text(encoding="utf-8"))
    meta = data["meta"]
    assert meta["command"] == "python bench/bench_quantization.py --write"
    assert meta["settings"]["window"] == data["window"] and meta["settings"]["methods"] == list(data["methods"])
    note = quantization_tab._passage_note(data, live=False)
    assert meta["command"] in note and meta["date"][:10] in note and "not recorded" not in note
