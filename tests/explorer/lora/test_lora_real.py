"""LoRA on the real SmolLM2 with fixed seeds: the facts are learned, the base never changes, sessions stay apart.

Two sessions train at the same time (alice: fictional facts with the default settings; bob: the
pirate persona), interleaving step by step on the shared model's lock.
"""
from __future__ import annotations

import hashlib
import time

import pytest
import torch

from explorer import lora
from explorer.lora.data import builtin_dataset
from explorer.lora.infer import generate, merge_check, next_token_shift
from explorer.lora.model import LoraSettings

FACT_Q, FACT_A = "What is the capital of Veloria?", "Quillmarsh"
STYLE_Q = "How do I tie my shoes?"
PIRATE = ("arr", "matey", "yo ho")


def _weights_digest(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _greedy_ids(engine, prompt: str) -> list[int]:
    ids = torch.tensor([engine.chat_ids(prompt)])
    with engine.session():
        return engine.model.generate(input_ids=ids, max_new_tokens=12, do_sample=False).tolist()


@pytest.fixture(scope="module")
def trained(smollm2):
    ids = torch.tensor([smollm2.chat_ids(FACT_Q)])
    with smollm2.session():
        logits_before = smollm2.model(input_ids=ids).logits.clone()
    before = {"digest": _weights_digest(smollm2.model), "fact": _greedy_ids(smollm2, FACT_Q),
              "style": _greedy_ids(smollm2, STYLE_Q), "logits": logits_before}
    alice = lora.start_run("alice", builtin_dataset("Fictional facts (Veloria)"), {}, "facts")
    bob = lora.start_run("bob", builtin_dataset("Style: pirate persona"), {"steps": 10, "seed": 1}, "pirate")
    during = []
    while alice.thread.is_alive() and len(during) < 3:
        with smollm2.session():
            during.append(torch.equal(smollm2.model(input_ids=ids).logits, logits_before))
        time.sleep(5.0)
    return {"alice": alice, "bob": bob, "a": lora.wait(alice), "b": lora.wait(bob), "before": before,
            "during": during}


def test_loss_halves_and_the_adapter_knows_a_fact_the_base_does_not(trained):
    snap = trained["a"]
    assert snap.status == "done" and snap.steps_done == LoraSettings().steps
    assert snap.loss[-3:].mean() <= 0.5 * snap.loss[0], snap.loss
    base, adapted = generate(trained["alice"], FACT_Q, max_new_tokens=16)
    assert FACT_A in adapted and FACT_A not in base


def test_shared_base_is_bit_identical_during_and_after(trained, smollm2):
    before = trained["before"]
    assert trained["during"] and all(trained["during"])
    assert _weights_digest(smollm2.model) == before["digest"]
    assert _greedy_ids(smollm2, FACT_Q) == before["fact"] and _greedy_ids(smollm2, STYLE_Q) == before["style"]
    with smollm2.session():
        assert torch.equal(smollm2.model(input_ids=torch.tensor([smollm2.chat_ids(FACT_Q)])).logits,
                           before["logits"])
    assert all(type(m).__module__.startswith("transformers") or type(m).__module__.startswith("torch")
               for m in smollm2.model.modules())


def test_two_sessions_each_get_only_their_own_adapter(trained):
    alice, bob = trained["alice"], trained["bob"]
    assert trained["b"].status == "done"
    _, bob_fact = generate(bob, FACT_Q, max_new_tokens=16)
    base_style, bob_style = generate(bob, STYLE_Q, max_new_tokens=16)
    _, alice_style = generate(alice, STYLE_Q, max_new_tokens=16)
    assert FACT_A not in bob_fact
    assert any(w in bob_style.lower() for w in PIRATE), bob_style
    assert not any(w in alice_style.lower() for w in PIRATE) and not any(w in base_style.lower() for w in PIRATE)
    with pytest.raises(ValueError):
        lora.get_run(alice.run_id, "bob")


def test_counts_merge_and_next_token_shift(trained):
    alice = trained["alice"]
    assert (alice.trainable_params, alice.total_params) == alice.peft_counts
    # fp32 rounding only: W'x vs Wx + s·B(Ax) re-associates every targeted matmul in 30 layers. After the default
    # all-linear run this measures ~4e-4 on logits up to ~38 (SDPA vs eager alone differ by ~6e-5); the 1e-4 bound
    # holds on the tiny model (tests/explorer/lora/test_lora.py) and for short runs.
    assert merge_check(alice, FACT_Q) <= 1e-3
    shift = next_token_shift(alice, "The capital of Veloria is", top_k=5)
    assert shift.kl_nats > 0 and len(shift.tokens) >= 5 and shift.p_adapted.max() <= 1.0


def test_exploding_learning_rate_stops_and_discards(smollm2):
    data = builtin_dataset("Fictional facts (Veloria)")[:4]
    snap = lora.run(data, {"steps": 6, "batch_size": 2, "r": 4, "learning_rate": 1.0, "max_grad_norm": 0,
                           "warmup_steps": 0, "target_modules": ["q", "v"]}, owner="carol")
    assert snap.status == "failed" and "learning rate" in snap.message and snap.steps_done < 6
    assert lora.get_run(snap.run_id, "carol").peft_model is None
