"""Every lens's JSON API with model="gemma-3-270m", through gradio_client on the app launched in-process.

The APIs keep one ``model`` argument; a script compares two models by calling twice (as some tests here do).
"""
from __future__ import annotations

import math

import pytest

GEMMA = "gemma-3-270m"
SMOL = "smollm2-135m-instruct"


def test_tokenize_includes_gemma(client):
    out = client.predict("hello world 日本", [SMOL, GEMMA], api_name="/tokenize")
    by_name = {t["name"]: t for t in out["tokenizers"]}
    assert by_name[GEMMA]["vocab_size"] >= 262_144 and by_name[SMOL]["vocab_size"] == 49_152
    assert by_name[GEMMA]["count"] == len(by_name[GEMMA]["tokens"]) > 0


def test_attention_api_gemma_is_mqa(client, gemma):
    out = client.predict("The capital of France is", GEMMA, 5, 0, api_name="/attention")
    n = len(gemma.encode("The capital of France is"))
    assert out["model"] == GEMMA and out["shape"] == [18, 4, n, n]
    assert out["kv_head_of_head"] == [0, 0, 0, 0] and out["causal"]
    assert all(abs(sum(row) - 1) < 1e-3 for row in out["pattern"])


def test_kv_cache_api_gemma_matches_formula(client):
    out = client.predict("The capital of France is", GEMMA, 3, api_name="/kv_cache")
    assert out["bytes_per_token_formula"] == 2 * 18 * 1 * 256 * 4
    for step in out["steps"]:
        assert step["measured_bytes"] == step["formula_bytes"] == 36_864 * step["tokens"]
    smol = client.predict("The capital of France is", SMOL, 3, api_name="/kv_cache")
    assert smol["bytes_per_token_formula"] == 46_080  # comparing = calling twice


def test_decode_api_gemma_same_strategies(client, gemma):
    strategies = [{"name": "greedy"}, {"name": "sampling", "temperature": 0.7, "top_p": 0.95, "seed": 3}]
    out = client.predict("The capital of France is", GEMMA, strategies, 6, api_name="/decode")
    runs = out["runs"]
    assert [r["strategy"] for r in runs] == ["greedy", "sampling"]
    greedy_ids = [s.token for s in gemma.steps(gemma.chat_ids("The capital of France is"), 6)]
    assert runs[0]["token_ids"] == greedy_ids


def test_quantize_api_gemma(client):
    out = client.predict("The capital of France is", GEMMA, ["int8"], api_name="/quantize")
    ref, int8 = out["methods"]["reference"], out["methods"]["int8"]
    assert ref["kld_mean"] == 0.0 and int8["error"] is None
    assert int8["weight_bytes"] < ref["weight_bytes"] and int8["kld_mean"] > 0.0


def test_probe_api_gemma_base_model(client):
    """The same probes run on the base model: it continues the question as plain text (no chat template)."""
    out = client.predict("What is the capital of France?", GEMMA, ["token_confidence", "sequence"], None, 2,
                         api_name="/probe")
    assert out["answer"].strip()
    seq = out["probes"]["sequence"]
    assert seq["perplexity"] == pytest.approx(math.exp(-seq["sequence_logprob"] / seq["n_tokens"]))
