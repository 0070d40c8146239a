"""Steering vectors on the tiny model against plain forward hooks on a copy: the vector is the mean difference of
block outputs, the per-pass hook adds exactly ``strength × layer_norm × v/‖v‖``, strength 0 equals the unsteered
generation, a parallel unsteered user is unaffected, and the shared model is unchanged."""
from __future__ import annotations

import copy
import hashlib
import threading

import pytest
import torch

from explorer.circuits.steering import generate, run_steer, steering_vector

POS, NEG = ["I love it, wonderful", "happy days"], ["I hate it, awful", "sad days indeed"]
PROMPT = "The film was"


def state_hash(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def plain_outputs(model, ids, layer, add=None):
    """Block ``layer``'s output ``(n, d)`` and the logits, from a deep copy with a plain register_forward_hook."""
    seen = {}

    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if add is not None:
            hidden = hidden + add
        seen["out"] = hidden[0].clone()
        return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden

    handle = model.model.layers[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
    finally:
        handle.remove()
    return seen["out"], logits


def test_vector_is_the_plain_hook_mean_difference(tiny_engine):
    vector = steering_vector(tiny_engine, POS, NEG, 1)
    ref = copy.deepcopy(tiny_engine.model)
    pos = torch.cat([plain_outputs(ref, tiny_engine.encode(t), 1)[0] for t in POS])
    neg = torch.cat([plain_outputs(ref, tiny_engine.encode(t), 1)[0] for t in NEG])
    torch.testing.assert_close(vector.vector, pos.mean(0) - neg.mean(0), rtol=1e-5, atol=1e-6)
    rest = [plain_outputs(ref, tiny_engine.encode(t), 1)[0][1:] for t in POS + NEG]
    assert vector.layer_norm == pytest.approx(float(torch.cat(rest).norm(dim=-1).mean()), rel=1e-5)


def test_hook_adds_exactly_the_scaled_vector(tiny_engine):
    vector = steering_vector(tiny_engine, POS, NEG, 0)
    ids = tiny_engine.encode(PROMPT)
    delta = vector.added(0.7)
    assert float(delta.norm()) == pytest.approx(0.7 * vector.layer_norm, rel=1e-5)
    ref = copy.deepcopy(tiny_engine.model)
    _, want = plain_outputs(ref, ids, 0, add=delta)
    got = tiny_engine.forward(ids, patches=[vector.patch(0.7)]).logits[0]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    base = tiny_engine.forward(ids).logits[0]
    assert not torch.allclose(base, got)


def test_strength_zero_equals_unsteered_and_model_unchanged(tiny_engine):
    before = state_hash(tiny_engine.model)
    hooks = {n: dict(m._forward_hooks) for n, m in tiny_engine.model.named_modules()}
    result = run_steer(positive=POS, negative=NEG, layer=1, strength=0.0, prompt=PROMPT, max_new_tokens=8,
                       engine=tiny_engine)
    assert result.steered_ids == result.unsteered_ids
    ids = tiny_engine.encode(PROMPT)
    with torch.no_grad():
        ref = tiny_engine.model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, min_new_tokens=8)
    assert list(result.unsteered_ids) == ref[0, len(ids):].tolist()
    strong = run_steer(positive=POS, negative=NEG, layer=1, strength=8.0, prompt=PROMPT, max_new_tokens=8,
                       seed=3, engine=tiny_engine)
    assert strong.steered_ids != strong.unsteered_ids
    api = strong.to_api()
    assert set(api) == {"vector_norm", "layer_norm", "unsteered", "steered", "top_tokens", "notices"}
    assert len(api["top_tokens"]) == 10 and api["vector_norm"] > 0
    assert state_hash(tiny_engine.model) == before
    assert {n: dict(m._forward_hooks) for n, m in tiny_engine.model.named_modules()} == hooks


def test_parallel_unsteered_user_is_unaffected(tiny_engine):
    ids = tiny_engine.encode(PROMPT)
    expected = generate(tiny_engine, ids, 12)
    vector = steering_vector(tiny_engine, POS, NEG, 1)
    out = {}

    def steered():
        for _ in range(3):
            out["steered"] = generate(tiny_engine, ids, 12, [vector.patch(20.0)])

    def plain():
        out["plain"] = [generate(tiny_engine, ids, 12) for _ in range(3)]

    threads = [threading.Thread(target=steered), threading.Thread(target=plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p == expected for p in out["plain"]) and out["steered"] != expected


def test_bad_input(tiny_engine):
    with pytest.raises(ValueError, match="negative"):
        run_steer(positive=POS, negative=["", " "], prompt=PROMPT, layer=0, engine=tiny_engine)
    with pytest.raises(ValueError, match="layer"):
        run_steer(positive=POS, negative=NEG, prompt=PROMPT, layer=2, engine=tiny_engine)
    with pytest.raises(ValueError, match="strength"):
        run_steer(positive=POS, negative=NEG, prompt=PROMPT, layer=0, strength=float("nan"), engine=tiny_engine)
    with pytest.raises(ValueError, match="strength"):
        run_steer(positive=POS, negative=NEG, prompt=PROMPT, layer=0, strength=1e30, engine=tiny_engine)
    with pytest.raises(ValueError, match="prompt"):
        run_steer(positive=POS, negative=NEG, prompt="", layer=0, engine=tiny_engine)
    result = run_steer(positive="sentiment", prompt=PROMPT, layer=0, max_new_tokens=2, engine=tiny_engine)
    assert result.layer_norm > 0
