"""The /perplexity, /min_k and /needle JSON APIs through gradio_client on the app launched in-process."""
from __future__ import annotations

import math

import pytest

MODEL = "smollm2-135m-instruct"


def test_perplexity_api(client):
    from explorer.next_token import scoring

    text = "The capital of France is Paris, and the capital of Italy is Rome."
    out = client.predict(text, MODEL, 5, api_name="/perplexity")
    assert {"tokens", "cross_entropy", "perplexity", "bits_per_byte", "notices"} <= set(out)
    tokens = out["tokens"]
    assert tokens[0]["logprob"] is None and tokens[0]["top"] == []
    assert all(set(t) == {"id", "text", "logprob", "rank", "top"} for t in tokens)
    assert all(len(t["top"]) == 5 and t["rank"] >= 1 for t in tokens[1:])
    nll = -sum(t["logprob"] for t in tokens[1:])
    assert out["cross_entropy"] == pytest.approx(nll / (len(tokens) - 1))
    assert out["perplexity"] == pytest.approx(math.exp(out["cross_entropy"]))
    direct = scoring.run(text, MODEL, 5)
    assert out["perplexity"] == pytest.approx(direct.perplexity, rel=1e-6)
    assert [t["id"] for t in tokens] == direct.ids.tolist()


def test_perplexity_api_bad_input(client):
    with pytest.raises(Exception, match="one token"):
        client.predict("Hi", MODEL, 5, api_name="/perplexity")
    with pytest.raises(Exception, match="does not predict the next token"):
        client.predict("Hello there, world", "all-minilm-l6-v2", 5, api_name="/perplexity")


def test_min_k_api(client):
    out = client.predict("Four score and seven years ago our fathers brought forth", MODEL, 0.2, api_name="/min_k")
    assert {"score", "k"} <= set(out) and out["k"] == 0.2 and out["score"] < 0
    assert set(out["references"]) == {"famous", "fresh"} and "heuristic" in out["caveat"]
    with pytest.raises(Exception, match="k must"):
        client.predict("Four score and seven years ago", MODEL, 2.0, api_name="/min_k")


def test_needle_api(client):
    out = client.predict(MODEL, [128], [0.0, 1.0], api_name="/needle")
    assert out["lengths"] == [128] and out["depths"] == [0.0, 1.0] and out["metric"] == "accuracy"
    assert len(out["grid"]) == 1 and len(out["grid"][0]) == 2
    assert all(v in (0.0, 1.0) for v in out["grid"][0])
    with pytest.raises(Exception, match="max_needle_tokens"):
        client.predict(MODEL, [4096], [0.5], api_name="/needle")
    with pytest.raises(Exception, match="max_needle_cells"):
        client.predict(MODEL, list(range(100, 1100, 100)), [0.0, 0.5, 1.0], api_name="/needle")
