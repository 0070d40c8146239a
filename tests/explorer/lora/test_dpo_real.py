"""DPO on the real SmolLM2 with the default settings: the preference is learned on the training pairs, and the
shared base's greedy outputs stay byte-identical before, during and after the run."""
from __future__ import annotations

import torch

from explorer import lora
from explorer.lora import dpo
from explorer.lora.dpo_data import DEFAULT_SET, builtin_preferences

PROMPTS = ("What is the capital of France?", "Who are you?")


def _greedy(engine, prompt: str) -> list[int]:
    ids = torch.tensor([engine.chat_ids(prompt)])
    with engine.session():
        return engine.model.generate(input_ids=ids, max_new_tokens=12, do_sample=False).tolist()


def test_default_run_learns_the_preference_and_leaves_the_base_unchanged(smollm2):
    before = [_greedy(smollm2, p) for p in PROMPTS]
    run = dpo.start_dpo("dpo-real", builtin_preferences(DEFAULT_SET), {}, DEFAULT_SET)
    during = []
    while run.thread.is_alive() and len(during) < 2:
        if run.steps_dpo:  # the adapter has moved: the base must still answer the same
            during.append([_greedy(smollm2, p) for p in PROMPTS] == before)
        run.thread.join(2.0)
    lora.wait(run)
    snap = dpo.snapshot(run)
    after = [_greedy(smollm2, p) for p in PROMPTS]
    assert snap.status == "done" and snap.steps_done == dpo.DpoSettings().steps, snap.base.message
    assert snap.train_accuracy > 0.9 and snap.train_margin > 0, (snap.train_accuracy, snap.train_margin)
    assert snap.margins[-3:].mean() > snap.margins[0]
    assert during and all(during) and after == before
