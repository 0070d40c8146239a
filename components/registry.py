"""The tab registry: every tab describes itself with one :class:`TabSpec`.

A tab is a package ``components/tabs/<key>/`` whose ``__init__.py`` defines ``SPEC = TabSpec(...)``;
the layout and thin handlers live in ``tab.py`` and the figures (result -> plotly, no torch) in
``figures.py`` beside it. Adding a folder adds the tab: app.py, the share links, the public API list
and the ZeroGPU wrapper all read the specs, so nothing else needs editing.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class TabSpec:
    """Everything the app needs to show, share, test and serve one tab.

    Attributes:
        key: short id (``"decoding"``), used in share links (``?tab=decoding``) and element ids (``tab-decoding``).
        label: the tab's title on the page.
        order: position on the page (ascending).
        build: ``build(ctx) -> dict`` builds the tab inside the current ``gr.Tab`` and returns its named
            components (``"result"``: the ``gr.State`` holding the last result, used by the JSON download).
        api_names: the public JSON APIs (``gr.api`` names) this tab registers; listed on the API page.
        share_params: names (keys of ``build``'s dict) of the settings kept in a share link.
        gpu: ``{handler name: sizer}`` for the handlers that run a model (function name or ``api_name``); on a
            ZeroGPU Space only these run inside ``spaces.GPU``, each asking for ``sizer(limits, args)`` seconds
            computed from that call's arguments (``args``: ``{parameter name: value}``; sizers are built with
            :mod:`components.gpu_budget`, capped at ``Limits.zerogpu_max_seconds``). Empty for a tab that never
            runs a model; tokenizing, formulas, re-renders from a stored result and stored tables are left out.
        cached: handlers (``api_name`` or function name) whose result depends only on their inputs; identical
            requests are then computed once and served from the result cache (``components/serving.py``).
    """

    key: str
    label: str
    order: int
    build: Callable[[Any], dict]
    api_names: tuple[str, ...] = ()
    share_params: tuple[str, ...] = ()
    gpu: Mapping[str, Callable[[Any, Mapping[str, Any]], float]] = field(default_factory=dict, hash=False)
    cached: tuple[str, ...] = ()


def tab_specs() -> list[TabSpec]:
    """Every tab's :class:`TabSpec`, found under ``components/tabs/``, in page order.

    Raises:
        TypeError: a tab package has no ``SPEC`` of type :class:`TabSpec`.
    """
    tabs_pkg = importlib.import_module("components.tabs")  # plugins: each tab imports TabSpec from here

    specs = []
    for info in pkgutil.iter_modules(tabs_pkg.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"components.tabs.{info.name}")
        spec = getattr(module, "SPEC", None)
        if not isinstance(spec, TabSpec):
            raise TypeError(f"components/tabs/{info.name}/__init__.py must define SPEC = TabSpec(...)")
        specs.append(spec)
    return sorted(specs, key=lambda s: (s.order, s.key))


def public_api_names() -> set[str]:
    """The documented JSON API names: the union of every tab's ``api_names``."""
    return {name for spec in tab_specs() for name in spec.api_names}


def share_params() -> dict[str, list[str]]:
    """``{tab key: [setting names kept in share links]}`` for every tab."""
    return {spec.key: list(spec.share_params) for spec in tab_specs()}
