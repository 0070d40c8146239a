"""The Serving tab's APIs through gradio_client: /serving_stats fields, identical requests served once, /generate."""
import time

import pytest

FIELDS = {"running", "waiting", "batch_sizes", "tokens_per_s", "cache_hits", "coalesced", "requests", "per_model"}


def test_serving_stats_has_exactly_the_issue_fields(client):
    stats = client.predict(api_name="/serving_stats")
    assert set(stats) == FIELDS
    assert isinstance(stats["batch_sizes"], list) and isinstance(stats["per_model"], dict)
    assert all(isinstance(stats[k], int) for k in ("running", "waiting", "cache_hits", "coalesced", "requests"))


def test_identical_request_is_served_from_cache_and_says_so(client):
    text = "Cache me once: identical requests are computed once."
    before = client.predict(api_name="/serving_stats")
    first = client.predict(text, ["cl100k_base"], api_name="/tokenize")
    second = client.predict(text, ["cl100k_base"], api_name="/tokenize")
    other = client.predict(text + "!", ["cl100k_base"], api_name="/tokenize")
    after = client.predict(api_name="/serving_stats")
    assert second["tokenizers"] == first["tokenizers"]
    assert second["provenance"]["kind"] == "cached" and second["provenance"]["when"] <= time.time()
    assert first.get("provenance", {}).get("kind") != "cached"
    assert other["tokenizers"][0]["count"] != first["tokenizers"][0]["count"] or \
        other["tokenizers"][0]["tokens"] != first["tokenizers"][0]["tokens"]
    assert other.get("provenance", {}).get("kind") != "cached"  # a differing input never gets another's result
    assert after["cache_hits"] >= before["cache_hits"] + 1
    assert after["requests"] >= before["requests"] + 3


def test_generate_is_greedy_and_matches_transformers(client, smollm2):
    import torch

    out = client.predict("The capital of France is", "smollm2-135m-instruct", 8, api_name="/generate")
    ids = smollm2.chat_ids("The capital of France is")
    with torch.inference_mode():
        ref = smollm2.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=8)[0, len(ids):].tolist()
    assert out["token_ids"] == ref[:len(out["token_ids"])] and out["batched"] is True
    stats = client.predict(api_name="/serving_stats")
    assert stats["per_model"]["smollm2-135m-instruct"]["forward_passes"] >= 1


def test_generate_rejects_bad_input(client):
    with pytest.raises(Exception, match="max_new_tokens"):
        client.predict("Hi", "smollm2-135m-instruct", 0, api_name="/generate")
