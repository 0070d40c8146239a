"""Figures follow the page theme: every plot of the app is theme-neutral, dark text is recoloured (issue 13.7)."""
from __future__ import annotations

import json

import gradio as gr
import plotly.graph_objects as go

from components import theme


def _white_figure():
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    fig.update_layout(template="plotly_white", title="t")
    return fig


def test_neutral_makes_backgrounds_transparent_and_grid_grey():
    fig = theme.neutral(_white_figure())
    assert fig.layout.paper_bgcolor == theme.TRANSPARENT and fig.layout.plot_bgcolor == theme.TRANSPARENT
    assert fig.layout.xaxis.gridcolor == theme.GRID and fig.layout.yaxis.gridcolor == theme.GRID


def test_every_plot_of_the_app_is_theme_neutral():
    from app import build_demo

    demo = build_demo()
    plots = [b for b in demo.blocks.values() if isinstance(b, gr.Plot)]
    assert len(plots) >= 7
    for block in plots:
        data = json.loads(block.postprocess(_white_figure()).plot)
        assert data["layout"]["paper_bgcolor"] == theme.TRANSPARENT, block.elem_id
        assert data["layout"]["plot_bgcolor"] == theme.TRANSPARENT, block.elem_id
        initial = block.value
        if initial is not None and getattr(initial, "type", None) == "plotly":  # figures shown before any run
            assert json.loads(initial.plot)["layout"]["paper_bgcolor"] == theme.TRANSPARENT, block.elem_id


def test_dark_page_css_recolours_figure_text():
    from app import CSS

    assert theme.CSS in CSS
    assert "body.dark .js-plotly-plot .main-svg .xtick text" in theme.CSS and theme.DARK_TEXT in theme.CSS
