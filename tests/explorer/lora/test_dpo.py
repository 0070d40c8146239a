"""DPO mechanics on a tiny random Llama: the loss equals TRL's DPOTrainer on the same batch, bad input is refused
before training, runs stop, stay in their session, start from an SFT run, and download in PEFT format."""
from __future__ import annotations

import copy
import json
import math
import zipfile

import pytest
import torch

from explorer import lora
from explorer.lora import dpo
from explorer.lora.adapter_io import load_adapter, save_adapter
from explorer.lora.dpo_data import (builtin_preferences, collate_pairs, heldout_pairs, parse_preference_jsonl,
                                    tokenize_pairs, validate_pairs)
from explorer.lora.infer import AdaptedModel, generate

PAIRS = [{"prompt": "Name the moon of Veloria.", "chosen": "Pellow.", "rejected": "Well, it is a long story."},
         {"prompt": "Name the king of Veloria.", "chosen": "Arno.", "rejected": "Let me think about kings."},
         {"prompt": "Name the sea of Veloria.", "chosen": "The Glass Sea.", "rejected": "Seas are big, you know."}]
FAST = {"steps": 3, "batch_size": 2, "rank": 4, "alpha": 8, "learning_rate": 1e-2, "kl_every": 2,
        "target_modules": ["q", "v"]}


def test_dpo_loss_and_tokenisation_equal_trls_dpotrainer_on_the_same_batch(tiny_engine, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    snap = dpo.run(PAIRS, FAST, owner="trl-check", engine=tiny_engine)
    run = lora.get_run(snap.run_id, "trl-check")
    assert snap.status == "done" and abs(snap.margins).max() > 0  # the adapter moved: policy != reference
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p["prompt"]}],
                               "chosen": [{"role": "assistant", "content": p["chosen"]}],
                               "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in PAIRS])
    trainer = DPOTrainer(model=copy.deepcopy(tiny_engine.model), train_dataset=data,
                         processing_class=tiny_engine.tokenizer,
                         args=DPOConfig(output_dir=str(tmp_path), beta=0.1, report_to="none", use_cpu=True),
                         peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    ours = tokenize_pairs(tiny_engine.tokenizer, PAIRS)
    for i, pair in enumerate(ours):  # TRL's own tokenisation of the conversational pairs
        row = trainer.train_dataset[i]
        assert (row["prompt_ids"], row["chosen_ids"], row["rejected_ids"]) == \
            (pair.prompt_ids, pair.chosen_ids, pair.rejected_ids)
    weights = {n.replace(run.adapter_name, "default"): p for n, p in run.peft_model.named_parameters() if "lora_" in n}
    with torch.no_grad():
        for name, param in trainer.model.named_parameters():
            if "lora_" in name:
                param.copy_(weights[name])
    batch = collate_pairs(ours, tiny_engine.tokenizer.pad_token_id or 0)
    with torch.no_grad():
        trl_loss = float(trainer._compute_loss(trainer.model, batch, False))
        policy = dpo.sequence_logps(AdaptedModel(run)(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits,
                                    batch["input_ids"], batch["completion_mask"]).chunk(2)
        ref = dpo.sequence_logps(tiny_engine.model(input_ids=batch["input_ids"],
                                                   attention_mask=batch["attention_mask"]).logits,
                                 batch["input_ids"], batch["completion_mask"]).chunk(2)
    loss, chosen, rejected = dpo.dpo_loss(*policy, *ref, beta=0.1)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    assert float(loss) == pytest.approx(trl_loss, abs=1e-6)
    assert abs(trl_loss - math.log(2)) > 1e-3  # not the trivial policy == reference value
    assert float(chosen.mean()) == pytest.approx(metrics["rewards/chosen"], abs=1e-6)
    assert float(rejected.mean()) == pytest.approx(metrics["rewards/rejected"], abs=1e-6)
    assert float((chosen - rejected).mean()) == pytest.approx(metrics["rewards/margins"], abs=1e-6)
    assert float((chosen > rejected).float().mean()) == pytest.approx(metrics["rewards/accuracies"])


def test_bad_input_is_refused_before_training(tiny_engine):
    owner = "bad-input"
    cases = [
        ([{"prompt": "a", "chosen": "same", "rejected": " same "}], {}, "identical"),
        ([{"prompt": "a", "chosen": "", "rejected": "b"}], {}, "'chosen' must be non-empty"),
        ([{"prompt": "a", "chosen": "b"}], {}, "'rejected' must be non-empty"),
        ([{"prompt": "a", "chosen": "word " * 400, "rejected": "b"}], {}, "cap is 256"),
        ([], {}, "empty"),
        (PAIRS, {"beta": 0}, "beta must be > 0"),
        (PAIRS, {"beta": -0.5}, "beta must be > 0"),
        (PAIRS, {"steps": 10_000}, "Too many steps"),
        (PAIRS, {"steps": 2.5}, "should be a int"),
        (PAIRS, {"rank_": 4}, "Unknown DPO setting"),
        (PAIRS, {"start_from": "nope"}, "No LoRA run"),
    ]
    for dataset, settings, message in cases:
        with pytest.raises(ValueError, match=message):
            dpo.start_dpo(owner, dataset, settings, engine=tiny_engine)
    assert lora.runs_for(owner) == []  # nothing was registered or trained
    text = ('{"prompt": "a", "chosen": "b", "rejected": "c"}\nnot json\n\n{"prompt": "a", "chosen": "b"}\n'
            '{"prompt": "a", "chosen": "x", "rejected": "x"}\n')
    with pytest.raises(ValueError) as err:
        parse_preference_jsonl(text, max_bytes=10_000)
    assert all(f"line {n}" in str(err.value) for n in (2, 4, 5)) and "line 1" not in str(err.value)
    with pytest.raises(ValueError, match="cap"):
        validate_pairs(PAIRS * 100, max_bytes=1000)


def test_builtin_sets_have_30_pairs_and_unseen_heldout_prompts():
    from explorer.lora.dpo_data import BUILTIN_PREFERENCES

    for name in BUILTIN_PREFERENCES:
        pairs, held = builtin_preferences(name), heldout_pairs(name)
        assert len(pairs) >= 30 and len(held) >= 3
        assert not {p["prompt"] for p in held} & {p["prompt"] for p in pairs}


def test_runs_are_private_stop_keeps_the_adapter_and_it_downloads_in_peft_format(tiny_engine, tmp_path):
    before = {k: v.clone() for k, v in tiny_engine.model.state_dict().items()}
    alice = dpo.start_dpo("alice-dpo", PAIRS, {**FAST, "steps": 40}, engine=tiny_engine)
    bob = dpo.start_dpo("bob-dpo", PAIRS, {**FAST, "seed": 1}, engine=tiny_engine)
    while not alice.steps_dpo and alice.status == lora.RUNNING:
        alice.thread.join(0.05)
    assert lora.stop("alice-dpo") is alice
    a, b = lora.wait(alice), lora.wait(bob)
    assert a.status == "stopped" and 1 <= a.steps_done < 40 and "adapter keeps" in a.message
    assert b.status == "done" and b.steps_done == 3
    with pytest.raises(ValueError, match="No LoRA run"):
        lora.get_run(alice.run_id, "bob-dpo")
    assert [r.run_id for r in dpo.runs_of("bob-dpo")] == [bob.run_id]
    snap = dpo.snapshot(bob)
    assert list(snap.kl_steps) == [2, 3] and all(k >= 0 for k in snap.kl) and snap.kl[-1] > 0
    assert 0 <= snap.train_accuracy <= 1 and math.isfinite(snap.train_margin)
    for key, value in tiny_engine.model.state_dict().items():
        assert torch.equal(value, before[key]), key  # the shared model never changed
    base, adapted = generate(bob, "Name the moon of Veloria.", max_new_tokens=4)  # what /lora_generate calls
    assert isinstance(base, str) and isinstance(adapted, str)
    path = save_adapter(bob, str(tmp_path))
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["adapter_config.json", "adapter_model.safetensors"]
        assert json.loads(archive.read("adapter_config.json"))["r"] == 4
    loaded = load_adapter("bob-dpo", path, engine=tiny_engine)
    ids = torch.tensor([tiny_engine.chat_ids("Name the moon of Veloria.")])
    with torch.no_grad():
        assert torch.allclose(AdaptedModel(loaded)(input_ids=ids).logits, AdaptedModel(bob)(input_ids=ids).logits,
                              atol=1e-5)


def test_start_from_an_sft_run_uses_it_as_the_reference(tiny_engine):
    owner = "sft-then-dpo"
    sft = lora.start_run(owner, [{"prompt": p["prompt"], "response": p["chosen"]} for p in PAIRS],
                         {"steps": 3, "batch_size": 2, "r": 4, "learning_rate": 5e-2, "target_modules": ["q", "v"]},
                         engine=tiny_engine)
    lora.wait(sft)
    run = dpo.start_dpo(owner, PAIRS, {**FAST, "rank": 8, "start_from": sft.run_id}, engine=tiny_engine)
    lora.wait(run)
    snap = dpo.snapshot(run)
    assert snap.status == "done" and run.reference is sft and run.settings.r == 4  # follows the SFT adapter
    assert any("follow SFT run" in n for n in snap.base.notices)
    # step 1 starts from a copy of the SFT adapter, which is also the reference: loss log 2, rewards 0 exactly
    assert snap.losses[0] == pytest.approx(math.log(2), abs=1e-6)
    assert snap.chosen_rewards[0] == pytest.approx(0, abs=1e-5) and snap.rejected_rewards[0] == pytest.approx(0, abs=1e-5)
    # and the SFT adapter differs from the base, so the base would not have given log 2
    ids = torch.tensor([tiny_engine.chat_ids(PAIRS[0]["prompt"])])
    with torch.no_grad():
        assert not torch.allclose(AdaptedModel(sft)(input_ids=ids).logits, tiny_engine.model(input_ids=ids).logits)
    with pytest.raises(ValueError, match="No LoRA run"):
        dpo.start_dpo("someone-else", PAIRS, {**FAST, "start_from": sft.run_id}, engine=tiny_engine)
