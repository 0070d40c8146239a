"""Generation timeline: rows per step, compared with transformers' own generate()."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.attention.capture import prompt_ids
from explorer.attention.timeline import iter_timeline, run_timeline, timeline_rows

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def tiny_timeline(tiny_engine):
    return run_timeline(PROMPT, max_new_tokens=4, engine=tiny_engine)


def test_rows_match_generate_output_attentions(tiny_engine, tiny_timeline):
    ids, _ = prompt_ids(tiny_engine, PROMPT)
    with tiny_engine.session(), tiny_engine.eager_attention():
        reference = tiny_engine.model.generate(
            torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), max_new_tokens=4,
            do_sample=False, output_attentions=True, return_dict_in_generate=True, pad_token_id=2)
    generated = reference.sequences[0, len(ids):].tolist()
    assert list(tiny_timeline.token_ids[len(ids):]) == generated
    for step, layers in enumerate(reference.attentions):
        for layer, probs in enumerate(layers):
            k_len = len(ids) + step
            np.testing.assert_allclose(tiny_timeline.rows[step, layer, :, :k_len], probs[0, :, -1, :k_len].numpy(),
                                       atol=1e-5)
    assert tiny_engine.model.config._attn_implementation == "sdpa"


def test_row_shapes_and_padding(tiny_timeline):
    tl = tiny_timeline
    assert tl.steps == 4 and tl.rows.shape == (4, 2, 4, tl.prompt_len + 3)
    for step in range(tl.steps):
        visible = tl.prompt_len + step
        np.testing.assert_allclose(tl.rows[step, :, :, :visible].sum(-1), 1.0, atol=1e-5)
        assert np.all(tl.rows[step, :, :, visible:] == 0)
    assert len(tl.generated) == 4 and tl.query_position(0) == tl.prompt_len - 1


def test_aggregates_and_sink(tiny_timeline):
    tl = tiny_timeline
    group = timeline_rows(tl, "mean over KV group", 1, 1)
    np.testing.assert_allclose(group, tl.rows[:, 1, [0, 1]].mean(1), atol=1e-6)
    np.testing.assert_allclose(timeline_rows(tl, "mean over heads", 0, 0), tl.rows[:, 0].mean(1), atol=1e-6)
    hidden = timeline_rows(tl, "head", 0, 2, hide_sink=True)
    assert np.all(hidden[:, 0] == 0)
    np.testing.assert_allclose(hidden.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="timeline shows one of"):
        timeline_rows(tl, "rollout", 0, 0)


def test_streams_one_result_per_step(tiny_engine):
    steps = [result.steps for result in iter_timeline(PROMPT, max_new_tokens=3, engine=tiny_engine)]
    assert steps == [1, 2, 3]


def test_bad_input(tiny_engine):
    with pytest.raises(ValueError, match="generates 1 to 64 tokens"):
        run_timeline(PROMPT, max_new_tokens=0, engine=tiny_engine)
    with pytest.raises(ValueError, match="512-token attention cap"):
        run_timeline("word " * 500, max_new_tokens=20, engine=tiny_engine)
    with pytest.raises(ValueError, match="bidirectional encoder"):
        run_timeline(PROMPT, model="all-minilm-l6-v2", max_new_tokens=2)


def test_real_model_generates_paris(smollm2):
    tl = run_timeline(PROMPT, max_new_tokens=2, engine=smollm2)
    assert tl.generated[0] == " Paris"
    assert tl.rows.shape == (2, 30, 9, tl.prompt_len + 1)
    np.testing.assert_allclose(tl.rows[1].sum(-1), 1.0, atol=1e-5)
