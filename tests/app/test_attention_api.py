"""The /attention JSON API, driven through gradio_client on the app launched in-process."""
from __future__ import annotations

import numpy as np
import pytest


def test_attention_api_smollm2(client):
    out = client.predict("The capital of France is", "smollm2-135m-instruct", 2, 4, api_name="/attention")
    num_layers, num_heads, q_len, k_len = out["shape"]
    assert (num_layers, num_heads) == (30, 9) and q_len == k_len == len(out["tokens"])
    assert out["tokens"][:2] == ["The", " capital"]
    assert out["kv_head_of_head"] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert np.array(out["head_stats"]["entropy"]).shape == (30, 9)
    assert np.array(out["head_stats"]["first_token"]).shape == (30, 9)
    pattern = np.array(out["pattern"])
    assert pattern.shape == (q_len, k_len)
    np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-4)
    assert np.triu(pattern, k=1).max() == 0.0


def test_attention_api_minilm_without_pattern(client):
    out = client.predict("The capital of France is Paris.", "all-minilm-l6-v2", None, None, api_name="/attention")
    assert out["pattern"] is None and out["causal"] is False
    assert out["shape"][:2] == [6, 12] and out["tokens"][0] == "[CLS]"


def test_attention_api_errors(client):
    with pytest.raises(Exception, match="at most 512 tokens"):
        client.predict("word " * 600, "smollm2-135m-instruct", None, None, api_name="/attention")
    with pytest.raises(Exception, match="Layer 30 does not exist"):
        client.predict("Hello there", "smollm2-135m-instruct", 30, 0, api_name="/attention")
