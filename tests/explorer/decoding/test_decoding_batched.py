"""Step-wise decoding columns batched on ``Engine.batch_steps`` against the one-sequence path (``Engine.steps``,
itself checked against ``model.generate`` in test_decoding.py): same tokens, same per-step records."""
from __future__ import annotations

import numpy as np
import pytest

from explorer import decoding
from explorer.decoding.sampling import Column
from explorer.decoding.strategies import parse_strategy

PROMPT = "Write one sentence about the sea."
# Greedy, sampling and every processor (top-k 50 is the default), plus a beam column in the middle (its own loop, kept in order).
STEPWISE = [
    {"name": "greedy"},
    {"name": "sampling", "temperature": 0.7, "top_p": 0.95, "top_k": 0, "seed": 1},
    {"name": "beam", "num_beams": 2},
    {"name": "sampling", "min_p": 0.05, "top_k": 0, "seed": 3},
    {"name": "sampling", "typical_p": 0.9, "repetition_penalty": 1.2, "seed": 4},
    {"name": "greedy", "no_repeat_ngram_size": 2, "repetition_penalty": 1.3},
]


def _assert_same_runs(batched, single):
    assert [r.strategy for r in batched.runs] == [r.strategy for r in single.runs]
    for a, b in zip(batched.runs, single.runs):
        assert a.token_ids.tolist() == b.token_ids.tolist(), a.label
        np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=1e-4)
        if b.steps is None:
            continue
        sa, sb = a.steps, b.steps
        assert sa.stage_names == sb.stage_names
        np.testing.assert_array_equal(sa.top_ids, sb.top_ids)
        np.testing.assert_array_equal(sa.stage_kept, sb.stage_kept)
        for field in ("raw_probs", "stage_probs", "chosen_raw_probs", "chosen_final_probs"):
            np.testing.assert_allclose(getattr(sa, field), getattr(sb, field), atol=1e-5, err_msg=field)
        np.testing.assert_allclose(sa.entropy_nats, sb.entropy_nats, atol=1e-4)


def test_batched_columns_equal_one_at_a_time_tiny(tiny_engine):
    batched = decoding.run(PROMPT, strategies=STEPWISE, max_new_tokens=10, engine=tiny_engine)
    single = decoding.run(PROMPT, strategies=STEPWISE, max_new_tokens=10, engine=tiny_engine, batched=False)
    _assert_same_runs(batched, single)
    assert len({tuple(r.token_ids.tolist()) for r in batched.runs}) > 3  # the rows really diverged
    assert any("5 columns ran together" in n for n in batched.notices)
    assert not any("ran together" in n for n in single.notices)
    # the lens contract streams a partial result per unit (the batch, then the beam), runs in request order
    partials = [p.partial for p in decoding.iter_run(PROMPT, strategies=STEPWISE, max_new_tokens=3,
                                                     engine=tiny_engine) if getattr(p, "partial", None)]
    assert [len(p.runs) for p in partials] == [5, 6]
    assert [r.strategy for r in partials[0].runs] == [s["name"] for s in STEPWISE if s["name"] != "beam"]


def test_batch_steps_drops_finished_rows_like_steps(tiny_engine):
    prompt = tiny_engine.chat_ids(PROMPT)
    strategies = [parse_strategy(s, 49152, 8) for s in STEPWISE if s["name"] != "beam"]

    def single(strategy, eos):
        column = Column(tiny_engine, prompt, strategy)
        for step in tiny_engine.steps(prompt, 12, select=column.select, eos_ids=eos):
            column.accept(step.token)
        return column.chosen

    free = [single(s, set()) for s in strategies]
    eos = {free[1][3]}  # a token row 1 draws at step 3: rows that meet it stop there
    reference = [single(s, eos) for s in strategies]
    columns = [Column(tiny_engine, prompt, s) for s in strategies]
    rows_per_pass = []
    for step in tiny_engine.batch_steps(prompt, len(columns), 12, eos_ids=eos,
                                        select=lambda row, logits, i: columns[row].select(logits, i)):
        rows_per_pass.append(step.rows)
        for row, token in zip(step.rows, step.tokens):
            columns[row].accept(token)
    assert [c.chosen for c in columns] == reference
    assert len(reference[1]) <= 4 and max(len(r) for r in reference) == 12
    assert 1 not in rows_per_pass[-1] and rows_per_pass[0] == tuple(range(len(columns)))


def test_batched_needs_stepwise_and_rows(tiny_engine):
    prompt = tiny_engine.chat_ids(PROMPT)
    with pytest.raises(ValueError, match="strategies"):
        decoding.decode_batch(tiny_engine, prompt, [parse_strategy({"name": "beam"}, 49152, 8)], 2)
    with pytest.raises(ValueError, match="rows"):
        next(tiny_engine.batch_steps(prompt, 0, 2, select=lambda row, logits, i: 0))


def test_batched_columns_equal_one_at_a_time_smollm2(smollm2):
    columns = [s for s in STEPWISE if s["name"] != "beam"]
    batched = decoding.run(PROMPT, strategies=columns, max_new_tokens=8, engine=smollm2)
    single = decoding.run(PROMPT, strategies=columns, max_new_tokens=8, engine=smollm2, batched=False)
    _assert_same_runs(batched, single)
