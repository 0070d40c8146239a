"""Figures that follow the page's light/dark theme, in one place.

Every ``gr.Plot`` of the app passes its plotly figures through :func:`neutral` (installed by
:func:`theme_plots` once the page is built, so no figure builder needs to know about themes): the paper and
plot backgrounds become transparent, so a figure takes the page's background, and grid and axis lines a
grey that reads on white and on near-black. The light/dark switch (``components.share``) toggles
``body.dark``; :data:`CSS` then recolours the figures' axis, title, legend and colour-bar text for the dark
page. Presentation mode enlarges the same text (``share.CSS``). Text drawn on coloured marks (heatmap
cells, bar labels) keeps the colour its figure chose, since it sits on the mark, not on the page.
"""
from __future__ import annotations

import functools
import json

from components.badge import BADGE_COLOURS  # one colour per provenance kind, defined with the badge

TRANSPARENT = "rgba(0,0,0,0)"
GRID = "rgba(128,128,128,0.30)"
DARK_TEXT = "#e5e7eb"  # text colour on the dark page (Tailwind gray-200, as Gradio's dark theme)

_TEXT = [".xtick text", ".ytick text", ".g-xtitle text", ".g-ytitle text", ".gtitle", ".legendtext",
         ".legendtitletext", ".colorbar text", ".cbtitle text", ".annotation-text", ".g-x2title text",
         ".g-y2title text"]
CSS = ("body.dark .js-plotly-plot .main-svg " + ", body.dark .js-plotly-plot .main-svg ".join(_TEXT)
       + f" {{ fill: {DARK_TEXT} !important; }}\n"
       "body.dark .js-plotly-plot .modebar-btn path { fill: #9ca3af !important; }\n"
       ".prov-badge { display: inline-block; font-size: 0.75rem; line-height: 1.3; padding: 0 0.4em;"
       " border: 1px solid currentColor; border-radius: 0.3em; cursor: help; }\n"
       ".prov-badge-slot { min-height: 0 !important; }\n"
       + "".join(f".prov-{kind} {{ color: {colour}; }}\n" for kind, colour in BADGE_COLOURS.items()))


def neutral(fig):
    """Make a plotly figure theme-neutral in place (transparent backgrounds, grey grid); returns it."""
    fig.update_layout(paper_bgcolor=TRANSPARENT, plot_bgcolor=TRANSPARENT)
    fig.update_xaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID)
    fig.update_yaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID)
    return fig


def _is_plotly(value) -> bool:
    return hasattr(value, "update_layout") and hasattr(value, "to_json")


@functools.lru_cache(maxsize=None)
def themed_plot_class():
    """``gr.Plot`` whose ``postprocess`` passes plotly figures through :func:`neutral` and
    ``components.badge.draw``. A subclass, not a patched instance, because gradio rebuilds a session's copy
    of a component from its class after a ``gr.update`` (a streaming handler's heartbeat), which would drop an
    instance's patched ``postprocess``. ``is_template``: the page draws it with ``gr.Plot``'s frontend."""
    import gradio as gr

    from components.badge import draw

    class ThemedPlot(gr.Plot):
        is_template = True

        def postprocess(self, value):
            return super().postprocess(draw(neutral(value)) if _is_plotly(value) else value)

    return ThemedPlot


def theme_plots(demo) -> int:
    """Route every ``gr.Plot`` of ``demo`` through :func:`neutral` and ``components.badge.draw`` (its initial
    value and every update: a figure stamped with a provenance shows its badge), by making it a
    :func:`themed_plot_class`.

    Returns the number of plots themed.
    """
    import gradio as gr
    import plotly.io as pio

    themed = themed_plot_class()
    count = 0
    for block in demo.blocks.values():
        if not isinstance(block, gr.Plot):
            continue
        block.__class__ = themed
        initial = getattr(block, "value", None)
        plot = getattr(initial, "plot", None) if not isinstance(initial, dict) else initial.get("plot")
        kind = getattr(initial, "type", None) if not isinstance(initial, dict) else initial.get("type")
        if plot and kind == "plotly":
            block.value = block.postprocess(pio.from_json(plot if isinstance(plot, str) else json.dumps(plot)))
        count += 1
    return count
