"""The /kv_cache JSON API through gradio_client on the app launched in-process."""
from __future__ import annotations

import pytest


def test_kv_cache_api_measured_equals_formula(client):
    # max_new_tokens counts generated tokens: 4 generated = the prefill pass plus 3 decode passes measured
    out = client.predict("What is the capital of France?", "smollm2-135m-instruct", 4, api_name="/kv_cache")
    assert out["bytes_per_token_formula"] == 46_080
    steps = out["steps"]
    assert len(steps) == 4 and out["phase"] == ["prefill", "decode", "decode", "decode"]
    for step in steps:
        assert set(step) == {"tokens", "measured_bytes", "formula_bytes", "ms"}
        assert step["measured_bytes"] == step["formula_bytes"] == 46_080 * step["tokens"]
        assert step["ms"] > 0
    assert [s["tokens"] for s in steps[1:]] == [steps[0]["tokens"] + i for i in (1, 2, 3)]


def test_kv_cache_api_bad_input(client):
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", "smollm2-135m-instruct", 3, api_name="/kv_cache")
    with pytest.raises(Exception, match="encoder"):
        client.predict("hello", "all-minilm-l6-v2", 2, api_name="/kv_cache")


def test_kv_cache_api_caps_with_a_notice(client, monkeypatch):
    from explorer.core import config

    monkeypatch.setenv("LLM_EXPLORER_MAX_NEW_TOKENS", "3")
    config.get_limits.cache_clear()
    try:
        out = client.predict("What is the capital of France?", "smollm2-135m-instruct", 10**9, api_name="/kv_cache")
    finally:
        monkeypatch.delenv("LLM_EXPLORER_MAX_NEW_TOKENS")
        config.get_limits.cache_clear()
    assert len(out["steps"]) == 3 and "above the cap" in out["notices"][0]
    assert client.predict("Hi", "smollm2-135m-instruct", 1, api_name="/kv_cache")["notices"] == []
