"""Positions lens on the real embedded SmolLM2: shift invariance to 1e-4 at positions up to 2,048, eager vs SDPA
agreement and memory, scaling changes perplexity past the trained length, the shared model left unchanged."""
from __future__ import annotations

import pytest

from explorer.positions import cost, extension, rope
from explorer.positions.model_rope import rotary_module


@pytest.mark.parametrize("positions,offset", [([1024, 0], 1024), ([2048, 2000], 0), ([40, 1500], 548)])
def test_shift_invariance_on_real_vectors(smollm2, positions, offset):
    r = rope.run(None, engine=smollm2, positions=positions, offset=offset)
    assert max(positions) + offset <= 2048
    assert r.rope.scores.shape == (30, 9)
    if offset:
        assert r.rope.max_relative_change < 1e-4
        assert r.absolute.max_relative_change > 1e-2  # absolute positions added to the input: not invariant
    (base,) = r.bases
    assert base.rope_theta == 100_000.0 and len(base.inv_freq) == 32


def test_eager_and_sdpa_agree_and_eager_needs_more_memory(smollm2):
    before = smollm2.model.config._attn_implementation
    result = cost.run([128, 512], engine=smollm2, repeats=1)
    assert max(result.max_rel_diff.values()) < 1e-4
    eager, sdpa = result.row(512, "eager"), result.row(512, "sdpa")
    assert eager.formula_bytes == 9 * 512 * 512 * 4
    assert eager.peak_bytes >= eager.formula_bytes > sdpa.peak_bytes
    assert smollm2.model.config._attn_implementation == before


def test_scaling_changes_perplexity_past_the_trained_length(smollm2):
    rotary = rotary_module(smollm2)
    result = extension.run([0, 32768], [{"type": "none"}, {"type": "dynamic", "factor": 4}], engine=smollm2)
    ppl = {(r.scaling, r.offset): r.perplexity for r in result.rows}
    assert ppl[("none", 0)] == pytest.approx(ppl[("dynamic", 0)], rel=1e-6)  # dynamic changes nothing below 8,192
    assert ppl[("none", 32768)] > 2 * ppl[("none", 0)]  # distances past the trained length hurt
    assert ppl[("dynamic", 32768)] < ppl[("none", 32768)]  # and dynamic NTK scaling recovers part of it
    assert result.trained_length == 8192 and result.scaled_layers == "all layers"
    assert rotary_module(smollm2) is rotary
