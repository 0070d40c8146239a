"""``/steer_sweep`` through gradio_client (real SmolLM2): the fields, the strength-0 cell equal to the unsteered
baseline and to the greedy continuation, the sentiment vector raising the positive markers' odds at a usable
strength while a large one breaks the text (perplexity far above the baseline), and bad input as a clear message."""
from __future__ import annotations

import pytest

MODEL = "smollm2-135m-instruct"
PROMPT = "I think the movie was"


def test_steer_sweep_api(client, smollm2):
    out = client.predict(MODEL, "sentiment", None, "16", "0, 0.5, 4", PROMPT, 10, False, api_name="/steer_sweep")
    assert set(out) == {"layers", "strengths", "baseline", "cells", "markers", "notices"}
    zero, usable, large = out["cells"]
    greedy = smollm2.greedy_continuation(smollm2.encode(PROMPT), 10).content
    assert zero["text"] == out["baseline"]["text"] == smollm2.tokenizer.decode(greedy, skip_special_tokens=True)
    assert zero["perplexity"] == pytest.approx(out["baseline"]["perplexity"], rel=1e-3)
    assert usable["marker_log_ratio"] > out["baseline"]["marker_log_ratio"] + 1.0
    assert large["perplexity"] > 5 * out["baseline"]["perplexity"]
    with pytest.raises(Exception, match="strengths"):
        client.predict(MODEL, "sentiment", None, "16", "nan", PROMPT, 4, False, api_name="/steer_sweep")
    with pytest.raises(Exception, match="layers"):
        client.predict(MODEL, "sentiment", None, "99", "1", PROMPT, 4, False, api_name="/steer_sweep")
