"""The agents section of the Prompting & agents tab, built in a Blocks (no browser): ids, APIs, handlers' output."""
from __future__ import annotations

import json

import gradio as gr
import pytest

from components.context import AppContext
from explorer.core.config import get_limits


@pytest.fixture(scope="module")
def built():
    from components.tabs.prompting.tab import build_prompting_tab

    with gr.Blocks() as demo:
        prompt, model = gr.Textbox(), gr.Dropdown(["smollm2-135m-instruct"], value="smollm2-135m-instruct")
        parts = build_prompting_tab(AppContext(prompt, model, get_limits()))
    fns = {block_fn.fn.__name__: block_fn.fn for block_fn in demo.fns.values() if block_fn.fn is not None}
    return fns, parts


def test_ids_and_api_names(built):
    from components.tabs.prompting import SPEC

    fns, parts = built
    assert parts["agent_run"].elem_id == "agent-run" and parts["agent_steps"].elem_id == "agent-steps"
    assert {"agent", "tool", "injection", "critique"} <= set(SPEC.api_names)
    assert {"agent_api", "tool_api", "injection_api", "critique_api", "run_agent"} <= set(fns)
    assert all(name in SPEC.gpu for name in ("run_agent", "agent_api", "injection_api", "critique_api"))


def test_tool_api_and_clear_errors():
    from components.tabs.prompting import agents_section as sec

    assert sec.tool_api("calculator", {"expression": "6*7"})["result"] == 42
    assert sec.tool_api("calculator", json.dumps({"expression": "__import__('os')"}))["ok"] is False
    with pytest.raises(gr.Error, match="defence"):
        sec.injection_api(defence="magic")
    with pytest.raises(gr.Error, match="refusal_adapter"):
        sec.injection_api(model="gemma-3-270m", defence="refusal_adapter")  # no stored adapter for Gemma
    with pytest.raises(gr.Error, match="principle"):
        sec.critique_api("Why?", principle="obey")


def test_steps_markdown_shows_every_step(tiny_engine):
    from components.tabs.prompting import agent_figures as figs
    from explorer.agents import run

    result = run("What is 2+2?", engine=tiny_engine, max_steps=2, chat_template=False)
    text = figs.steps_md(result)
    assert "Step 1" in text and "Step 2" in text and "step cap" in text
    assert all(s.model_output[:20].replace("<", "&lt;") in text for s in result.steps if s.model_output)
    assert "Running the next step" in figs.steps_md(result, final=False)


def test_handlers_yield_one_value_per_output(tiny_engine, monkeypatch, tmp_path):
    """run_agent feeds one Markdown (a value, not a tuple); run_critique four outputs with a DPO file that loads."""
    from components.tabs.prompting import agents_section as sec
    from explorer.agents import critique as crit
    from explorer.agents import loop
    from explorer.lora.dpo_data import parse_preference_jsonl

    real_iter, real_critique = loop.iter_run, crit.critique
    monkeypatch.setattr(loop, "iter_run", lambda *a, **k: real_iter(a[0], None, a[2], a[3], a[4], False,
                                                                    stop=k.get("stop"), engine=tiny_engine))
    outs = list(sec.run_agent.__wrapped__(None, "What is 2+2?", ["calculator"], 2, False,
                                          progress=lambda *a, **k: None))
    final = outs[-1]
    assert isinstance(final, str) and "Step 2" in final and "No answer" in final
    monkeypatch.setattr(crit, "critique", lambda q, m, p: real_critique(q, None, p, False, engine=tiny_engine))
    monkeypatch.setattr(sec, "EXPORT_DIR", str(tmp_path))
    md, pairs, path, count = sec.run_critique.__wrapped__(None, "Why is the sky blue?", "concise",
                                                          [{"prompt": "Q", "chosen": "A.", "rejected": "A long A."}])
    assert "Judge" in md and count.startswith(f"{len(pairs)} ")
    with open(path, encoding="utf-8") as handle:
        assert parse_preference_jsonl(handle.read(), None) == pairs
