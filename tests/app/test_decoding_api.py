"""/decode through gradio_client on the app launched in-process."""
from __future__ import annotations

import pytest
import torch

PROMPT = "Name a colour."


def test_decode_runs_in_order_with_real_values(client, smollm2):
    strategies = [{"name": "greedy"}, {"name": "sampling", "temperature": 0.7, "top_p": 0.95, "seed": 21},
                  {"name": "beam", "num_beams": 2}]
    out = client.predict(PROMPT, "smollm2-135m-instruct", strategies, 6, api_name="/decode")
    runs = out["runs"]
    assert [r["strategy"] for r in runs] == ["greedy", "sampling", "beam"]
    assert runs[1]["seed"] == 21 and runs[1]["params"]["top_p"] == 0.95 and runs[0]["seed"] is None
    prompt_ids = smollm2.chat_ids(PROMPT)
    with smollm2.session():
        ref = smollm2.model.generate(torch.tensor([prompt_ids]), max_new_tokens=6, do_sample=False)
    assert runs[0]["token_ids"] == ref[0, len(prompt_ids):].tolist()
    for run in runs:
        assert len(run["token_logprobs"]) == len(run["token_ids"]) > 0
        assert all(-50 < lp <= 0 for lp in run["token_logprobs"]) and run["seconds"] > 0
        assert run["text"] == smollm2.tokenizer.decode(run["token_ids"], skip_special_tokens=True)
    again = client.predict(PROMPT, "smollm2-135m-instruct", strategies[1:2], 6, api_name="/decode")
    assert again["runs"][0]["token_ids"] == runs[1]["token_ids"]  # same seed, same text


@pytest.mark.parametrize("strategy,message", [
    ({"name": "sampling", "top_p": 1.5}, r"\(0, 1\]"),
    ({"name": "sampling", "temperature": -1}, "negative"),
    ({"name": "nucleus"}, "Unknown decoding strategy"),
])
def test_decode_bad_input_is_a_clear_error(client, strategy, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(PROMPT, "smollm2-135m-instruct", [strategy], 4, api_name="/decode")


def test_decode_caps_with_notice(client):
    out = client.predict(PROMPT, "smollm2-135m-instruct", [{"name": "sampling", "temperature": 0, "top_k": 10 ** 7}],
                         2, api_name="/decode")
    assert any("greedy" in n for n in out["notices"]) and any("clamped" in n for n in out["notices"])
    assert out["runs"][0]["seed"] is None and len(out["runs"][0]["token_ids"]) <= 2
