"""The "continue from here" panel on the tiny model: a fork from Next token's exact prefix ids equals transformers'
``generate`` after the forced token; a fork from a Decoding column's step (its strategy dict, replayed) with the
column's own token continues as the column did; the tree figure puts each branch one level right of its parent;
bad prefix ids and an empty panel are clear messages."""
from __future__ import annotations

import pytest
import torch

from components import branching
from components.branch_figures import branch_tree_figure
from components.tabs.decoding.tab import _alternatives, column_strategy
from explorer.circuits.branch import TREES, run_branch
from explorer.decoding import run as run_decode

TEXT = "Once upon a time"


class Event:
    def __init__(self, index):
        self.index = index


class Request:
    session_hash = "panel-test"


@pytest.fixture(autouse=True)
def tiny_default(tiny_engine, monkeypatch):
    """Route the panel's model name to the tiny engine."""
    import explorer.circuits.branch as br

    monkeypatch.setattr(br, "get_engine", lambda model=None: tiny_engine)
    yield
    TREES.forget("panel-test")


def test_fork_on_exact_prefix_ids_equals_generate(tiny_engine):
    ids = tiny_engine.encode(TEXT + " there")
    prefix = ids[:3]
    state, prov, rows = branching.offer({"text": "prefix", "model": "tiny", "chat": False, "position": 0,
                                         "prompt_ids": prefix}, [(500, "x", 0.5), (42, "y", 0.2)], None)
    assert [r[2] for r in rows] == [500, 42] and state["top"] == [500, 42]
    text, fig, first, second = branching.on_select(state, 5, Event([1, 0]), Request())
    node = TREES.nodes("panel-test")[-1]
    with torch.no_grad():
        ref = tiny_engine.model.generate(torch.tensor([prefix + [42]]), max_new_tokens=4, do_sample=False,
                                         min_new_tokens=4)[0, len(prefix) + 1:].tolist()
    assert node.tokens[0] == 42 and list(node.tokens[1:]) == ref and list(node.context) == prefix
    assert "MEASURED" in text and node.branch_id in text
    assert fig.data[-1].x == (0,)  # one branch at depth 0, joined to its prompt at x = -1
    with pytest.raises(ValueError, match="prompt_ids"):
        run_branch("p", token_id=5, prompt_ids=[10 ** 9], engine=tiny_engine)
    with pytest.raises(ValueError, match="position"):
        run_branch("p", token_id=5, position=1, prompt_ids=prefix, engine=tiny_engine)
    with pytest.raises(ValueError, match="Nothing to continue"):
        branching.on_select(None, 5, Event([0, 0]), Request())


def test_decoding_step_fork_continues_the_column(tiny_engine):
    result = run_decode(TEXT, strategies=[{"name": "greedy"}], max_new_tokens=8, engine=tiny_engine)
    run = result.runs[0]
    state, prov, rows = _alternatives(result, 0, 3, TEXT)  # step slider 3 = generated position 2
    assert state["position"] == 2 and state["strategy"] == column_strategy(run) and state["chat"] is True
    assert state["top"][0] == int(run.token_ids[2])  # greedy: the column's token is the most probable
    branching.on_select(state, 5, Event([0, 0]), Request())
    node = TREES.nodes("panel-test")[-1]
    assert list(node.tokens) == [int(t) for t in run.token_ids[2:7]]


def test_tree_figure_depths(tiny_engine):
    a = run_branch(TEXT, token_id=500, max_new_tokens=2, owner="panel-test", engine=tiny_engine, chat_template=False)
    b = run_branch(TEXT, token_id=42, position=1, parent=a.branch_id, max_new_tokens=2, owner="panel-test",
                   engine=tiny_engine, chat_template=False)
    fig = branch_tree_figure(TREES.nodes("panel-test"))
    assert list(fig.data[-1].x) == [0, 1]  # the child sits one level right of its parent
    assert fig.data[-1].y[0] > fig.data[-1].y[1] and b.parent == a.branch_id
    assert "No branches yet" in branch_tree_figure([]).layout.annotations[0].text


def test_the_page_frees_its_tree_on_unload(tiny_engine):
    import app
    from components.tabs.circuits.branch_ui import _free_branches

    demo = app.build_demo()
    assert any(getattr(f.fn, "__name__", "") == "_free_branches" for f in demo.fns.values())
    run_branch(TEXT, token_id=500, max_new_tokens=1, owner="panel-test", engine=tiny_engine, chat_template=False)
    _free_branches(Request())
    assert TREES.nodes("panel-test") == []
