"""Attention tab handlers: one model run per capture, every view re-rendered from the stored result."""
from __future__ import annotations

import gradio as gr
import numpy as np
import pytest

from components.tabs.attention import tab as attention_tab
from components.context import AppContext
from explorer import attention
from explorer.core.config import get_limits


@pytest.fixture()
def counted_run(monkeypatch, tiny_engine):
    calls = []
    real_run = attention.run

    def run(text, model=None, **kwargs):
        calls.append(text)
        return real_run(text, engine=tiny_engine, **kwargs)

    monkeypatch.setattr(attention, "run", run)
    return calls


def test_views_rerender_from_state_without_rerunning(counted_run):
    out = attention_tab._capture("The capital of France is", "tiny", "entropy", False, 5, 9, 0, 0,
                                 progress=lambda *a, **k: None)
    result, summary, overview, layer, head = out[:5]
    assert len(counted_run) == 1
    assert result.attn.dtype == np.float16  # kept compact in the session
    assert "4 query heads" in summary and "KV 1 ← heads 2, 3" in summary
    assert overview.layout.meta["stat_trace"] == 3
    assert (layer.maximum, layer.value, head.maximum, head.value) == (1, 1, 3, 3)  # clipped to the tiny model
    for mode in ("head", "mean over heads", "mean over KV group", "rollout"):
        detail, lines = attention_tab._detail(result, mode, 1, 2, True, 0.5)
        assert "renormalised" in detail.layout.title.text
    ab = attention_tab._ab(result, "head", 0, 1, 1, 3, False, 0.5)
    assert "layer 1 · head 3" in ab.layout.annotations[1].text
    assert attention_tab._overview(result, "previous_token", True).data[3].z.shape == (2, 4)
    picked_layer, picked_head = attention_tab._pick("1,3,1700000000", result)
    assert (picked_layer.value, picked_head.value) == (1, 3)
    assert len(counted_run) == 1  # nothing above ran the model again


def test_handlers_without_a_result_do_nothing():
    assert isinstance(attention_tab._overview(None, "entropy", False), type(gr.skip()))
    assert all(isinstance(x, type(gr.skip())) for x in attention_tab._detail(None, "head", 0, 0, False, 0.5))
    assert isinstance(attention_tab._scrub(None, "head", 0, 0, False, 0), type(gr.skip()))


def test_errors_become_messages(counted_run):
    with pytest.raises(gr.Error, match="Type a prompt"):
        attention_tab._capture("  ", "tiny", "entropy", False, 0, 0, 0, 0, progress=lambda *a, **k: None)
    with pytest.raises(gr.Error, match="bidirectional encoder"):
        list(attention_tab._generate("Hi", "all-minilm-l6-v2", 2, False, "head", 0, 0, False,
                                     progress=gr.Progress()))


def test_tab_builds_with_api():
    with gr.Blocks() as demo:
        ctx = AppContext(prompt=gr.Textbox(), model=gr.Dropdown(["smollm2-135m-instruct"]), limits=get_limits())
        parts = attention_tab.build_attention_tab(ctx)
    assert parts["run"].elem_id == "attention-run" and parts["overview"].elem_id == "attention-main-plot"
    assert "attention" in {dep.api_name for dep in demo.fns.values()}
