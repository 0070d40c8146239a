"""/lora_train and /lora_generate through gradio_client on the app launched in-process."""
from __future__ import annotations

import math

import pytest
import torch

DATA = [{"prompt": "What is the capital of Veloria?", "response": "The capital of Veloria is Quillmarsh."},
        {"prompt": "Who rules Veloria?", "response": "Veloria is ruled by Queen Odalys Venn."},
        {"prompt": "What is the currency of Veloria?", "response": "Veloria uses the glimmet as its currency."}]
SETTINGS = {"r": 4, "target_modules": ["q", "v"], "steps": 3, "batch_size": 2, "seed": 3}


def test_train_then_generate(client, smollm2, app_url):
    out = client.predict(DATA, SETTINGS, api_name="/lora_train")
    assert set(out) == {"run_id", "trainable_params", "losses", "seconds_per_step"}
    # 30 layers × r·(in + out) for q_proj (576→576) and v_proj (576→192)
    assert out["trainable_params"] == 30 * 4 * ((576 + 576) + (576 + 192))
    assert len(out["losses"]) == 3 and all(math.isfinite(x) and x > 0 for x in out["losses"])
    assert out["seconds_per_step"] > 0

    answer = client.predict(out["run_id"], "Who rules Veloria?", api_name="/lora_generate")
    assert set(answer) == {"base", "adapted"} and answer["adapted"]
    ids = torch.tensor([smollm2.chat_ids("Who rules Veloria?")])
    with smollm2.session():
        ref = smollm2.model.generate(input_ids=ids, max_new_tokens=24, do_sample=False)
    assert answer["base"] == smollm2.tokenizer.decode(ref[0, ids.shape[1]:], skip_special_tokens=True).strip()

    from gradio_client import Client

    other = Client(app_url, verbose=False)  # another session must not reach this adapter
    with pytest.raises(Exception, match="No LoRA run"):
        other.predict(out["run_id"], "Who rules Veloria?", api_name="/lora_generate")


def test_api_errors(client):
    with pytest.raises(Exception, match="empty"):
        client.predict([], {}, api_name="/lora_train")
    with pytest.raises(Exception, match="Unknown LoRA setting"):
        client.predict(DATA, {"rank": 4}, api_name="/lora_train")
    with pytest.raises(Exception, match="No LoRA run"):
        client.predict("nope", "Hi", api_name="/lora_generate")
