"""Steering on the embedded Gemma 3 270M (SmolLM2 is covered through ``/steer``): strength 0 equals
``model.generate``'s greedy tokens, strength 1 changes them, and the shared weights are unchanged."""
from __future__ import annotations

import torch

from explorer.circuits.steering import run_steer


def test_gemma_steering(gemma):
    before = {k: v.clone() for k, v in list(gemma.model.state_dict().items())[:4]}
    zero = run_steer(positive="formality", layer=8, strength=0.0, prompt="Write to your friend:", max_new_tokens=6,
                     engine=gemma)
    ids = gemma.encode("Write to your friend:")
    with torch.no_grad():
        ref = gemma.model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False)[0, len(ids):].tolist()
    assert list(zero.unsteered_ids) == ref[:len(zero.unsteered_ids)] and zero.steered_ids == zero.unsteered_ids
    pushed = run_steer(positive="formality", layer=8, strength=1.0, prompt="Write to your friend:",
                       max_new_tokens=6, engine=gemma)
    assert pushed.steered_ids != pushed.unsteered_ids
    assert all(torch.equal(v, gemma.model.state_dict()[k]) for k, v in before.items())
