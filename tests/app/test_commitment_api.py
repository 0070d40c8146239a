"""``/commitment`` through gradio_client on the app launched in-process (real SmolLM2): each token's layer equals the
logit lens read directly on the model (final norm and lm_head by hand), and bad input is a clear message."""
from __future__ import annotations

import pytest

from tests.explorer.circuits.test_commitment import direct_layers

MODEL = "smollm2-135m-instruct"


def test_commitment_api(client, smollm2):
    out = client.predict("Name a colour.", MODEL, 5, True, api_name="/commitment")
    assert out["num_layers"] == 30 and len(out["tokens"]) == 5
    ids = smollm2.chat_ids("Name a colour.")
    generated = smollm2.greedy_continuation(ids, 5).tokens
    assert [t["text"] for t in out["tokens"]] == [smollm2.tokenizer.decode([t]) for t in generated]
    assert [t["layer"] for t in out["tokens"]] == direct_layers(smollm2.model, ids, list(generated))
    with pytest.raises(Exception, match="text"):
        client.predict("   ", MODEL, 5, True, api_name="/commitment")
