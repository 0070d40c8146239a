"""Attention figures: light overview at 512 tokens, masked detail heatmaps, pruned line view, timeline."""
from __future__ import annotations

import json

import numpy as np
import pytest

from components.tabs.attention.figures import ab_figure, detail_figure, overview_figure, pool, thumbnails
from components.tabs.attention.views import lines_figure, prune_edges, timeline_figure
from explorer.attention.capture import AttentionResult
from explorer.attention.stats import head_stats
from explorer.attention.timeline import run_timeline, timeline_rows


def _uniform_causal(num_layers, num_heads, n):
    rows = np.tril(np.ones((n, n), np.float16))
    rows = rows / rows.sum(-1, keepdims=True)
    return np.broadcast_to(rows, (num_layers, num_heads, n, n))


def _result(attn, causal=True):
    num_heads = attn.shape[1]
    kv = np.arange(num_heads) // 3
    return AttentionResult(model="synthetic", tokens=tuple(f"t{i}" for i in range(attn.shape[2])),
                           token_ids=tuple(range(attn.shape[2])), attn=attn, kv_head_of_head=kv,
                           num_kv_heads=int(kv.max()) + 1, causal=causal, stats=head_stats(attn[:, :, :64, :64]))


def test_overview_payload_stays_small_at_512_tokens():
    result = _result(_uniform_causal(30, 9, 512))
    mosaic = thumbnails(result.attn)
    assert mosaic.shape == (30 * 16, 9 * 16) and mosaic.dtype == np.uint8
    fig = overview_figure(result, "first_token", hide_sink=True)
    payload = fig.to_json()
    assert len(payload) < 150_000  # 30 × 9 heads of 512 × 512 would be ~70 M numbers
    assert json.loads(payload)["data"][0]["z"]["dtype"] == "u1"
    with pytest.raises(ValueError, match="Unknown statistic"):
        overview_figure(result, "kurtosis")


def test_pool_keeps_block_means():
    pattern = np.arange(64, dtype=np.float32).reshape(8, 8)
    pooled = pool(pattern, 4)
    assert pooled.shape == (4, 4)
    np.testing.assert_allclose(pooled[0, 0], pattern[:2, :2].mean())
    np.testing.assert_allclose(pooled.mean(), pattern.mean())
    assert pool(pattern, 16).shape == (8, 8)


def test_detail_masks_upper_triangle_only_for_causal():
    attn = _uniform_causal(1, 3, 6).astype(np.float32)
    causal = detail_figure(attn[0, 0], [f"t{i}" for i in range(6)], True, "head").data[0].z
    assert np.isnan(causal[0, 1]) and not np.isnan(causal[1, 0])
    full = np.full((6, 6), 1 / 6, np.float32)
    bidirectional = detail_figure(full, [f"t{i}" for i in range(6)], False, "head").data[0].z
    assert not np.isnan(bidirectional).any()
    fig = ab_figure(attn[0, 0], "a", full, "b", [f"t{i}" for i in range(6)], True)
    assert len(fig.data) == 2 and fig.layout.coloraxis.cmax == pytest.approx(1.0)


def test_prune_edges_keeps_strongest():
    rng = np.random.default_rng(0)
    pattern = rng.dirichlet(np.ones(40), size=40).astype(np.float32)
    edges = prune_edges(pattern, top_k=3, min_weight=0.05, max_edges=50)
    assert 0 < len(edges) <= 50
    assert all(w >= 0.05 for _, _, w in edges)
    assert [w for *_, w in edges] == sorted((w for *_, w in edges), reverse=True)
    per_query = np.bincount([q for q, _, _ in edges], minlength=40)
    assert per_query.max() <= 3
    for q, k, w in edges:
        assert w == pytest.approx(pattern[q, k]) and (pattern[q] > w).sum() < 3
    fig = lines_figure(pattern, [f"t{i}" for i in range(40)], "layer 0")
    assert any(trace.mode == "lines" for trace in fig.data)


def test_timeline_figure(tiny_engine):
    tl = run_timeline("The capital of France is", max_new_tokens=3, engine=tiny_engine)
    rows = timeline_rows(tl, "head", 0, 0)
    fig = timeline_figure(tl, rows, 5, "layer 0 · head 0")  # step clipped to the last one
    heat, bars = fig.data
    assert np.isnan(heat.z[0, -1]) and not np.isnan(heat.z[-1, -1])
    assert len(bars.y) == tl.prompt_len + 2
    np.testing.assert_allclose(bars.y, np.round(rows[2, : tl.prompt_len + 2], 4))
