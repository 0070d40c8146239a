"""Contract, for every tab in the registry: every figure and table shows where its numbers come from (issue 20.3).

Checked on the page app.py builds (no browser, no model run), following the DOM conventions of
``components/badge.py``:

- every ``gr.Dataframe`` is a result table in a ``prov-badged`` column whose first child is a badge slot, or an
  input table marked ``prov-input``; every event that fills a badged table also fills its badge;
- in ``tab.py``, every call of a figure builder of the tab (a function of its figure modules returning a plotly
  figure; placeholders, ``empty_figure`` and a builder called with ``None``, aside) is the figure argument of
  ``stamp(...)``, so the figure carries its result's provenance;
- every plot drawn with the page (stored tables, formulas) already shows a badge of one of the five kinds.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil

import pytest

from components.badge import BADGED, INPUT_TABLE, KIND_NAMES, NAME
from components.registry import tab_specs

SPECS = tab_specs()
PLACEHOLDERS = {"empty_figure"}


@pytest.fixture(scope="module")
def demo():
    from app import build_demo

    return build_demo()


def _tab_blocks(demo, key: str) -> list:
    import gradio as gr

    tab = next(b for b in demo.blocks.values() if isinstance(b, gr.Tab) and b.id == key)
    found, todo = [], [tab]
    while todo:
        block = todo.pop()
        found.append(block)
        todo.extend(getattr(block, "children", []) or [])
    return found


def _badge_of(table):
    """The badge slot of a badged table (first child of its ``prov-badged`` column), or ``None``."""
    parent = getattr(table, "parent", None)
    if parent is None or BADGED not in (getattr(parent, "elem_classes", None) or []):
        return None
    first = parent.children[0]
    return first if f"{NAME}-slot" in (first.elem_classes or []) else None


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
def test_result_tables_sit_beside_a_badge_filled_with_them(demo, spec):
    import gradio as gr

    tables = [b for b in _tab_blocks(demo, spec.key) if isinstance(b, gr.Dataframe)]
    badges = {}
    for table in tables:
        if INPUT_TABLE in (table.elem_classes or []):
            continue
        badges[table._id] = _badge_of(table)
        assert badges[table._id] is not None, (
            f"{spec.key}: table {table.label!r} is neither in a '{BADGED}' column with a badge slot "
            f"(components.badge.badged_table) nor marked '{INPUT_TABLE}'")
    for block_fn in demo.fns.values():
        outputs = {o._id for o in block_fn.outputs}
        for table_id, slot in badges.items():
            if table_id in outputs:
                name = getattr(block_fn.fn, "__name__", block_fn.fn)
                assert slot._id in outputs, f"{spec.key}: handler {name} fills a table but not its badge"


def _figure_builders(key: str) -> set[str]:
    """Names of the functions in ``components/tabs/<key>/`` (other than ``tab.py``) that return a plotly figure."""
    package = importlib.import_module(f"components.tabs.{key}")
    names = set()
    for info in pkgutil.iter_modules(package.__path__):
        if info.name == "tab":
            continue
        module = importlib.import_module(f"components.tabs.{key}.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and "Figure" in str(fn.__annotations__.get("return", "")):
                names.add(name)
    return names - PLACEHOLDERS


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
def test_every_figure_a_handler_draws_is_stamped_with_a_provenance(spec):
    builders = _figure_builders(spec.key)
    assert builders, f"{spec.key}: no figure builders found"
    source = inspect.getsource(importlib.import_module(f"components.tabs.{spec.key}.tab"))
    tree = ast.parse(source)
    stamped, drawn = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called_name(node) == "stamp" and node.args:
            stamped.add(id(node.args[0]))
        if isinstance(node, ast.Call) and _called_name(node) in builders:
            drawn.append(node)
    assert drawn, f"{spec.key}: tab.py draws no figure"
    placeholder = lambda n: n.args and all(isinstance(a, ast.Constant) and a.value is None for a in n.args)  # noqa: E731
    unstamped = [f"line {n.lineno}: {_called_name(n)}" for n in drawn if id(n) not in stamped and not placeholder(n)]
    assert not unstamped, f"{spec.key}: figures drawn without stamp(figure, provenance): {unstamped}"


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
def test_plots_drawn_with_the_page_show_a_badge(demo, spec):
    import gradio as gr

    for plot in (b for b in _tab_blocks(demo, spec.key) if isinstance(b, gr.Plot)):
        value = plot.value if isinstance(plot.value, dict) else getattr(plot.value, "model_dump", lambda: None)()
        if not value or not value.get("plot"):
            continue
        fig = json.loads(value["plot"]) if isinstance(value["plot"], str) else value["plot"]
        if not fig.get("data"):
            continue  # a placeholder without numbers
        marks = [a["text"] for a in fig.get("layout", {}).get("annotations", []) if a.get("name") == NAME]
        assert len(marks) == 1 and marks[0].split("</b>")[0].removeprefix("<b>") in KIND_NAMES, (
            f"{spec.key}: plot {plot.label!r} is drawn with the page without a provenance badge")
