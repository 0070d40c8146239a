"""The scaling grid's plan and stored runs: N counted from built models, each run's tokens spending its budget."""
from __future__ import annotations

import pytest

from explorer.pretrain.model import PretrainSettings, build_model, count_parameters
from explorer.pretrain.tokenizer import VOCAB_SIZE
from explorer.scaling import grid


@pytest.mark.parametrize("size", grid.SIZES, ids=str)
def test_planned_n_equals_a_count_of_the_built_model(size):
    layers, d_model, heads = size
    model = build_model(PretrainSettings(layers=layers, d_model=d_model, heads=heads), VOCAB_SIZE)
    assert grid.non_embedding_params(layers, d_model, heads) == count_parameters(model)[0]


def test_stored_runs_spend_their_budgets():
    rows = grid.load_grid()
    assert {r["key"] for r in rows} <= {p.key for p in grid.plan()}
    for r in rows:
        assert r["tokens"] == r["steps"] * grid.BATCH_SIZE * grid.SEQ_LEN
        if r["steps"] > 10:  # the budget within half a step (steps are rounded)
            step_flops = 6 * r["non_embedding_params"] * grid.BATCH_SIZE * grid.SEQ_LEN
            assert abs(6 * r["non_embedding_params"] * r["tokens"] - r["budget"]) <= step_flops / 2 + 1
        assert r["meta"]["command"].startswith("python bench/bench_scaling.py") and r["meta"]["versions"]["torch"]
