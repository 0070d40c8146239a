"""KV cache figures render from real results (tiny model) and from extreme what-if values."""
from __future__ import annotations

import json

from components.tabs.kv_cache import figures as figs
from components.tabs.kv_cache import figures_extra as xfigs
from explorer import kv_cache
from explorer.kv_cache import paged as kv_cache_paged
from explorer.kv_cache import quantized as kv_cache_quant
from explorer.kv_cache import timing as kv_cache_timing
from explorer.kv_cache.whatif import calculate


def test_growth_and_timing_figures(tiny_engine):
    result = kv_cache.run("Hello", engine=tiny_engine, max_new_tokens=4)
    fig = figs.growth_figure(result)
    assert "measured = formula" in fig.layout.title.text
    names = [t.name for t in fig.data]
    assert names == ["formula", "measured (prefill)", "measured (decode)"]
    assert list(fig.data[2].y) == result.measured_bytes[1:].tolist()
    partial = figs.growth_figure(result, upto=2)
    assert len(partial.data[2].x) == 1
    assert figs.step_table(result, 3)[2][:3] == [2, "decode", int(result.tokens[2])]
    comparison = kv_cache_timing.compare_no_cache("Hello", engine=tiny_engine, max_new_tokens=3)
    assert "identical greedy tokens" in figs.timing_figure(comparison).layout.title.text


def test_whatif_figure_with_huge_values():
    r = calculate("Llama-3.1 405B", 10**12, 10**9, "fp32", "fp32")
    fig = figs.whatif_figure(r)
    payload = json.dumps(fig.to_plotly_json(), default=str).lower()
    assert "nan" not in payload and "inf" not in payload.replace("info", "")
    assert fig.data[0].text[1].endswith("YB") or fig.data[0].text[1].endswith("ZB")


def test_paged_and_quant_figures(tiny_engine):
    paged = kv_cache_paged.simulate([5, 17, 32], 16, 100, 40)
    fig = xfigs.paged_figure(paged)
    assert len(fig.data) == 2 + 3
    assert xfigs.block_table_rows(paged)[1] == [1, 17, 2, "1, 3", 15]
    quant = kv_cache_quant.run("Hi", engine=tiny_engine, max_new_tokens=2, backends=["fp8"])
    qfig = xfigs.quant_figure(quant)
    assert list(qfig.data[0].x) == ["full precision", "fp8"]


def test_prefix_figure(tiny_engine):
    from explorer.kv_cache import prefix as kv_cache_prefix

    result = kv_cache_prefix.run("Hi", "You are brief and kind.", engine=tiny_engine)
    fig = xfigs.prefix_figure(result)
    assert result.max_abs_logit_diff <= 1e-5
    assert list(fig.data[0].x) == ["compute prefix", "reuse saved prefix cache"]
