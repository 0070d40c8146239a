"""Quantisation lens: metrics against references, bitsandbytes agreement, bytes, and the read-only reference."""
import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from explorer import quantization
from explorer.quantization.error import dequantize_4bit, error_map, int8_outliers
from explorer.quantization.methods import METHODS, QuantOptions, get_variant
from explorer.quantization.quality import compare_logits, reference_passage, summarize

# Measured on the first 256 tokens of data/quantization/reference_passage.txt (windows of 128), SmolLM2 fp32
# reference, bitsandbytes 0.50.2 on CPU: int8 same-top-1 = 90.16 %, NF4 = 72.05 %. The thresholds leave margin.
INT8_SAME_TOP_MIN = 85.0
NF4_SAME_TOP_MIN = 60.0


def _digest(model) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def test_kl_of_reference_with_itself_is_zero():
    torch.manual_seed(0)
    logits = torch.randn(7, 50) * 3
    targets = torch.randint(0, 50, (7,))
    stats = summarize(compare_logits(logits, logits.clone(), targets))
    assert stats.kld_mean == 0.0 and stats.kld_max == 0.0
    assert stats.same_top_pct == 100.0 and stats.rms_dp_pct == 0.0 and stats.ppl_ratio == 1.0
    # and a known KL: two-token distributions p=(0.5,0.5), q=(0.9,0.1)
    p, q = torch.log(torch.tensor([[0.5, 0.5]])), torch.log(torch.tensor([[0.9, 0.1]]))
    expected = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
    assert compare_logits(p, q, torch.tensor([0])).kld[0] == pytest.approx(expected, rel=1e-5)


def test_reference_scores_zero_on_passage(tiny_engine):
    pq = quantization.run_passage(engine=tiny_engine, methods=["reference"], max_tokens=40, window=16)
    s = pq.stats["reference"]
    assert s.n_tokens == 40 - 3  # three windows (16, 16, 8 tokens), first token of each unscored
    assert s.kld_mean == 0.0 and s.same_top_pct == 100.0 and s.ppl_ratio == 1.0


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("double", [True, False])
def test_4bit_dequantise_equals_bitsandbytes(tiny_engine, quant_type, double):
    import bitsandbytes.functional as bnbf

    variant = get_variant(tiny_engine, quant_type, QuantOptions(blocksize=64, double_quant=double))
    module = variant.engine.model.get_submodule("model.layers.1.mlp.down_proj")
    ours = dequantize_4bit(module.weight)
    theirs = bnbf.dequantize_4bit(module.weight.data, module.weight.quant_state).float()
    assert torch.equal(ours, theirs)
    original = tiny_engine.model.get_submodule("model.layers.1.mlp.down_proj").weight
    rel = float((ours - original).norm() / original.norm())
    assert 0.0 < rel < 0.2


def test_4bit_dequantise_equals_bitsandbytes_reference_impl_for_blocks_across_rows(tiny_engine):
    """Block 128 on 64-wide rows: compare with bitsandbytes' pure-PyTorch implementation (its AVX-512 CPU
    kernel disagrees there; the variant then carries a note)."""
    import bitsandbytes.functional as bnbf
    from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
    from bitsandbytes.backends.utils import _get_4bit_code

    variant = get_variant(tiny_engine, "nf4", QuantOptions(blocksize=128, double_quant=False))
    w = variant.engine.model.get_submodule("model.layers.0.self_attn.q_proj").weight
    state = w.quant_state
    reference_impl = getattr(_dequantize_4bit_compute, "__wrapped__", _dequantize_4bit_compute)  # skip torch.compile
    expected = reference_impl(w.data.reshape(-1), state.absmax, _get_4bit_code("nf4", w.device),
                                        128, state.shape, state.dtype)
    assert torch.equal(dequantize_4bit(w), expected.float())
    kernel_agrees = torch.equal(bnbf.dequantize_4bit(w.data, state).float(), expected.float())
    assert (variant.note is None) == kernel_agrees


def test_reference_weights_bit_identical_after_every_method(tiny_engine):
    before = _digest(tiny_engine.model)
    result = quantization.run("Hello there", engine=tiny_engine, methods=list(METHODS), max_new_tokens=3,
                              options=QuantOptions(int8_threshold=3.0, blocksize=64))
    assert [m.name for m in result.methods] == list(METHODS)
    assert all(m.error is None for m in result.methods)
    assert _digest(tiny_engine.model) == before
    assert all(not module._forward_pre_hooks for module in tiny_engine.model.modules())


def test_failing_method_reports_and_others_run(tiny_engine, monkeypatch):
    from explorer.quantization import methods as quantization_methods

    def broken(reference, options):
        raise RuntimeError("no 4-bit kernel on this device")

    monkeypatch.setitem(quantization_methods.METHODS, "fp4", dataclasses.replace(METHODS["fp4"], build=broken))
    monkeypatch.setattr(quantization_methods, "_VARIANTS", quantization_methods.OrderedDict())
    result = quantization.run("Hi", engine=tiny_engine, methods=["int8", "fp4"], max_new_tokens=2)
    out = quantization.api_dict(result)["methods"]
    assert "no 4-bit kernel" in out["fp4"]["error"] and out["fp4"]["kld_mean"] is None
    assert out["int8"]["error"] is None and out["int8"]["kld_mean"] >= 0.0
    assert out["reference"]["kld_mean"] == 0.0 and out["reference"]["same_top_pct"] == 100.0


@pytest.mark.parametrize("kwargs,message", [
    ({"methods": ["int3"]}, "Unknown quantisation"),
    ({"methods": []}, "at least one"),
    ({"options": QuantOptions(blocksize=100)}, "block size"),
    ({"options": QuantOptions(int8_threshold=-1)}, "threshold"),
    ({"prompt": "   "}, "prompt"),
])
def test_bad_input_is_a_readable_value_error(tiny_engine, kwargs, message):
    args = {"prompt": "Hi", "methods": ["nf4"], **kwargs}
    with pytest.raises(ValueError, match=message):
        quantization.run(args.pop("prompt"), engine=tiny_engine, max_new_tokens=1, **args)


def test_too_large_is_refused_up_front_with_the_estimate(tiny_engine, monkeypatch):
    import psutil

    class Tiny:
        available = 1000

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tiny())
    with pytest.raises(ValueError, match=r"GiB.*only 0\.00 GiB is free"):
        quantization.run("Hi", engine=tiny_engine, methods=["nf4"], max_new_tokens=1)


def test_smollm2_bytes_measured_from_modules(smollm2):
    ref = get_variant(smollm2, "reference")
    nf4 = get_variant(smollm2, "nf4")
    int8 = get_variant(smollm2, "int8")
    size = next(smollm2.model.parameters()).element_size()  # 4 (fp32 on CPU) or 2 (bf16 on GPU)
    # per layer: q, o (576×576), k, v (192×576), gate, up (1536×576), down (576×1536)
    n_linear = 30 * (2 * 576 * 576 + 2 * 192 * 576 + 3 * 1536 * 576)
    assert ref.linear_weight_bytes == size * n_linear
    assert nf4.linear_weight_bytes <= 0.35 * 4 * n_linear
    # 4 bits per weight + 8-bit block scales + fp32 nested scales: just over half a byte per weight
    assert 0.5 < nf4.linear_weight_bytes / n_linear < 0.54
    # int8: one byte per weight + one fp32 scale per output row
    rows = 30 * (3 * 576 + 2 * 192 + 2 * 1536)  # output rows of q, o, down; k, v; gate, up
    assert int8.linear_weight_bytes == n_linear + 4 * rows
    assert nf4.weight_bytes < int8.weight_bytes < ref.weight_bytes


def test_smollm2_quality_on_passage_slice(smollm2):
    before = _digest(smollm2.model)
    pq = quantization.run_passage(engine=smollm2, methods=["reference", "int8", "nf4"], max_tokens=256, window=128)
    int8, nf4 = pq.stats["int8"], pq.stats["nf4"]
    assert pq.stats["reference"].kld_max == 0.0
    assert int8.same_top_pct >= INT8_SAME_TOP_MIN
    assert nf4.same_top_pct >= NF4_SAME_TOP_MIN
    assert 0.0 < int8.kld_mean < nf4.kld_mean
    assert nf4.ppl_ratio > 1.0
    assert _digest(smollm2.model) == before
    assert len(reference_passage().split()) > 1500


def test_smollm2_error_map_and_int8_outliers(smollm2):
    nf4 = error_map(smollm2.model, get_variant(smollm2, "nf4").engine.model)
    int8 = error_map(smollm2.model, get_variant(smollm2, "int8").engine.model)
    assert nf4.rel_error.shape == (30, 7) and not np.isnan(nf4.rel_error).any()
    assert (int8.rel_error < nf4.rel_error).all()
    assert 0.05 < float(np.median(nf4.rel_error)) < 0.15  # NF4's error on roughly normal weights
    ids = smollm2.encode("The lighthouse keeper wound the clockwork every night.")
    high, low = int8_outliers(smollm2, ids, 6.0), int8_outliers(smollm2, ids, 1.0)
    assert high.counts.sum() > 0 and (low.counts >= high.counts).all()
    assert (high.counts <= high.in_features[None, :]).all()
    assert all(not m._forward_pre_hooks for m in smollm2.model.modules())


def test_cache_drops_least_recently_used_beyond_the_byte_budget(monkeypatch):
    from explorer.quantization import methods as qm

    fake = qm.OrderedDict((("m", k), qm.Variant(k, k, None, 0.0, size, size)) for k, size in
                          [("a", 300), ("b", 500), ("c", 400)])
    monkeypatch.setattr(qm, "_VARIANTS", fake)
    qm._evict(1000)
    assert [k for _, k in fake] == ["b", "c"]
    qm._evict(10)
    assert [k for _, k in fake] == ["c"]  # the newest copy always stays


def test_greedy_loop_matches_transformers_generate(tiny_engine):
    ids = tiny_engine.encode("Once upon a time")
    new, tokens_per_s, prefill_ms = quantization.greedy_generate(tiny_engine, ids, 12)
    with tiny_engine.session():
        expected = tiny_engine.model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                                              eos_token_id=None)[0, len(ids):].tolist()
    # the loop runs all 12 tokens unless it meets an end-of-sequence id, and then stops right after it
    stops = [i for i, t in enumerate(expected) if t in tiny_engine.eos_token_ids()]
    assert new == expected[:stops[0] + 1 if stops else 12] and len(new) >= (min(stops) + 1 if stops else 12)
    assert tokens_per_s > 0 and prefill_ms > 0
