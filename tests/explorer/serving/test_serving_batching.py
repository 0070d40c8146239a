"""Continuous batching gives the same tokens as the single-sequence step primitive, token for token."""
import threading

import pytest

from explorer.serving import batching, generate

PROMPTS = ["The capital of France is", "Write a haiku about the sea.", "Say hi.",
           "Explain attention in one sentence, with an example about cats."]


def _single(engine, ids, n):
    return [step.token for step in engine.steps(ids, n)]


@pytest.fixture(scope="module")
def tiny_batched(tiny_engine):
    yield tiny_engine
    batching.batcher_for(tiny_engine).stop()


def test_batched_equals_single_token_for_token_tiny(tiny_batched):
    engine = tiny_batched
    prompts = [engine.encode(p) for p in PROMPTS]
    news = [12, 5, 9, 3]
    results = [None] * len(prompts)

    def ask(i):  # concurrent users: their sequences share the batch
        results[i] = batching.batcher_for(engine).generate([prompts[i]], news[i])[0]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for ids, n, got in zip(prompts, news, results):
        assert got == _single(engine, ids, n)
    assert max(engine.lock.recent()[0]) >= 1
    assert engine.model.config._attn_implementation != "paged|sdpa"  # the shared model keeps its attention


def test_batched_rejects_bad_lengths(tiny_batched):
    with pytest.raises(ValueError, match="at least 1"):
        batching.batcher_for(tiny_batched).generate([[1, 2, 3]], 0)


def test_generate_api_batched_and_single_agree_on_smollm2(smollm2):
    try:
        batched = generate(PROMPTS[0], engine=smollm2, max_new_tokens=16, batching=True)
        single = generate(PROMPTS[0], engine=smollm2, max_new_tokens=16, batching=False)
    finally:
        batching.batcher_for(smollm2).stop()
    assert batched.batched and not single.batched
    assert batched.token_ids == single.token_ids
    import torch

    ids = smollm2.chat_ids(PROMPTS[0])
    with torch.inference_mode():
        ref = smollm2.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=16)[0, len(ids):].tolist()
    assert list(batched.token_ids) == ref[:len(batched.token_ids)]  # transformers' own generate agrees
    assert batched.text and batched.provenance.kind == "measured"
