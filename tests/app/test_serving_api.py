"""The Serving tab's APIs through gradio_client: /serving_stats fields, identical requests served once, /generate."""
import time

import pytest

FIELDS = {"running", "waiting", "batch_sizes", "tokens_per_s", "cache_hits", "coalesced", "requests", "per_model",
          "step_batch_sizes"}  # step_batch_sizes: rows per shared decode pass (issue 37)


def test_serving_stats_has_exactly_the_issue_fields(client):
    stats = client.predict(api_name="/serving_stats")
    assert set(stats) == FIELDS
    assert isinstance(stats["batch_sizes"], list) and isinstance(stats["per_model"], dict)
    assert isinstance(stats["step_batch_sizes"], list)
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


def test_disconnected_client_frees_its_share_of_the_batch(app_url, client):
    """A browser that closes its connection mid-request: the server cancels its sequence in the batch engine
    and stops counting it as running (Gradio marks the job dead; components/serving.client_gone reads that)."""
    import uuid

    import httpx

    from explorer.core.engine import get_engine
    from explorer.serving import batching, stats

    engine = get_engine("smollm2-135m-instruct")
    batcher = batching.batcher_for(engine)
    fn_index = next(i for i, dep in enumerate(client.config["dependencies"]) if dep.get("api_name") == "generate")
    session = uuid.uuid4().hex[:11]
    running_before = stats.serving_stats()["running"]
    engine.lock.acquire()  # hold the model so the request stays in the batch engine
    try:
        with httpx.Client(base_url=app_url, timeout=60) as http:
            http.post("gradio_api/queue/join", json={"data": ["Leave before the answer.", "smollm2-135m-instruct",
                                                               32], "fn_index": fn_index,
                                                      "session_hash": session}).raise_for_status()
            with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
                for line in stream.iter_lines():
                    if "process_starts" in line:
                        break
                deadline = time.monotonic() + 60
                while batcher.queued < 1:
                    assert time.monotonic() < deadline, "the request never reached the batch engine"
                    time.sleep(0.05)
            # the stream is closed: the client has gone
        deadline = time.monotonic() + 45
        while batcher.queued or stats.serving_stats()["running"] > running_before:
            assert time.monotonic() < deadline, "the disconnected request kept its place"
            time.sleep(0.1)
    finally:
        engine.lock.release()
