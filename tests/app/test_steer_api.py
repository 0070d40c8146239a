"""``/steer`` through gradio_client on the app launched in-process (real SmolLM2): strength 0 is the unsteered
greedy text, a usable strength changes it, the fields are the issue's, bad input is a clear message."""
from __future__ import annotations

import pytest

MODEL = "smollm2-135m-instruct"


def test_steer_api(client):
    zero = client.predict(MODEL, "sentiment", None, 10, 0.0, "I think the movie was", 8, None, False,
                          api_name="/steer")
    assert set(zero) == {"vector_norm", "layer_norm", "unsteered", "steered", "top_tokens", "notices"}
    assert zero["steered"] == zero["unsteered"] and zero["vector_norm"] > 0 and zero["layer_norm"] > 0
    pushed = client.predict(MODEL, "sentiment", None, 10, 1.0, "I think the movie was", 8, None, False,
                            api_name="/steer")
    assert pushed["unsteered"] == zero["unsteered"] and pushed["steered"] != pushed["unsteered"]
    with pytest.raises(Exception, match="layer"):
        client.predict(MODEL, "sentiment", None, 99, 0.5, "Hi", 4, None, False, api_name="/steer")
    with pytest.raises(Exception, match="negative"):
        client.predict(MODEL, ["good"], [" "], 3, 0.5, "Hi", 4, None, False, api_name="/steer")
