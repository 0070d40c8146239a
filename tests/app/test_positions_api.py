"""The /rope, /context_extension and /attention_cost JSON APIs through gradio_client on the in-process app."""
from __future__ import annotations

import pytest

M = "smollm2-135m-instruct"


def test_rope_api(client):
    out = client.predict(M, [100, 40], 1000, api_name="/rope")
    for key in ("inv_freq", "angles_i", "angles_j", "score", "shifted_score", "max_score_change_under_shift"):
        assert key in out
    assert len(out["inv_freq"]) == 32 and out["inv_freq"][0] == pytest.approx(1.0)
    assert out["angles_i"][1] == pytest.approx(100 * out["inv_freq"][1], rel=1e-6)
    assert out["shifted_score"] == pytest.approx(out["score"], rel=1e-3, abs=1e-4)
    assert out["max_score_change_under_shift"] < 1e-4 < out["absolute_max_score_change"]
    assert out["provenance"]["kind"] == "measured"


def test_context_extension_api(client):
    out = client.predict(M, [0, 16384], [{"type": "none", "factor": 1}, {"type": "yarn", "factor": 4}],
                         api_name="/context_extension")
    assert [(r["scaling"], r["offset"]) for r in out["rows"]] == [("none", 0), ("none", 16384), ("yarn", 0),
                                                                  ("yarn", 16384)]
    assert all(set(r) >= {"offset", "scaling", "factor", "perplexity"} and r["perplexity"] > 1 for r in out["rows"])


def test_attention_cost_api(client):
    out = client.predict(M, [64, 128], api_name="/attention_cost")
    rows = out["rows"]
    assert [(r["length"], r["implementation"]) for r in rows] == [(64, "eager"), (64, "sdpa"), (128, "eager"),
                                                                  (128, "sdpa")]
    assert all(r["ms"] > 0 and r["peak_bytes"] > 0 for r in rows)


def test_positions_api_bad_input(client):
    with pytest.raises(Exception, match="absolute position"):
        client.predict("all-minilm-l6-v2", [10, 0], 5, api_name="/rope")
    with pytest.raises(Exception, match="represent"):
        client.predict(M, [10, 0], 2**24, api_name="/rope")
    with pytest.raises(Exception, match="represent"):
        client.predict(M, [2**24], [{"type": "none"}], api_name="/context_extension")
    with pytest.raises(Exception, match="at least 2"):
        client.predict(M, [1], api_name="/attention_cost")


def test_attention_cost_api_caps_with_a_notice(client, monkeypatch):
    from explorer.core import config

    monkeypatch.setenv("LLM_EXPLORER_MAX_ATTENTION_COST_TOKENS", "48")
    config.get_limits.cache_clear()
    try:
        out = client.predict(M, [10**6], api_name="/attention_cost")
    finally:
        monkeypatch.delenv("LLM_EXPLORER_MAX_ATTENTION_COST_TOKENS")
        config.get_limits.cache_clear()
    assert {r["length"] for r in out["rows"]} == {48} and "capped at 48" in out["notices"][0]
