"""The Circuits JSON APIs (/heads, /patch, /ablate, /dla) through gradio_client on the app launched in-process."""
from __future__ import annotations

import numpy as np
import pytest

MODEL = "smollm2-135m-instruct"


def test_heads_api(client):
    out = client.predict(MODEL, "induction", api_name="/heads")
    assert out["kind"] == "induction" and out["sequence_length"] == 101
    assert np.array(out["scores"]).shape == (30, 9)
    scores = [t["score"] for t in out["top"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.5
    assert out["scores"][out["top"][0]["layer"]][out["top"][0]["head"]] == pytest.approx(scores[0])


def test_dla_and_ablate_api(client):
    out = client.predict("The capital of France is the city of", MODEL, None, " Paris", False, api_name="/dla")
    total = sum(c["contribution"] for c in out["components"])
    assert out["components"][0]["name"] == "embed" and len(out["components"]) == 61
    assert out["residual"] == pytest.approx(out["logit"] - total, abs=1e-3) and abs(out["residual"]) < 1e-3
    ablated = client.predict("The capital of France is the city of", MODEL, ["L23H1"], "mean", False,
                             api_name="/ablate")
    assert ablated["kl"] >= 0 and ablated["top1_before"] == "' Paris'"
    assert ablated["continuation_before"] and ablated["continuation_after"]


def test_circuits_api_errors(client):
    with pytest.raises(Exception, match="corrupted must have as many tokens as clean"):
        client.predict("The keys to the cabinet", "The key to the old cabinet", MODEL, " are", " is", "resid", False,
                       api_name="/patch")
    with pytest.raises(Exception, match="site must be one of"):
        client.predict("The keys to the cabinet", "The key to the cabinet", MODEL, " are", " is", "logits", False,
                       api_name="/patch")
    with pytest.raises(Exception, match="kind must be one of"):
        client.predict(MODEL, "copying", api_name="/heads")
    with pytest.raises(Exception, match="needs a decoder"):
        client.predict("Hello there", "all-minilm-l6-v2", None, None, False, api_name="/dla")
    with pytest.raises(Exception, match="named twice"):
        client.predict("Hello there", MODEL, ["L1H1", "L1H1"], "zero", False, api_name="/ablate")


def test_shared_model_bit_identical_and_unwrapped_after_the_apis(client):
    import hashlib

    from explorer.core.engine import get_engine

    model = get_engine(MODEL).model

    def digest():
        h = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().numpy().tobytes())
        return h.hexdigest()

    before = digest()
    client.predict("The keys to the old cabinet", MODEL, ["L3H2", "L5.attn", "L5.mlp"], "mean", False,
                   api_name="/ablate")
    client.predict("The keys to the old cabinet", MODEL, 2, None, False, api_name="/dla")
    client.predict("The keys to the cabinet", "The key to the cabinet", MODEL, " are", " is", "attn_head", False,
                   api_name="/patch")
    assert digest() == before and all(p.grad is None for p in model.parameters())
    for module in model.modules():
        assert "forward" not in module.__dict__ and "__nnsight__" not in module.__dict__
    assert not hasattr(object(), "save")
