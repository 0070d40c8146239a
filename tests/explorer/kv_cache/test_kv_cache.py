"""KV cache lens: measured bytes of the real cache equal the formula; cached and uncached decoding agree."""
from __future__ import annotations

import numpy as np
import pytest

from explorer import kv_cache
from explorer.kv_cache import timing as kv_cache_timing
from explorer.core.config import get_limits

PROMPT = "What is the capital of France?"


def test_smollm2_fp32_measured_equals_formula(smollm2):
    result = kv_cache.run(PROMPT, engine=smollm2, max_new_tokens=4)
    shape = result.shape
    assert (shape.num_layers, shape.num_kv_heads, shape.head_dim, shape.bytes_per_element) == (30, 3, 64, 4)
    assert shape.bytes_per_token == 46_080
    assert result.matches_formula
    assert [s.phase for s in result.steps] == ["prefill"] + ["decode"] * (len(result.steps) - 1)
    assert result.steps[0].tokens == result.prompt_tokens
    assert result.measured_bytes[0] == 46_080 * result.prompt_tokens
    # Linear growth: every decode step adds exactly one token's worth.
    assert np.all(np.diff(result.tokens) == 1)
    assert np.all(np.diff(result.measured_bytes) == 46_080)
    api = result.to_api()
    assert api["bytes_per_token_formula"] == 46_080
    assert api["phase"][0] == "prefill" and len(api["steps"]) == len(api["phase"])
    assert all(s["measured_bytes"] == s["formula_bytes"] for s in api["steps"])
    assert result.text.startswith("The capital of France")
    assert kv_cache.measured_bytes_per_token(smollm2) == 46_080


@pytest.mark.parametrize("heads, kv_heads", [(4, 2), (4, 1), (4, 4)], ids=["gqa", "mqa", "mha"])
def test_tiny_configs_measured_equals_formula(heads, kv_heads):
    from tests.conftest import make_tiny_engine

    engine = make_tiny_engine(num_heads=heads, num_kv_heads=kv_heads, num_layers=2)
    result = kv_cache.run("Hello there", engine=engine, max_new_tokens=6)  # 6 tokens generated = 6 passes
    assert result.shape.num_kv_heads == kv_heads
    assert result.shape.bytes_per_token == 2 * 2 * kv_heads * (64 // heads) * 4
    assert result.matches_formula
    assert len(result.steps) == 6
    # Second reference: transformers' own cache after one forward pass over the same tokens, summing the
    # nbytes of every key and value tensor it holds.
    import torch
    from transformers import DynamicCache

    ids = kv_cache.prompt_ids(engine, "Hello there") + result.generated_ids.tolist()[:-1]
    cache = DynamicCache()
    with torch.no_grad():
        engine.model(torch.tensor([ids]), past_key_values=cache, use_cache=True)
    tensors = [t for layer in cache.layers for t in (layer.keys, layer.values)]
    assert len(ids) == result.tokens[-1]
    assert sum(t.nbytes for t in tensors) == result.measured_bytes[-1]


def test_cached_and_uncached_greedy_tokens_identical(smollm2):
    comparison = kv_cache_timing.compare_no_cache(PROMPT, engine=smollm2, max_new_tokens=5)  # prefill + 4 decode steps
    assert len(comparison.positions) == 4
    assert comparison.identical_tokens
    assert np.all(np.diff(comparison.positions) == 1)
    assert comparison.cached_tokens_per_s > 0 and comparison.uncached_tokens_per_s > 0


def test_greedy_loop_matches_generate(tiny_engine):
    import torch

    ids = kv_cache.prompt_ids(tiny_engine, "Count to three")
    result = kv_cache.run("Count to three", engine=tiny_engine, max_new_tokens=6)
    with tiny_engine.session():
        out = tiny_engine.model.generate(torch.tensor([ids]), max_new_tokens=len(result.steps), do_sample=False,
                                         pad_token_id=2)
    assert out[0, len(ids):].tolist()[:len(result.steps)] == result.generated_ids.tolist()


def test_new_tokens_capped_and_validated():
    cap = get_limits().max_new_tokens
    assert kv_cache.cap_new_tokens(cap + 1000) == (cap, cap + 1000)
    assert kv_cache.cap_new_tokens(3) == (3, None)
    for bad in (0, -4, "many", None):
        with pytest.raises(ValueError):
            kv_cache.cap_new_tokens(bad)


def test_bad_prompts(tiny_engine):
    with pytest.raises(ValueError, match="empty"):
        kv_cache.run("   ", engine=tiny_engine, max_new_tokens=2)
    with pytest.raises(ValueError, match="tokens long"):
        kv_cache.run("word " * 3000, engine=tiny_engine, max_new_tokens=2)


def test_measure_counts_quantized_storage(tiny_engine):
    import torch
    from transformers import QuantizedCache

    shape = kv_cache.cache_shape(tiny_engine)
    cache = QuantizedCache(backend="fp8", config=tiny_engine.model.config)
    with tiny_engine.session():
        tiny_engine.model(torch.tensor([[5, 6, 7, 8, 9, 10]]), past_key_values=cache, use_cache=True)
    # fp8: one byte per element plus one fp32 scale per key and per value tensor in each layer.
    assert kv_cache.measure_cache_bytes(cache) == shape.formula_bytes(6) // 4 + 2 * shape.num_layers * 4


def test_prompt_plus_new_tokens_must_fit_context(tiny_engine):
    ids = list(range(100, 100 + tiny_engine.context_length() - 4))
    with pytest.raises(ValueError, match="does not fit"):
        list(kv_cache.iter_growth(tiny_engine, ids, 8))
