"""Prompt caching (prefix reuse) and the quantised KV cache on the real model and a tiny one."""
from __future__ import annotations

import numpy as np
import pytest

from explorer import kv_cache
from explorer.kv_cache import prefix as kv_cache_prefix
from explorer.kv_cache import quantized as kv_cache_quant

SYSTEM = kv_cache_prefix.DEFAULT_SYSTEM_PROMPT[:700]


def test_prefix_reuse_gives_equal_logits(smollm2):
    r = kv_cache_prefix.run("Where do I see the cache size?", SYSTEM, engine=smollm2, repeats=1)
    assert r.prefix_tokens > 100 and r.total_tokens > r.prefix_tokens
    assert r.max_abs_logit_diff <= 1e-5
    assert r.same_next_token
    # A single pass over the whole prompt differs only by float summation order.
    assert r.one_pass_max_abs_diff < 1e-3
    assert r.saved_cache_bytes == 46_080 * r.prefix_tokens
    assert r.full_ms.shape == r.reuse_ms.shape == (1,)


def test_prefix_bad_inputs(smollm2, tiny_engine):
    with pytest.raises(ValueError, match="empty"):
        kv_cache_prefix.run("question", "  ", engine=smollm2)
    with pytest.raises(ValueError, match="empty"):
        kv_cache_prefix.run("", SYSTEM, engine=smollm2)
    with pytest.raises(ValueError, match="Repeats"):
        kv_cache_prefix.run("question", SYSTEM, engine=smollm2, repeats=50)


def test_quantised_caches_bytes_and_drift_tiny(tiny_engine):
    assert kv_cache_quant.backend_status() == {k: None for k in kv_cache_quant.BACKENDS}, \
        "optimum-quanto (requirements.txt) must be installed"
    r = kv_cache_quant.run("Hello there, how are you?", engine=tiny_engine, max_new_tokens=4, residual_length=2)
    shape = kv_cache.cache_shape(tiny_engine)
    assert r.reference_bytes == r.formula_bytes == shape.formula_bytes(int(r.tokens[-1]))
    runs = {run.key: run for run in r.runs}
    assert set(runs) == set(kv_cache_quant.BACKENDS)
    # fp8 keeps everything at one byte per element plus one fp32 scale per key/value tensor.
    assert runs["fp8"].cache_bytes == r.reference_bytes // 4 + 2 * shape.num_layers * 4
    assert runs["fp8"].residual_bytes == 0
    assert runs["quanto-int2"].quantized_bytes < runs["quanto-int4"].quantized_bytes < r.reference_bytes // 4
    for run in r.runs:
        assert run.cache_bytes < r.reference_bytes
        assert run.max_abs_diff[0] == 0.0  # the prefill attends to unquantised states
        assert run.kl_nats.shape == (len(r.tokens),) and np.all(run.kl_nats >= 0)


def test_quantised_cache_on_smollm2_stays_close(smollm2):
    r = kv_cache_quant.run("What is the capital of France?", engine=smollm2, max_new_tokens=4,
                           backends=["quanto-int4", "fp8"], residual_length=1)
    runs = {run.key: run for run in r.runs}
    for key in ("quanto-int4", "fp8"):
        assert runs[key].kl_nats.max() < 0.1, key
        assert runs[key].top1_agree.all(), key
    assert runs["quanto-int4"].cache_bytes < 0.35 * r.reference_bytes


def test_quant_bad_inputs(tiny_engine):
    with pytest.raises(ValueError, match="Unknown"):
        kv_cache_quant.run("hi", engine=tiny_engine, backends=["int3"])
    with pytest.raises(ValueError, match="Residual"):
        kv_cache_quant.run("hi", engine=tiny_engine, residual_length=0)
