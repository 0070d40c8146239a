"""Positions lens on the tiny random Llama: RoPE read from the module, scores against an independent numpy
rotation, scaling built from transformers' config, the shared model restored after errors, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.positions import cost, extension, rope
from explorer.positions.model_rope import MAX_REPRESENTABLE_POSITION, rope_bases, rotary_module


def _numpy_rope(vec: np.ndarray, position: int, inv_freq: np.ndarray) -> np.ndarray:
    """Rotate-half RoPE in float64 (Su et al. 2021 with the Llama/GPT-NeoX pairing of dims p and p + d/2)."""
    half = len(vec) // 2
    angle = position * inv_freq.astype(np.float64)
    a, b = vec[:half], vec[half:]
    return np.concatenate([a * np.cos(angle) - b * np.sin(angle), b * np.cos(angle) + a * np.sin(angle)])


def test_inv_freq_read_from_module_matches_formula(tiny_engine):
    (base,) = rope_bases(tiny_engine)
    d = tiny_engine.config.hidden_size // tiny_engine.config.num_attention_heads
    expected = 1.0 / (base.rope_theta ** (np.arange(0, d, 2) / d))
    np.testing.assert_allclose(base.inv_freq, expected, rtol=1e-6)
    assert base.layers == (0, 1) and base.label == "all layers"


def test_scores_match_independent_rotation_and_are_shift_invariant(tiny_engine):
    r = rope.run("Shift me along the line.", engine=tiny_engine, positions=[300, 17], offset=1500, layer=1, head=3)
    q, k, scalings = rope.capture_qk(tiny_engine, tiny_engine.encode("Shift me along the line."))
    qv, kv = q[1, 3, -1].double().numpy(), k[1, 3 // 2, 0].double().numpy()
    inv = r.inv_freq
    expected = _numpy_rope(qv, 300, inv) @ _numpy_rope(kv, 17, inv) * scalings[1]
    assert r.rope.scores[1, 3] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert r.rope.max_relative_change < 1e-4
    assert r.absolute.max_relative_change > 1e-2
    api = r.to_api()
    assert api["score"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    np.testing.assert_allclose(api["angles_i"], np.float32(300) * inv.astype(np.float32), rtol=1e-6)
    # float error grows with position: the largest offset is worse than the smallest non-zero one
    assert r.growth_angle_error[-1] > r.growth_angle_error[1]


def test_rope_bad_input(tiny_engine):
    with pytest.raises(ValueError, match="two integers"):
        rope.run("hi there", engine=tiny_engine, positions=[1, 2, 3])
    with pytest.raises(ValueError, match="2\\*\\*24"):
        rope.run("hi there", engine=tiny_engine, positions=[10, 0], offset=MAX_REPRESENTABLE_POSITION)
    with pytest.raises(ValueError, match="at least 0"):
        rope.run("hi there", engine=tiny_engine, positions=[-1, 0])


def test_scaled_rotary_linear_divides_frequencies(tiny_engine):
    original = rotary_module(tiny_engine).inv_freq
    scaled = extension.scaled_rotary(tiny_engine, "linear", 4.0)
    torch.testing.assert_close(scaled.inv_freq, original / 4.0)
    assert tiny_engine.config.rope_parameters.get("rope_type", "default") == "default"  # config copy only
    yarn = extension.scaled_rotary(tiny_engine, "yarn", 4.0)
    assert yarn.attention_scaling == pytest.approx(0.1 * math.log(4.0) + 1.0)  # YaRN's mscale (Peng et al. 2023)


def test_perplexity_matches_cross_entropy_and_plain_shift_changes_nothing(tiny_engine):
    ids = tiny_engine.encode(extension.DEFAULT_PASSAGE)
    n = len(ids)
    with torch.inference_mode():
        logits = tiny_engine.model(input_ids=torch.tensor([ids])).logits[0].double()
    targets = torch.tensor(ids[n // 2:])
    ce = torch.nn.functional.cross_entropy(logits[n // 2 - 1:-1], targets)
    assert extension.perplexity(tiny_engine, ids, 0) == pytest.approx(math.exp(float(ce)), rel=1e-4)
    # every position shifted by the same amount: RoPE sees the same distances
    with torch.inference_mode():
        shifted = tiny_engine.model(input_ids=torch.tensor([ids]),
                                    position_ids=torch.arange(5000, 5000 + n).unsqueeze(0)).logits[0].double()
    assert float((shifted - logits).abs().max()) < 1e-3


def test_extension_rows_and_model_restored_after_error(tiny_engine, monkeypatch):
    rotary = rotary_module(tiny_engine)
    result = extension.run([0, 20000], [{"type": "none"}, {"type": "dynamic", "factor": 4}], engine=tiny_engine)
    assert [(r.scaling, r.offset) for r in result.rows] == [("none", 0), ("none", 20000), ("dynamic", 0),
                                                            ("dynamic", 20000)]
    assert result.rows[0].perplexity == pytest.approx(result.rows[2].perplexity, rel=1e-6)  # below the trained length
    assert rotary_module(tiny_engine) is rotary

    def boom(*args, **kwargs):
        assert rotary_module(tiny_engine) is not rotary  # the scaled module is in place mid-run
        raise RuntimeError("mid-run failure")

    monkeypatch.setattr(tiny_engine, "forward", boom)
    with pytest.raises(RuntimeError, match="mid-run"):
        extension.run([100], [{"type": "linear", "factor": 2}], engine=tiny_engine)
    assert rotary_module(tiny_engine) is rotary
    torch.testing.assert_close(rotary.inv_freq, rotary.original_inv_freq)


def test_extension_bad_input(tiny_engine):
    with pytest.raises(ValueError, match="represent"):
        extension.run([MAX_REPRESENTABLE_POSITION], [{"type": "none"}], engine=tiny_engine)
    with pytest.raises(ValueError, match="Unknown"):
        extension.run([0], [{"type": "ntk-by-parts", "factor": 2}], engine=tiny_engine)
    with pytest.raises(ValueError, match="factor"):
        extension.run([0], [{"type": "linear", "factor": 0.5}], engine=tiny_engine)
    with pytest.raises(ValueError, match="at least 0"):
        extension.run([-5], [{"type": "none"}], engine=tiny_engine)


def test_cost_eager_vs_sdpa_and_restored_after_error(tiny_engine, monkeypatch):
    before = tiny_engine.model.config._attn_implementation
    result = cost.run([32, 256], engine=tiny_engine, repeats=1)
    assert {(r.length, r.implementation) for r in result.rows} == {(32, "eager"), (32, "sdpa"), (256, "eager"),
                                                                   (256, "sdpa")}
    assert max(result.max_rel_diff.values()) < 1e-4
    eager, sdpa = result.row(256, "eager"), result.row(256, "sdpa")
    assert eager.formula_bytes == 4 * 256 * 256 * 4
    assert eager.peak_bytes >= eager.formula_bytes > sdpa.peak_bytes
    assert tiny_engine.model.config._attn_implementation == before

    def boom(*args, **kwargs):
        assert tiny_engine.model.config._attn_implementation == "eager"
        raise RuntimeError("profiler failure")

    monkeypatch.setattr(cost, "profile_peak_bytes", boom)
    with pytest.raises(RuntimeError, match="profiler"):
        cost.run([16], engine=tiny_engine)
    assert tiny_engine.model.config._attn_implementation == before


def test_cost_lengths_capped_and_validated(tiny_engine, monkeypatch):
    from explorer.core import config

    monkeypatch.setenv("LLM_EXPLORER_MAX_ATTENTION_COST_TOKENS", "64")
    config.get_limits.cache_clear()
    try:
        notices: list[str] = []
        assert cost.check_lengths(tiny_engine, [16, 10_000], notices) == [16, 64]
        assert "capped at 64" in notices[0]
        with pytest.raises(ValueError, match="at least 2"):
            cost.check_lengths(tiny_engine, [1], [])
        with pytest.raises(ValueError, match="integer"):
            cost.check_lengths(tiny_engine, ["long"], [])
    finally:
        monkeypatch.delenv("LLM_EXPLORER_MAX_ATTENTION_COST_TOKENS")
        config.get_limits.cache_clear()


def test_minilm_refused_with_a_clear_message():
    from explorer.core.engine import get_engine

    minilm = get_engine("all-minilm-l6-v2")
    with pytest.raises(ValueError, match="absolute position embeddings"):
        rope.run("hello", engine=minilm)
    with pytest.raises(ValueError, match="RoPE"):
        extension.run([0], [{"type": "none"}], engine=minilm)
    with pytest.raises(ValueError, match="encoder"):
        cost.run([16], engine=minilm)


def _tiny_gemma3():
    """A tiny random Gemma 3 text model: five local layers (base 10,000, window 16) and one global (1,000,000)."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from explorer.core.engine import Engine
    from models.loading import LoadedModel, load_model
    from models.registry import ModelSpec

    tokenizer = load_model("smollm2-135m-instruct").tokenizer
    torch.manual_seed(0)
    cfg = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
        num_key_value_heads=1, head_dim=16, max_position_embeddings=2048, sliding_window=16,
        layer_types=["sliding_attention"] * 5 + ["full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                         "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0}})
    model = Gemma3ForCausalLM(cfg).eval()
    spec = ModelSpec("tiny-gemma3", "causal-lm", "hub", "tiny", "tiny test model")
    return Engine(LoadedModel(spec=spec, model=model, tokenizer=tokenizer, device=torch.device("cpu"),
                              dtype=torch.float32))


def test_gemma_two_bases_and_scaling_on_global_layers_only():
    engine = _tiny_gemma3()
    glob, local = rope_bases(engine)
    assert (glob.label, glob.rope_theta, glob.layers) == ("global (full_attention)", 1_000_000.0, (5,))
    assert (local.label, local.rope_theta, local.layers) == ("local (sliding_attention)", 10_000.0, (0, 1, 2, 3, 4))
    np.testing.assert_allclose(local.inv_freq, 1.0 / 10_000.0 ** (np.arange(0, 16, 2) / 16), rtol=1e-6)
    r = rope.run("Shift me along the line.", engine=engine, positions=[300, 17], offset=1500)
    assert r.rope.max_relative_change < 1e-4 < r.absolute.max_relative_change
    original = rotary_module(engine)
    scaled = extension.scaled_rotary(engine, "linear", 4.0)
    torch.testing.assert_close(scaled.full_attention_inv_freq, original.full_attention_inv_freq / 4)
    torch.testing.assert_close(scaled.sliding_attention_inv_freq, original.sliding_attention_inv_freq)
    result = extension.run([0, 5000], [{"type": "linear", "factor": 4}], engine=engine)
    assert result.scaled_layers.startswith("global (full_attention) layers 5")
    assert rotary_module(engine) is original
