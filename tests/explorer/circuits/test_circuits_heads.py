"""Head detectors against TransformerLens's detection-pattern definitions, hand-built patterns and the formula.

The reference patterns below restate TransformerLens's ``head_detector`` (previous-token: ones just below the
diagonal; duplicate-token: ``tokens[i] == tokens[j]`` with the diagonal zeroed, lower triangle; induction: the
duplicate pattern rolled one column right with the first column zeroed, lower triangle) in torch, independently
of the numpy implementation under test.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.circuits import (KINDS, detection_pattern, head_scores, heads_to_api, repeated_random_tokens,
                               run_heads, top_heads)


def tl_pattern(tokens, kind):
    tokens = torch.as_tensor(tokens)
    n = tokens.shape[-1]
    if kind == "previous_token":
        pattern = torch.zeros(n, n)
        pattern[1:, :-1] = torch.eye(n - 1)
        return torch.tril(pattern)
    eq = (tokens.repeat(n, 1) == tokens.repeat(n, 1).T).int()
    eq.fill_diagonal_(0)
    duplicate = torch.tril(eq.float())
    if kind == "duplicate_token":
        return duplicate
    shifted = torch.roll(duplicate, shifts=1, dims=1)
    return torch.tril(torch.cat((torch.zeros(n, 1), shifted[:, 1:]), dim=1))


def tl_mul_score(attn, pattern):
    """TransformerLens's ``compute_head_attention_similarity_score(error_measure="mul")`` without exclusions."""
    attn = torch.as_tensor(attn, dtype=torch.float64)
    return float((attn * pattern).sum() / attn.sum())


@pytest.mark.parametrize("kind", KINDS)
def test_detection_patterns_equal_transformer_lens(kind):
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 6, size=17)  # many repeats, some tokens three times
    assert np.array_equal(detection_pattern(tokens, kind), tl_pattern(tokens, kind).numpy())


def test_repeated_sequence_is_distinct_then_repeated_and_leaves_global_rng():
    state = np.random.get_state()[1].copy()
    ids = repeated_random_tokens(50, 1000, first_token=1, seed=7, exclude={0, 2})
    assert ids.shape == (101,) and ids[0] == 1 and np.array_equal(ids[1:51], ids[51:])
    assert len(set(ids[1:51].tolist())) == 50 and not {0, 1, 2} & set(ids[1:].tolist())
    assert np.array_equal(np.random.get_state()[1], state)
    assert np.array_equal(ids, repeated_random_tokens(50, 1000, first_token=1, seed=7, exclude={0, 2}))


def test_perfect_and_uniform_heads_score_the_formula():
    n = 10
    ids = repeated_random_tokens(n, 500, first_token=0, seed=1)
    q_len = ids.size
    induction = np.zeros((q_len, q_len))
    induction[0, 0] = 1.0
    for q in range(1, q_len):
        induction[q, q - n + 1 if q > n else 0] = 1.0  # token at q first seen at q - n; the next position is q - n + 1
    uniform = np.tril(np.ones((q_len, q_len)))
    uniform /= uniform.sum(1, keepdims=True)
    attn = np.stack([induction, uniform])[None]  # (1 layer, 2 heads, q, k)
    scores = head_scores(attn, ids, "induction")
    assert scores[0, 0] == pytest.approx(1.0)
    assert scores[0, 1] == pytest.approx(np.mean([1.0 / (q + 1) for q in range(n + 1, q_len)]))
    # previous-token on the uniform head: mean over q >= 1 of 1 / (q + 1)
    assert head_scores(uniform, ids, "previous_token") == pytest.approx(np.mean([1 / (q + 1) for q in range(1, q_len)]))


@pytest.mark.parametrize("kind", KINDS)
def test_score_is_transformer_lens_mul_score_over_rows_with_a_target(kind):
    ids = repeated_random_tokens(12, 300, first_token=0, seed=4)
    rng = np.random.default_rng(0)
    attn = np.tril(rng.random((ids.size, ids.size)))
    attn /= attn.sum(1, keepdims=True)
    pattern = tl_pattern(ids, kind)
    rows_with_target = int((pattern.sum(1) > 0).sum())
    expected = tl_mul_score(attn, pattern) * ids.size / rows_with_target
    assert head_scores(attn, ids, kind) == pytest.approx(expected, rel=1e-9)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="kind"):
        detection_pattern([1, 2, 1], "copy")
    with pytest.raises(ValueError, match="attn"):
        head_scores(np.ones((2, 3, 4, 4)), [1, 2, 1], "induction")
    with pytest.raises(ValueError, match="target"):
        head_scores(np.eye(3), [1, 2, 3], "duplicate_token")
    with pytest.raises(ValueError, match="n must be"):
        repeated_random_tokens(1, 100, 0)


def test_top_heads_sorted_highest_first():
    scores = np.array([[0.1, 0.9], [0.5, 0.7]])
    assert [(t["layer"], t["head"]) for t in top_heads(scores, 3)] == [(0, 1), (1, 1), (1, 0)]


def test_run_heads_equals_scores_on_transformers_output_attentions(tiny_engine):
    result = run_heads(n=8, seed=2, engine=tiny_engine)
    ids = torch.tensor([result.token_ids])
    model = tiny_engine.model
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(input_ids=ids, output_attentions=True)
    finally:
        model.set_attn_implementation(previous)
    attn = torch.stack([a[0] for a in out.attentions]).numpy()
    for kind in KINDS:
        expected = np.array([[float((torch.as_tensor(attn[l, h]) * tl_pattern(ids[0], kind)).sum(-1)[
            tl_pattern(ids[0], kind).sum(1) > 0].mean()) for h in range(attn.shape[1])] for l in range(attn.shape[0])])
        np.testing.assert_allclose(result.scores[kind], expected, rtol=1e-5, atol=1e-6)
    data = heads_to_api(result, "induction")
    assert data["kind"] == "induction" and data["sequence_length"] == 17 and len(data["scores"]) == 2
    assert [t["score"] for t in data["top"]] == sorted((t["score"] for t in data["top"]), reverse=True)
    with pytest.raises(ValueError, match="kind"):
        heads_to_api(result, "bogus")


def test_bad_n_refused_and_cap_noticed(tiny_engine, monkeypatch):
    with pytest.raises(ValueError, match="n must be"):
        run_heads(n=1, engine=tiny_engine)
    from explorer.core import config

    monkeypatch.setenv("LLM_EXPLORER_MAX_DETECTOR_TOKENS", "6")
    config.get_limits.cache_clear()
    try:
        result = run_heads(n=40, engine=tiny_engine)
    finally:
        monkeypatch.delenv("LLM_EXPLORER_MAX_DETECTOR_TOKENS")
        config.get_limits.cache_clear()
    assert result.n == 6 and result.sequence_length == 13 and "capped" in result.notices[0]
