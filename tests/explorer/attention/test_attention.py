"""Attention capture, KV-head mapping, statistics, sink removal and rollout (tiny models + the real ones)."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from explorer import attention
from explorer.attention.stats import head_stats, remove_sink, rollout, view_pattern
from explorer.core.engine import get_engine
from conftest import make_tiny_engine

TEXT = "The capital of France is Paris. The capital of Italy is"


@pytest.fixture(scope="module")
def tiny_result(tiny_engine):
    return attention.run(TEXT, engine=tiny_engine)


@pytest.fixture(scope="module")
def smollm2_result(smollm2):
    return attention.run(TEXT, engine=smollm2)


def test_rows_sum_to_one_and_causal_mask(tiny_result):
    attn = tiny_result.attn
    q_len = len(tiny_result.tokens)
    assert tiny_result.shape == (2, 4, q_len, q_len)
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-5)
    assert np.abs(np.triu(attn, k=1)).max() == 0.0
    assert tiny_result.causal


def test_capture_equals_plain_eager_forward_and_restores_sdpa(tiny_engine, tiny_result):
    reference = copy.deepcopy(tiny_engine.model)
    reference.set_attn_implementation("eager")
    ids = torch.tensor([list(tiny_result.token_ids)])
    with torch.inference_mode():
        expected = reference(ids, output_attentions=True).attentions
    for layer, probs in enumerate(expected):
        np.testing.assert_allclose(tiny_result.attn[layer], probs[0].numpy(), atol=1e-6)
    assert tiny_engine.model.config._attn_implementation == "sdpa"


def test_real_model_capture(smollm2, smollm2_result):
    result = smollm2_result
    q_len = len(result.tokens)
    assert result.shape == (30, 9, q_len, q_len)
    assert result.tokens[:4] == ("The", " capital", " of", " France")
    np.testing.assert_allclose(result.attn.sum(-1), 1.0, atol=1e-5)
    assert np.abs(np.triu(result.attn, k=1)).max() == 0.0
    # the eager capture computes the same model: logits equal a plain SDPA forward
    ids = torch.tensor([list(result.token_ids)])
    with smollm2.session():
        sdpa_logits = smollm2.model(ids).logits
    _, output = attention.capture(smollm2, list(result.token_ids))
    torch.testing.assert_close(output.logits, sdpa_logits, atol=1e-3, rtol=1e-4)
    assert smollm2.config._attn_implementation == "sdpa"
    # the attention sink: past layer 1, heads put a large share of each row on the first token
    assert result.stats["first_token"][2:].mean() > 0.3


def test_kv_mapping_smollm2_mha_mqa(smollm2, smollm2_result):
    assert attention.kv_head_mapping(smollm2.config).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert smollm2_result.kv_head_of_head.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert attention.kv_head_mapping(make_tiny_engine(4, 4, 1).config).tolist() == [0, 1, 2, 3]
    assert attention.kv_head_mapping(make_tiny_engine(4, 1, 1).config).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="cannot be grouped"):
        attention.kv_head_mapping(SimpleNamespace(num_attention_heads=6, num_key_value_heads=4))


@pytest.mark.parametrize("num_heads,num_kv", [(9, 3), (4, 4), (4, 1)])
def test_kv_mapping_matches_transformers_repeat_kv(num_heads, num_kv):
    """The mapping is the one transformers applies: repeat_kv copies KV head k to query heads mapping == k."""
    from transformers.models.llama.modeling_llama import repeat_kv

    kv_ids = torch.arange(num_kv, dtype=torch.float32).reshape(1, num_kv, 1, 1)
    expanded = repeat_kv(kv_ids, num_heads // num_kv)[0, :, 0, 0].long().tolist()
    config = SimpleNamespace(num_attention_heads=num_heads, num_key_value_heads=num_kv)
    assert attention.kv_head_mapping(config).tolist() == expanded


def test_minilm_is_bidirectional():
    result = attention.run("The capital of France is Paris.", model="all-minilm-l6-v2")
    assert not result.causal
    assert result.tokens[0] == "[CLS]" and result.tokens[-1] == "[SEP]"
    assert result.shape[:2] == (6, 12)
    assert result.kv_head_of_head.tolist() == list(range(12))
    np.testing.assert_allclose(result.attn.sum(-1), 1.0, atol=1e-5)
    ahead_share = np.triu(result.attn, k=1).sum(-1).mean(-1)  # (layers, heads): share of a row on later tokens
    assert ahead_share.mean() > 0.1 and (ahead_share > 0.01).mean() > 0.9  # nearly every head looks ahead


def test_sink_removal_renormalises(tiny_result):
    pattern = tiny_result.pattern(1, 2)
    hidden = remove_sink(pattern)
    assert np.all(hidden[:, 0] == 0)
    np.testing.assert_allclose(hidden[1:].sum(-1), 1.0, atol=1e-5)
    assert hidden[0].sum() == 0.0  # the first causal row only saw the sink
    expected = pattern[1:, 1:] / pattern[1:, 1:].sum(-1, keepdims=True)
    np.testing.assert_allclose(hidden[1:, 1:], expected, atol=1e-6)
    _, title = view_pattern(tiny_result.attn, tiny_result.kv_head_of_head, "head", 1, 2, hide_sink=True)
    assert "renormalised" in title


def test_rollout_and_aggregates(tiny_result):
    attn, kv = tiny_result.attn, tiny_result.kv_head_of_head
    np.testing.assert_allclose(rollout(attn[1:2], residual=0.0)[0], attn[1].mean(0), atol=1e-6)
    eye = np.eye(attn.shape[-1])
    np.testing.assert_allclose(rollout(attn[:1], residual=0.5)[0], 0.5 * attn[0].mean(0) + 0.5 * eye, atol=1e-6)
    full = rollout(attn)
    np.testing.assert_allclose(full[-1], (0.5 * attn[1].mean(0) + 0.5 * eye) @ full[0], atol=1e-5)
    np.testing.assert_allclose(full.sum(-1), 1.0, atol=1e-5)
    group, _ = view_pattern(attn, kv, "mean over KV group", 0, 3)
    np.testing.assert_allclose(group, attn[0, [2, 3]].mean(0), atol=1e-6)  # heads 2, 3 read KV head 1
    with pytest.raises(ValueError, match="Unknown view"):
        view_pattern(attn, kv, "max", 0, 0)
    with pytest.raises(ValueError, match="outside"):
        view_pattern(attn, kv, "head", 2, 0)


def test_stats_on_known_patterns():
    q = 5
    previous = np.zeros((1, 1, q, q), np.float32)
    previous[0, 0, 0, 0] = 1.0
    previous[0, 0, np.arange(1, q), np.arange(q - 1)] = 1.0
    uniform = np.tril(np.ones((q, q), np.float32))
    uniform = (uniform / uniform.sum(-1, keepdims=True))[None, None]
    stats = head_stats(np.concatenate([previous, uniform], axis=1))
    np.testing.assert_allclose(stats["previous_token"][0], [1.0, np.mean([1 / k for k in range(2, q + 1)])], atol=1e-6)
    np.testing.assert_allclose(stats["entropy"][0], [0.0, np.mean(np.log(np.arange(1, q + 1)))], atol=1e-5)
    np.testing.assert_allclose(stats["first_token"][0], [2 / q, 1.0 / q * sum(1 / k for k in range(1, q + 1))], atol=1e-6)
    np.testing.assert_allclose(stats["mean_distance"][0, 0], (q - 1) / q, atol=1e-6)
    with pytest.raises(ValueError, match="Unknown statistic"):
        head_stats(uniform, ["kurtosis"])


def test_caps_and_bad_input(tiny_engine):
    long_text = "word " * 600
    with pytest.raises(ValueError, match="at most 512 tokens"):
        attention.run(long_text, engine=tiny_engine)
    cut = attention.run(long_text, engine=tiny_engine, truncate=True)
    assert cut.shape[2:] == (512, 512) and cut.truncated_from > 512
    np.testing.assert_allclose(cut.attn.sum(-1), 1.0, atol=1e-5)
    minilm_ids, original = attention.prompt_ids(get_engine("all-minilm-l6-v2"), long_text, truncate=True)
    assert len(minilm_ids) == 512 and original == 602 and minilm_ids[-1] == 102  # [SEP] kept
    with pytest.raises(ValueError, match="Type a prompt"):
        attention.run("   ", engine=tiny_engine)


def test_api_payload(tiny_result):
    payload = attention.api_payload(tiny_result, 1, 3)
    q_len = len(tiny_result.tokens)
    assert payload["shape"] == [2, 4, q_len, q_len]
    assert payload["kv_head_of_head"] == [0, 0, 1, 1]
    assert np.array(payload["head_stats"]["entropy"]).shape == (2, 4)
    assert np.array(payload["head_stats"]["first_token"]).shape == (2, 4)
    np.testing.assert_allclose(payload["pattern"], tiny_result.pattern(1, 3), atol=1e-5)
    assert attention.api_payload(tiny_result)["pattern"] is None
    with pytest.raises(ValueError, match="both a layer and a head"):
        attention.api_payload(tiny_result, 1, None)
    with pytest.raises(ValueError, match="Head 4 does not exist"):
        attention.api_payload(tiny_result, 0, 4)
