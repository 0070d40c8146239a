"""Contract for every tab in the registry (components/tabs/<key>/, one TabSpec each): adding a tab folder adds it here.

Each tab, built the way app.py builds it, returns its ``"result"`` state and every share-link setting it declares,
registers and lists its public JSON APIs, and has the ``<key>-run`` button and ``<key>-main-plot`` plot the
browser test clicks and waits on.
"""
from __future__ import annotations

import pytest

from components.registry import tab_specs

SPECS = tab_specs()


@pytest.fixture(scope="module")
def built():
    """Every tab built inside one ``gr.Blocks`` as app.py does; returns ``(demo, {key: build dict})``."""
    import gradio as gr

    from app import hide_internal_endpoints
    from components.context import AppContext
    from explorer.core.config import get_limits
    from models.registry import DEFAULT_MODEL

    parts = {}
    with gr.Blocks() as demo:
        prompt = gr.Textbox(value="The capital of France is")
        model = gr.Dropdown(choices=[DEFAULT_MODEL], value=DEFAULT_MODEL, allow_custom_value=True)
        ctx = AppContext(prompt=prompt, model=model, limits=get_limits())
        with gr.Tabs() as tabs:
            ctx.tabs = tabs
            for spec in SPECS:
                with gr.Tab(spec.label, id=spec.key):
                    parts[spec.key] = spec.build(ctx)
                    ctx.extra[spec.key] = parts[spec.key]
    hide_internal_endpoints(demo)
    return demo, parts


def test_keys_are_unique_and_ordered():
    keys = [spec.key for spec in SPECS]
    assert len(keys) == len(set(keys)) and keys
    assert [s.order for s in SPECS] == sorted(s.order for s in SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
def test_build_returns_result_and_share_params(built, spec):
    import gradio as gr

    _, parts = built
    assert isinstance(parts[spec.key].get("result"), gr.State), f"{spec.key}: build() must return 'result' (gr.State)"
    missing = [name for name in spec.share_params if name not in parts[spec.key]]
    assert not missing, f"{spec.key}: share_params {missing} are not in build()'s dict"


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
def test_api_names_are_registered_and_listed(built, spec):
    from components.registry import public_api_names

    demo, _ = built
    endpoints = {fn.api_name: fn for fn in demo.fns.values()}
    for name in spec.api_names:
        assert name in endpoints, f"{spec.key}: gr.api(..., api_name={name!r}) is not registered"
        assert getattr(endpoints[name], "api_visibility", "public") == "public", f"/{name} is not listed"
        assert name in public_api_names()


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
def test_run_button_and_main_plot_exist(built, spec):
    import gradio as gr

    demo, _ = built
    by_id = {getattr(block, "elem_id", None): block for block in demo.blocks.values()}
    assert isinstance(by_id.get(f"{spec.key}-run"), gr.Button), f"no button with elem_id '{spec.key}-run'"
    assert isinstance(by_id.get(f"{spec.key}-main-plot"), gr.Plot), f"no gr.Plot with elem_id '{spec.key}-main-plot'"


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
def test_gpu_sizers_fit_zero_gpu(spec):
    from explorer.core.config import Limits

    from components.gpu_budget import clamp

    for name, sizer in spec.gpu.items():  # sized from the call's arguments; defaults when none are read
        assert 0 < clamp(sizer(Limits(), {}), Limits()) <= Limits().zerogpu_max_seconds, name
