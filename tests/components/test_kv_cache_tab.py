"""The KV cache tab's handlers, called directly on a Blocks built with the tab (no browser)."""
from __future__ import annotations

import gradio as gr
import pytest

from components.context import AppContext
from explorer.core.config import get_limits


@pytest.fixture(scope="module")
def handlers():
    from components.tabs.kv_cache.tab import build_kv_cache_tab

    with gr.Blocks() as demo:
        prompt, model = gr.Textbox(), gr.Dropdown(["smollm2-135m-instruct"], value="smollm2-135m-instruct")
        parts = build_kv_cache_tab(AppContext(prompt, model, get_limits()))
    fns = {block_fn.fn.__name__: block_fn.fn for block_fn in demo.fns.values() if block_fn.fn is not None}
    return fns, parts


def test_tab_ids_and_whatif_start(handlers):
    _, parts = handlers
    assert parts["run"].elem_id == "kv_cache-run" and parts["plot"].elem_id == "kv_cache-main-plot"
    assert "131,072 bytes" in parts["whatif_summary"].value


def test_growth_handler_streams_and_replays(handlers, smollm2):
    fns, _ = handlers
    outputs = list(fns["measure"]("What is 2+2?", "smollm2-135m-instruct", 3))  # 3 generated = 3 passes
    result, fig, summary, table, slider, prov, compare_plot = outputs[-1]
    assert prov is result.provenance and prov.kind == "measured"  # the table's badge
    assert fig.layout.meta["provenance"]["kind"] == "measured"
    assert compare_plot["visible"] is False  # no "Compare with" model picked
    assert len(result.steps) == 3 and "equals the formula" in summary and "46,080" in summary
    assert [row[5] for row in table] == [True, True, True]
    assert slider["maximum"] == 3
    replot, rows, prov = fns["replay"](result, 1)
    assert len(rows) == 1 and len(replot.data) == 2  # formula + the prefill point


def test_whatif_and_paged_handlers(handlers, smollm2):
    fns, _ = handlers
    summary, _ = fns["calculate"]("Llama-2 70B", 10_000_000, 1000, "fp16", "fp16", 0)
    assert "3.3 PB" in summary and "assumes" not in summary
    with pytest.raises(gr.Error, match="finite"):
        fns["calculate"]("Llama-2 70B", float("nan"), 1, "fp16", "fp16", None)
    preset = fns["use_preset"]("Handbook: 70B at 8K context (~40 GB)")
    assert fns["calculate"](*preset[:6])[0].count("42.9 GB") >= 1
    text, fig, rows, prov = fns["paged"]("smollm2-135m-instruct", "5, 17, 32", 16, 40)
    assert prov.kind == "simulated" and fig.layout.meta["provenance"]["kind"] == "simulated"
    assert "wasted" in text and rows[1][:3] == [1, 17, 2]
    with pytest.raises(gr.Error, match="whole numbers"):
        fns["paged"]("smollm2-135m-instruct", "5, x", 16, 40)
