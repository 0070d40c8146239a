"""The lens contract in tokens, lora and hallucination: ``iter_run`` yields Progress items then the result,
``run`` returns that result, ``to_api`` serialises it, and every result carries a ``provenance``."""
from __future__ import annotations

import json

import pytest

from explorer.core.progress import Progress
from explorer.core.provenance import KINDS


def _check(package, items):
    assert items and all(isinstance(i, Progress) for i in items[:-1]) and not isinstance(items[-1], Progress)
    assert all(0.0 <= i.fraction <= 1.0 for i in items[:-1])
    result = items[-1]
    assert result.provenance.kind in KINDS and result.provenance.source
    data = package.to_api(result)
    assert data["provenance"]["kind"] == result.provenance.kind
    json.dumps(data)  # plain JSON
    return result


def test_tokens():
    from explorer import tokens

    result = _check(tokens, list(tokens.iter_run("Hello world", ["cl100k_base", "o200k_base"])))
    assert result.provenance.kind == "measured" and "cl100k_base" in result.provenance.source


def test_hallucination(tiny_engine):
    from explorer import hallucination

    items = list(hallucination.iter_run("What is the capital of France?", probes=["sequence"], engine=tiny_engine))
    result = _check(hallucination, items)
    assert result.provenance.model == tiny_engine.name and set(result.probes) == {"sequence"}


def test_lora(tiny_engine):
    from explorer import lora

    pairs = [{"prompt": "Who rules Veloria?", "response": "Queen Mira."}] * 2
    items = list(lora.iter_run(pairs, {"steps": 2, "batch_size": 1, "r": 2, "target_modules": ["q"]},
                               owner="contract", engine=tiny_engine))
    result = _check(lora, items)
    assert result.status == "done" and result.steps_done == 2 and result.provenance.kind == "measured"


def test_stored_auroc_table_has_stored_provenance():
    from explorer.hallucination.evaluation import COLLECT_COMMAND, RESULTS_FILE, stored_table

    table = stored_table("questions")
    assert table.provenance.kind == "stored" and COLLECT_COMMAND in table.provenance.source
    assert "bench_results.jsonl" in table.provenance.source
    if table.rows:
        import os

        assert table.provenance.when == pytest.approx(os.path.getmtime(RESULTS_FILE))

