"""What-if calculator and paged-attention simulation: values checked against hand-computed figures."""
from __future__ import annotations

import math

import pytest

from explorer.kv_cache import paged as kv_cache_paged
from explorer.kv_cache import whatif as kv_cache_whatif
from explorer.kv_cache.whatif import HANDBOOK_70B, calculate, format_bytes
from models.shapes import MODEL_SHAPES, get_shape


def test_llama2_70b_hand_computed():
    # 2 x 80 layers x 8 KV heads x 128 x 2 bytes = 327,680 bytes per token; x 4,096 tokens = 1,342,177,280.
    r = calculate("Llama-2 70B", 4096, 1, "fp16", "fp16")
    assert r.bytes_per_token == 327_680
    assert r.kv_bytes == 1_342_177_280
    assert format_bytes(r.kv_bytes, binary=True) == "1.2 GiB"
    assert r.weight_bytes == 68_976_648_192 * 2
    assert {v.label: v.num_kv_heads for v in r.variants} == {"MHA": 64, "GQA": 8, "MQA": 1}
    assert [v.kv_bytes for v in r.variants] == [1_342_177_280 * 8, 1_342_177_280, 1_342_177_280 // 8]
    assert [v.is_actual for v in r.variants] == [False, True, False]


def test_llama3_8b_hand_computed():
    # 2 x 32 x 8 x 128 x 2 bytes = 131,072 bytes per token; 8,192 tokens x batch 4 = 4 GiB.
    r = calculate("Llama-3 8B", 8192, 4, "bf16", "bf16")
    assert r.bytes_per_token == 131_072
    assert r.kv_bytes == 4 * 2**30
    assert format_bytes(r.kv_bytes) == "4.3 GB"
    # int4 halves int8, which halves bf16.
    assert calculate("Llama-3 8B", 8192, 4, "int4").kv_bytes == 2**30
    assert calculate("Llama-3 8B", 8192, 4, "int8").kv_bytes == 2 * 2**30


def test_handbook_preset_gives_40_gib_and_gqa_divides_by_8():
    p = HANDBOOK_70B
    r = calculate(p.model, p.context, p.batch, p.cache_dtype, p.weight_dtype, num_kv_heads=p.num_kv_heads)
    assert r.kv_bytes == 40 * 2**30  # 2 x 80 x 64 x 128 x 4 bytes x 8,192 tokens
    assert format_bytes(r.kv_bytes) == "42.9 GB"
    assert round(r.weight_bytes / 1e9) == 141
    assert not any("beyond" in n for n in r.notes)
    gqa = next(v for v in r.variants if v.label == "GQA")
    assert gqa.kv_bytes == 5 * 2**30
    assert "40 GiB" in p.explanation and any("64 KV heads" in n for n in r.notes)


def test_huge_inputs_no_overflow_and_right_unit():
    r = calculate("Llama-2 70B", 10_000_000, 1_000, "fp16")
    assert r.kv_bytes == 327_680 * 10_000_000 * 1_000
    assert format_bytes(r.kv_bytes) == "3.3 PB"
    assert math.isfinite(float(r.kv_bytes))
    assert any("beyond the model's configured context" in n for n in r.notes)
    extreme = calculate("Llama-3.1 405B", kv_whatif_max("context"), kv_whatif_max("batch"), "fp32")
    assert format_bytes(extreme.kv_bytes).endswith("B") and "nan" not in extreme.summary().lower()


def kv_whatif_max(which: str) -> int:
    return kv_cache_whatif.MAX_CONTEXT if which == "context" else kv_cache_whatif.MAX_BATCH


@pytest.mark.parametrize("context, batch", [(float("nan"), 1), (float("inf"), 1), (-5, 1), (0, 1), (10, 2.5),
                                            ("lots", 1), (10, 10**12)])
def test_bad_whatif_inputs(context, batch):
    with pytest.raises(ValueError):
        calculate("Llama-3 8B", context, batch)


def test_unknown_names():
    with pytest.raises(ValueError, match="Known shapes"):
        calculate("GPT-5", 10)
    with pytest.raises(ValueError, match="Unknown dtype"):
        calculate("Llama-3 8B", 10, 1, "fp6")


def test_catalogue_is_consistent():
    for shape in MODEL_SHAPES.values():
        assert shape.num_heads % shape.num_kv_heads == 0, shape.name
        assert shape.num_params > 0 and shape.context_length >= 1024
    assert get_shape("Falcon 7B").attention_kind == "MQA"
    assert get_shape("Llama-2 7B").attention_kind == "MHA"
    assert get_shape("Mistral 7B").attention_kind == "GQA"


def test_smollm2_shape_matches_the_embedded_config(smollm2):
    cfg = smollm2.config
    shape = get_shape("SmolLM2 135M")
    assert (shape.num_layers, shape.num_heads, shape.num_kv_heads, shape.hidden_size, shape.vocab_size) == (
        cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.hidden_size, cfg.vocab_size)
    assert shape.num_params == sum(p.numel() for p in smollm2.model.parameters())


def test_paged_simulation_hand_computed():
    r = kv_cache_paged.simulate([5, 17, 32], block_size=16, bytes_per_token=100, max_len=40)
    assert r.used_bytes == 54 * 100
    assert r.contiguous_bytes == 3 * 40 * 100
    assert r.paged_bytes == (1 + 2 + 2) * 16 * 100
    assert r.paged_waste_bytes == (11 + 15 + 0) * 100
    assert r.contiguous_waste_pct == pytest.approx(100 * (120 - 54) / 120)
    # Round-robin growth interleaves the block tables.
    assert r.block_tables == ((0,), (1, 3), (2, 4))
    assert r.physical_owner.tolist() == [0, 1, 2, 1, 2]
    assert r.physical_fill.tolist() == [5, 16, 16, 1, 16]


def test_paged_bad_inputs():
    assert kv_cache_paged.parse_lengths("3, 4;5 6") == [3, 4, 5, 6]
    for text in ("", "3, x", "0", "-2", ",".join(["1"] * 100)):
        with pytest.raises(ValueError):
            kv_cache_paged.parse_lengths(text)
    with pytest.raises(ValueError, match="shorter than the longest"):
        kv_cache_paged.simulate([10, 50], 16, 1, max_len=20)
    with pytest.raises(ValueError, match="whole number"):
        kv_cache_paged.simulate([10], 4, 1, max_len=float("nan"))
    with pytest.raises(ValueError, match="blocks"):
        kv_cache_paged.simulate([1_000_000] * 64, 1, 1)
