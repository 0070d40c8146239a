"""Circuits on the embedded models, each number against an independent computation: transformers' own logits,
plain hooks installed per pass through the core door (``Engine.forward(patches=...)``), and the stored table."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.circuits import run_ablate, run_dla, run_heads, run_patch
from explorer.circuits.prompts import pair
from explorer.circuits.stored import load_stored
from explorer.core.patches import PreForwardHook


def plain_logits(engine, ids, patches=()):
    return engine.forward(ids, patches=patches, logits_to_keep=1).logits[0, -1].float()


@pytest.mark.parametrize("fixture", ["smollm2", "gemma"])
def test_induction_heads_match_the_stored_table_and_output_attentions(fixture, request):
    engine = request.getfixturevalue(fixture)
    result = run_heads(engine=engine)
    stored = load_stored()[engine.name]
    top = stored["top"][0]
    assert result.scores["induction"][top["layer"], top["head"]] == pytest.approx(top["score"], abs=2e-3)
    assert top["score"] > 0.5 and stored["loss"]["top3"] > stored["loss"]["random3"] + 0.2
    # independent: transformers' output_attentions on the same sequence, the score formula written out
    out = engine.forward(list(result.token_ids), eager=True, output_attentions=True, logits_to_keep=1)
    attn = out.attentions[top["layer"]][0, top["head"]].float().numpy()
    n = result.n
    expected = np.mean([attn[q, q - n + 1] for q in range(n + 1, 2 * n + 1)])
    assert result.scores["induction"][top["layer"], top["head"]] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("fixture", ["smollm2", "gemma"])
def test_dla_sums_to_transformers_logit(fixture, request):
    engine = request.getfixturevalue(fixture)
    text = "The capital of France is the city of"
    result = run_dla(text, engine=engine)
    logits = plain_logits(engine, engine.encode(text))
    assert result.token_id == int(logits.argmax()) and result.token == "' Paris'"
    assert result.logit == pytest.approx(float(logits[result.token_id]), rel=1e-4)
    assert result.contributions.sum() == pytest.approx(result.logit, rel=1e-4)


def test_patching_agreement_pair_smollm2(smollm2):
    item = pair("agreement")
    result = run_patch(item.clean, item.corrupted, item.answer, item.wrong_answer, "resid", engine=smollm2)
    clean, corrupted = (plain_logits(smollm2, smollm2.encode(t)) for t in (item.clean, item.corrupted))
    good, bad = (smollm2.encode(t, add_special_tokens=False)[0] for t in (item.answer, item.wrong_answer))
    assert result.clean_metric == pytest.approx(float(clean[good] - clean[bad]), abs=1e-3)
    assert result.corrupted_metric == pytest.approx(float(corrupted[good] - corrupted[bad]), abs=1e-3)
    changed = [p for p, (a, b) in enumerate(zip(smollm2.encode(item.clean), smollm2.encode(item.corrupted))) if a != b]
    assert result.grid.shape == (31, 5) and result.grid[0, changed[0]] == pytest.approx(1.0, abs=1e-3)
    assert result.grid[-1, -1] == pytest.approx(1.0, abs=1e-3)
    # attribution patching is a first-order estimate; at the embeddings, where one patch changes a whole token, it is
    # known to be poor (Nanda 2023), so only its range is checked here (bench/bench_circuits.py prints it)
    print(f"attribution vs exact patching correlation: {result.correlation:.3f}")
    assert -1.0 <= result.correlation <= 1.0 and np.isfinite(result.attribution).all()


def test_head_ablation_equals_a_plain_pre_hook(smollm2):
    text = "The capital of France is the city of"
    result = run_ablate(text, ["L17H3", "L18H6"], "zero", engine=smollm2, max_new_tokens=4)
    d_head = smollm2.config.head_dim

    def zero(head):
        def hook(module, args):
            x = args[0].clone()
            x[..., head * d_head:(head + 1) * d_head] = 0
            return (x,)
        return hook

    ids = smollm2.encode(text)
    before = plain_logits(smollm2, ids)
    after = plain_logits(smollm2, ids, [PreForwardHook("model.layers.17.self_attn.o_proj", zero(3)),
                                        PreForwardHook("model.layers.18.self_attn.o_proj", zero(6))])
    p, q = torch.softmax(before.double(), -1), torch.softmax(after.double(), -1)
    assert result.kl == pytest.approx(float((p * (p.log() - q.log())).sum()), rel=1e-3, abs=1e-6)
    assert result.top1_after == repr(smollm2.tokenizer.decode([int(after.argmax())]))
