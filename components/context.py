"""What every tab receives: the shared prompt bar, the model picker and the limits."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from explorer.core.config import Limits


@dataclass
class AppContext:
    """Components shared by all tabs, passed to every ``build_<tab>_tab(ctx)``.

    Attributes:
        prompt: the ``gr.Textbox`` at the top of the page; every tab reads it.
        model: the ``gr.Dropdown`` model picker (embedded names or a typed Hub id).
        compare_model: the "Compare with" ``gr.Dropdown`` (``components.compare``): a second decoder model a tab
            may run on the same prompt beside ``model``; its value ``"(none)"`` means no comparison.
        limits: the active :class:`explorer.core.config.Limits`.
        tabs: the ``gr.Tabs`` container (set once the tabs are built).
        extra: components a tab exposes to others or to the app (name -> component).
        page_level: components a tab creates with ``render=False`` that must mount with the page rather than with
            the tab (Gradio mounts a tab's contents only when it is first opened): a ``gr.BrowserState`` read by
            a load handler is empty until mounted. ``app.py`` renders them at the root, after the tabs.
    """

    prompt: Any
    model: Any
    limits: Limits
    compare_model: Any = None
    tabs: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    page_level: list[Any] = field(default_factory=list)
