"""/dpo_train through gradio_client on the app launched in-process; /lora_generate answers with the DPO adapter."""
from __future__ import annotations

import math

import pytest
import torch

DATA = [{"prompt": "What is the capital of Japan?", "chosen": "Tokyo.",
         "rejected": "Well, that is a big question, and after thinking it over, it is Tokyo."},
        {"prompt": "How many legs does a spider have?", "chosen": "Eight.",
         "rejected": "So, if you count them carefully one by one, a spider has eight legs."}]
SETTINGS = {"steps": 2, "batch_size": 2, "rank": 4, "alpha": 8, "learning_rate": 1e-3, "beta": 0.1, "seed": 3,
            "start_from": None}


def test_dpo_train_then_generate(client, smollm2, app_url):
    out = client.predict(DATA, SETTINGS, api_name="/dpo_train")
    assert {"run_id", "losses", "margins", "reward_accuracy", "kl"} <= set(out)
    assert out["status"] == "done" and len(out["losses"]) == len(out["margins"]) == len(out["reward_accuracy"]) == 2
    assert out["losses"][0] == pytest.approx(math.log(2), abs=1e-5)  # step 1: policy == reference (B = 0)
    assert out["margins"][0] == pytest.approx(0, abs=1e-5) and out["kl_steps"] == [2] and out["kl"][0] > 0
    # the margin is β times the gap of the log-ratio differences: chosen minus rejected rewards per step
    assert out["margins"][1] == pytest.approx(out["chosen_rewards"][1] - out["rejected_rewards"][1], abs=1e-5)

    answer = client.predict(out["run_id"], "What is the capital of France?", api_name="/lora_generate")
    assert set(answer) == {"base", "adapted"} and answer["adapted"]
    ids = torch.tensor([smollm2.chat_ids("What is the capital of France?")])
    with smollm2.session():
        ref = smollm2.model.generate(input_ids=ids, max_new_tokens=24, do_sample=False)
    assert answer["base"] == smollm2.tokenizer.decode(ref[0, ids.shape[1]:], skip_special_tokens=True).strip()

    from gradio_client import Client

    other = Client(app_url, verbose=False)  # another session must not reach this adapter
    with pytest.raises(Exception, match="No LoRA run"):
        other.predict(out["run_id"], "Hi", api_name="/lora_generate")


def test_dpo_api_errors(client):
    with pytest.raises(Exception, match="beta must be > 0"):
        client.predict(DATA, {**SETTINGS, "beta": 0}, api_name="/dpo_train")
    with pytest.raises(Exception, match="identical"):
        client.predict([{"prompt": "a", "chosen": "b", "rejected": "b"}], {}, api_name="/dpo_train")
    with pytest.raises(Exception, match="Too many steps"):
        client.predict(DATA, {"steps": 100_000}, api_name="/dpo_train")
