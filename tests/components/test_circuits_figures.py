"""Circuits figures from hand-made results: the head grouping, the causal-cone shading, the waterfall's total."""
from __future__ import annotations

import numpy as np

from components.tabs.circuits import figures as figs
from explorer.circuits import DLAResult, HeadsResult, PatchResult


def test_heads_figure_groups_columns_by_kv_head():
    scores = np.arange(8, dtype=float).reshape(2, 4) / 8
    result = HeadsResult("m", {"induction": scores}, tuple(range(7)), 3, 0, np.array([1, 0, 1, 0]))
    fig = figs.heads_figure(result, "induction")
    assert list(fig.data[0].x) == ["h1 kv0", "h3 kv0", "h0 kv1", "h2 kv1"]
    np.testing.assert_allclose(np.array(fig.data[0].z)[0], scores[0, [1, 3, 0, 2]])
    assert figs.top_rows(result, "induction")[0] == [1, 3, 0, 0.875]
    assert [shape.x0 for shape in fig.layout.shapes] == [1.5]  # one line between the two KV groups


def test_patch_figure_shades_outside_the_cone():
    grid = np.linspace(0, 1, 12).reshape(3, 4)
    result = PatchResult("m", "resid", grid, grid, 1.0, ("embed", "L0", "L1"), ("a", "b", "c", "d"), ("a",) * 4,
                         ("a",) * 4, 2.0, -1.0, "' x'", "' y'", 12)
    plain = figs.patch_figure(result)
    assert len(plain.data) == 2
    shaded = figs.patch_figure(result, (1, 2))
    assert len(shaded.data) == 4
    outside = np.array(shaded.data[1].z)
    assert outside[1, 2] == 0 and outside[2, 3] == 0 and outside[2, 1] == 1 and outside[0].all()


def test_dla_waterfall_ends_at_the_logit():
    result = DLAResult("m", 2, "' x'", 5, ("a", "b", "c"), ("embed", "L0.attn", "L0.mlp"), np.array([1.0, -0.5, 2.0]),
                       ("L0H0", "L0H1"), np.array([-0.25, -0.25]), 2.5, 0.0)
    fig = figs.dla_figure(result)
    assert list(fig.data[0].x) == ["embed", "L0.attn", "L0.mlp", "logit"] and fig.data[0].y[-1] == 2.5
    per_head = figs.dla_figure(result, show_heads=True)
    assert list(per_head.data[0].x) == ["embed", "L0.mlp", "L0H0", "L0H1", "logit"]
