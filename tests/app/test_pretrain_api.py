"""/pretrain through gradio_client on the app launched in-process."""
from __future__ import annotations

import math

import pytest


def test_pretrain_blocks_and_returns_the_run(client):
    out = client.predict({"steps": 12, "seed": 3, "d_model": 32, "heads": 2}, api_name="/pretrain")
    assert {"run_id", "losses", "val_losses", "tokens_seen", "non_embedding_params", "samples"} <= set(out)
    assert len(out["losses"]) == 12 and all(math.isfinite(x) for x in out["losses"])
    assert out["tokens_seen"] == 12 * 16 * 64
    # 2 layers x (4 d^2 attention + 3 x 4 d^2 MLP + 2 norms) + final norm, d = 32
    assert out["non_embedding_params"] == 2 * (16 * 32 * 32 + 2 * 32) + 32
    assert out["samples"] and out["samples"][-1]["step"] == 12
    assert out["provenance"]["kind"] == "measured"


def test_pretrain_bad_input(client):
    with pytest.raises(Exception, match="heads"):
        client.predict({"d_model": 64, "heads": 5}, api_name="/pretrain")
    with pytest.raises(Exception, match="lr"):
        client.predict({"lr": -1}, api_name="/pretrain")
    with pytest.raises(Exception, match="chat template"):
        client.predict({}, True, api_name="/pretrain")
    with pytest.raises(Exception, match="settings must be"):
        client.predict(["steps", 3], api_name="/pretrain")
    with pytest.raises(Exception, match="steps must be a number"):
        client.predict({"steps": "many"}, api_name="/pretrain")
