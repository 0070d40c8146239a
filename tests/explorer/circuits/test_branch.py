"""Branching (``/branch``) on the tiny model against transformers' ``generate`` on the forced prefix, the greedy
continuation of ``/decode``, seeded sampling through the Decoding lens's own loop, and the bad-input rules."""
from __future__ import annotations

import pytest
import torch

from explorer.circuits.branch import BranchTrees, compare, run_branch
from explorer.decoding import parse_strategy
from explorer.decoding import run as run_decode
from explorer.decoding.sampling import token_loop

TEXT = "Once upon a time"


def generate(engine, ids, n):
    out = engine.model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, min_new_tokens=n)
    return out[0, len(ids):].tolist()


def test_branch_equals_generate_on_the_forced_prefix(tiny_engine):
    trees = BranchTrees()
    prompt = tiny_engine.encode(TEXT)
    base = generate(tiny_engine, prompt, 4)
    node = run_branch(TEXT, position=3, token_id=500, max_new_tokens=6, chat_template=False, owner="a",
                      engine=tiny_engine, trees=trees)
    assert list(node.context) == prompt + base[:3]
    assert node.tokens[0] == 500
    assert list(node.tokens[1:]) == generate(tiny_engine, prompt + base[:3] + [500], 5)
    api = node.to_api()
    assert [t["id"] for t in api["tokens"]] == list(node.tokens) and api["parent"] is None
    with torch.no_grad():
        logits = tiny_engine.model(torch.tensor([prompt + base[:3]])).logits[0, -1].double()
    assert api["tokens"][0]["p"] == pytest.approx(float(torch.softmax(logits, -1)[500]), rel=1e-4)


def test_branch_with_the_greedy_token_equals_decode(tiny_engine):
    decoded = run_decode(TEXT, strategies=[{"name": "greedy"}], max_new_tokens=8, engine=tiny_engine)
    ids = [int(i) for i in decoded.runs[0].token_ids]
    node = run_branch(TEXT, position=2, token_id=ids[2], max_new_tokens=6, engine=tiny_engine, owner="a",
                      trees=BranchTrees())
    assert list(node.tokens) == ids[2:8]


def test_sampled_branch_uses_the_column_seed(tiny_engine):
    strategy = {"name": "sampling", "temperature": 0.9, "top_k": 20, "seed": 7}
    node = run_branch(TEXT, position=0, token_id=42, strategy=strategy, max_new_tokens=5, chat_template=False,
                      engine=tiny_engine, owner="a", trees=BranchTrees())
    parsed = parse_strategy(strategy, int(tiny_engine.config.vocab_size), 8)
    expected = token_loop(tiny_engine, tiny_engine.encode(TEXT) + [42], parsed, 4, record=False)[0]
    assert list(node.tokens) == [42] + expected


def test_tree_children_compare_and_cap(tiny_engine, monkeypatch):
    trees = BranchTrees()
    root = run_branch(TEXT, position=1, token_id=300, max_new_tokens=4, engine=tiny_engine, owner="a", trees=trees)
    child = run_branch(TEXT, position=2, token_id=301, max_new_tokens=3, parent=root.branch_id,
                       engine=tiny_engine, owner="a", trees=trees)
    assert child.parent == root.branch_id
    assert child.generated[:3] == root.generated[:3] and child.generated[3] == 301
    rows = compare(root, child)
    assert [r["same"] for r in rows[:3]] == [True, True, True] and rows[3]["same"] is False
    with pytest.raises(ValueError, match="parent"):
        run_branch(TEXT, position=0, token_id=5, parent=root.branch_id, engine=tiny_engine, owner="b", trees=trees)
    from explorer.core import config
    monkeypatch.setattr(config, "get_limits", lambda: config.Limits(max_branches=2))
    monkeypatch.setattr("explorer.circuits.branch.get_limits", lambda: config.Limits(max_branches=2))
    third = run_branch(TEXT, position=0, token_id=302, max_new_tokens=2, engine=tiny_engine, owner="a", trees=trees)
    assert any("pruned" in n for n in third.notices)
    assert [n.branch_id for n in trees.nodes("a")] == [child.branch_id, third.branch_id]
    trees.forget("a")
    assert trees.nodes("a") == []


def test_bad_input(tiny_engine):
    trees = BranchTrees()
    rows = tiny_engine.model.get_input_embeddings().weight.shape[0]
    with pytest.raises(ValueError, match="token_id"):
        run_branch(TEXT, token_id=rows, engine=tiny_engine, trees=trees)
    with pytest.raises(ValueError, match="token_id"):
        run_branch(TEXT, token_id=2, engine=tiny_engine, trees=trees)  # the tiny model's end-of-sequence id
    with pytest.raises(ValueError, match="position"):
        run_branch(TEXT, position=-1, token_id=5, engine=tiny_engine, trees=trees)
    with pytest.raises(ValueError, match="parent"):
        run_branch(TEXT, token_id=5, parent="nope", engine=tiny_engine, trees=trees)
    with pytest.raises(ValueError, match="strategy"):
        run_branch(TEXT, token_id=5, strategy={"name": "beam"}, engine=tiny_engine, trees=trees)
    with pytest.raises(ValueError, match="text"):
        run_branch("", token_id=5, engine=tiny_engine, trees=trees)
