"""The tiny mixture of experts: settings, router loads, parameter counts, the /moe_compare job."""
from __future__ import annotations

import math

import pytest
import torch

from explorer import scaling
from explorer.scaling import experts, famous, moe

TINY = {"steps": 2, "d_model": 16, "experts": 4, "top_k": 2, "seed": 1}


def test_settings_bad_input():
    with pytest.raises(ValueError, match="top_k"):
        moe.moe_settings({"experts": 2, "top_k": 3})
    with pytest.raises(ValueError, match="experts must be between 1 and 16"):
        moe.moe_settings({"experts": 64})
    with pytest.raises(ValueError, match="d_model must be between"):
        moe.moe_settings({"d_model": 4096})
    with pytest.raises(ValueError, match="steps must be between"):
        moe.moe_settings({"steps": 10**6})
    with pytest.raises(ValueError, match="unknown key"):
        moe.moe_settings({"layers": 3})
    with pytest.raises(ValueError, match="aux_loss"):
        moe.moe_settings({"aux_loss": -0.1})
    assert moe.moe_settings({"aux_loss": False}).aux_loss == 0.0


def test_active_and_total_counts_equal_a_direct_count_of_the_tiny_moe():
    s = moe.moe_settings(TINY)
    model = moe._build(moe.moe_config(s, 512), 0)
    total = sum(p.numel() for p in model.parameters())
    # a direct count: everything but the (experts - top_k) unused experts' slices of each layer's expert tensors
    unused = sum((s.experts - s.top_k) * (layer.mlp.experts.gate_up_proj[0].numel() +
                                          layer.mlp.experts.down_proj[0].numel()) for layer in model.model.layers)
    active, counted_total = moe.count_moe(model)
    assert counted_total == total and active == total - unused
    assert unused == moe.LAYERS * (s.experts - s.top_k) * 3 * s.d_model * s.expert_width
    dense = moe._build(moe.dense_config(s, 512), 0)
    # the dense twin has the same active parameters but the routers (d_model x experts per layer)
    assert sum(p.numel() for p in dense.parameters()) + moe.LAYERS * s.d_model * s.experts == active


@pytest.mark.parametrize("shape", experts.MOE_SHAPES, ids=lambda s: s.name)
def test_real_moe_counts_equal_transformers_modules_on_meta(shape):
    from transformers import MixtralForCausalLM

    counts = experts.moe_counts(shape)
    with torch.device("meta"):
        model = MixtralForCausalLM(experts.mixtral_config(shape))
    assert counts["total_params"] == sum(p.numel() for p in model.parameters())
    if shape.name == "Mixtral 8x22B":  # the handbook: ~39B of ~141B per token
        assert round(counts["active_params"] / 1e9) == 39 and round(counts["total_params"] / 1e9) == 141
    if shape.name == "Mixtral 8x7B":  # models/shapes.py copies the model card's total
        from models.shapes import get_shape

        assert counts["total_params"] == get_shape("Mixtral 8x7B").num_params


def test_router_loads_sum_to_tokens_routed_times_k_and_match_the_router_logits():
    result = scaling.run(TINY, owner="test-moe-loads")
    data = scaling.to_api(result)
    assert result.status == "done", result.message
    assert len(data["dense_losses"]) == len(data["moe_losses"]) == len(data["moe_no_aux_losses"]) == 2
    assert all(math.isfinite(x) for x in data["dense_losses"] + data["moe_losses"])
    per_step = moe.BATCH_SIZE * moe.SEQ_LEN * moe.LAYERS
    assert data["tokens_routed"] == per_step
    for loads in data["router_load"] + data["router_load_no_aux"]:
        assert len(loads) == 4 and sum(loads) == per_step * TINY["top_k"]
    assert data["active_params"] < data["total_params"]
    assert data["moe_flops"][-1] == 6 * (data["active_params"] - 512 * 16) * 2 * moe.BATCH_SIZE * moe.SEQ_LEN
    # the hook's picks equal top-k of the softmax of transformers' own router_logits output
    s = moe.moe_settings(TINY)
    model = moe._build(moe.moe_config(s, 512), 0)
    curve = moe.MoeCurve("moe", 0.0, 0, 0, 1)
    picks = []
    hooks = [layer.mlp.gate.register_forward_hook(lambda m, a, out: picks.append(out[2]))
             for layer in model.model.layers]
    x = torch.randint(0, 512, (2, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(input_ids=x)
    for h in hooks:
        h.remove()
    assert curve.label == "moe"
    for logits, pick in zip(out.router_logits, picks):
        expected = torch.topk(torch.softmax(logits.float(), -1), s.top_k, dim=-1).indices
        assert torch.equal(expected.sort(-1).values, pick.sort(-1).values)


def test_calculator_and_known_models():
    out = famous.calculate(135e6, 2e12)
    assert out["compute"] == 6 * 135e6 * 2e12 and out["tokens_per_param"] == pytest.approx(14_814.8, rel=1e-4)
    assert "over-trained" in out["verdict"]
    smol = next(m for m in famous.known_models() if m.name == "SmolLM2-135M")
    assert smol.embedded and 14_000 < smol.tokens_per_param < 16_000 and "huggingface.co" in smol.tokens_source
    assert all(m.params_source and m.tokens_source for m in famous.known_models())
    chin = next(m for m in famous.known_models() if m.name == "Chinchilla")
    assert chin.tokens_per_param == pytest.approx(20)
    for bad in ((0, 1e9), (1e9, -5), ("x", 1)):
        with pytest.raises(ValueError, match="params|tokens"):
            famous.calculate(*bad)


def test_embedded_points_equal_a_count_of_the_loaded_models(smollm2, gemma):
    points = {m.name: m for m in famous.known_models() if m.embedded}
    for name, engine in (("SmolLM2-135M", smollm2), ("Gemma 3 270M", gemma)):
        counted = sum(p.numel() for p in engine.model.parameters())  # tied embeddings counted once
        assert points[name].params == counted, name
        assert points[name].compute == 6 * counted * points[name].tokens
