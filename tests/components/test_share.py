"""Shareable views and scenes: URL parameters -> component values, result -> JSON."""
import json
from dataclasses import dataclass

import gradio as gr
import numpy as np

from components import scenes
from components import share


def test_convert_by_component_type():
    with gr.Blocks():
        slider = gr.Slider(0, 29, step=1)
        checkbox = gr.Checkbox()
        group = gr.CheckboxGroup(["a", "b", "c"])
        dropdown = gr.Dropdown(["x", "y"])
        number = gr.Number(precision=0)
    assert share._convert(slider, "7") == 7 and share._convert(slider, "99") == 29
    assert share._convert(slider, "nan") is None and share._convert(slider, "abc") is None
    assert share._convert(checkbox, "true") is True and share._convert(checkbox, "0") is False
    assert share._convert(group, "a,c,zzz") == ["a", "c"]
    assert share._convert(dropdown, "y") == "y" and share._convert(dropdown, "evil") is None
    assert share._convert(number, "12.0") == 12


def test_apply_params_selects_tab_and_fills_values():
    with gr.Blocks():
        prompt = gr.Textbox()
        layer = gr.Slider(0, 29, step=1)
    pairs = [("prompt", prompt), ("attention.layer", layer)]
    updates = share.apply_params(pairs, {"tab": "attention", "prompt": "hi", "attention.layer": "4"}, ["tokens", "attention"])
    assert updates[0]["selected"] == "attention" if isinstance(updates[0], dict) else updates[0].selected == "attention"
    assert updates[1]["value"] == "hi" and updates[2]["value"] == 4
    ignored = share.apply_params(pairs, {"tab": "nope"}, ["tokens"])
    assert ignored[1] == gr.update() and ignored[2] == gr.update()


def test_long_prompt_is_cut_in_urls():
    with gr.Blocks():
        prompt = gr.Textbox()
    updates = share.apply_params([("prompt", prompt)], {"prompt": "x" * 10_000}, [])
    assert len(updates[1]["value"]) == share.MAX_URL_PROMPT_CHARS


def test_result_json_handles_numpy_and_dataclasses(tmp_path):
    @dataclass(frozen=True)
    class Result:
        attn: np.ndarray
        name: str
        score: float

    path = share.result_file(Result(np.array([[0.5, np.float32(0.25)]], dtype=np.float32), "x", float("nan")), "demo")
    data = json.load(open(path))
    assert data == {"attn": [[0.5, 0.25]], "name": "x", "score": None}


def test_scenes_cover_every_tab():
    from components.registry import tab_specs

    covered = {s.params["tab"] for s in scenes.SCENES}
    assert covered == {spec.key for spec in tab_specs()}
    assert all(s.params.get("prompt") for s in scenes.SCENES)


def test_add_download_refuses_a_tab_without_a_result_state():
    import pytest

    with gr.Blocks():
        with pytest.raises(TypeError, match="result"):
            share.add_download("nothing", {"run": gr.Button("Run")})
        parts = {"result": gr.State(None)}
        share.add_download("something", parts)
    assert isinstance(parts["download"], gr.DownloadButton)


def test_every_tab_has_a_download_button():
    from app import build_demo
    from components.registry import tab_specs

    demo = build_demo()
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    missing = [spec.key for spec in tab_specs() if f"{spec.key}-download" not in ids]
    assert not missing, f"tabs without 'Download result (JSON)': {missing}"
