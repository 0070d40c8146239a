"""``/branch`` through gradio_client on the app launched in-process: on the real SmolLM2, a branch equals
``model.generate`` on the forced prefix, a child names its parent, and bad input is a clear message."""
from __future__ import annotations

import pytest
import torch

MODEL = "smollm2-135m-instruct"
TEXT = "Name a colour."


def test_branch_api_matches_generate(client, smollm2):
    out = client.predict(TEXT, MODEL, 1, 28, {"name": "greedy"}, 5, None, True, api_name="/branch")
    assert out["parent"] is None and out["tokens"][0]["id"] == 28 and len(out["tokens"]) == 5
    prompt = smollm2.chat_ids(TEXT)
    with torch.no_grad():
        first = smollm2.model.generate(torch.tensor([prompt]), max_new_tokens=1, do_sample=False)[0, -1].item()
        rest = smollm2.model.generate(torch.tensor([prompt + [first, 28]]), max_new_tokens=4, do_sample=False)
    assert [t["id"] for t in out["tokens"][1:]] == rest[0, len(prompt) + 2:].tolist()
    assert 0 < out["tokens"][0]["p"] < 1
    child = client.predict(TEXT, MODEL, 2, 30, {"name": "greedy"}, 3, out["branch_id"], True, api_name="/branch")
    assert child["parent"] == out["branch_id"] and child["tokens"][0]["id"] == 30


def test_branch_api_errors(client):
    with pytest.raises(Exception, match="parent"):
        client.predict(TEXT, MODEL, 0, 28, {"name": "greedy"}, 3, "not-a-branch", True, api_name="/branch")
    with pytest.raises(Exception, match="token_id"):
        client.predict(TEXT, MODEL, 0, 10**7, {"name": "greedy"}, 3, None, True, api_name="/branch")
    with pytest.raises(Exception, match="position"):
        client.predict(TEXT, MODEL, 10**4, 28, {"name": "greedy"}, 3, None, True, api_name="/branch")
