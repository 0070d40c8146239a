"""``/sampler_chain`` through gradio_client (real SmolLM2): seven stages in generate()'s order, the final top-p
distribution sums to 1 over its kept tokens, and the sampled token is among them."""
from __future__ import annotations

import pytest

MODEL = "smollm2-135m-instruct"


def test_sampler_chain_api(client):
    strategy = {"name": "sampling", "temperature": 0.7, "top_k": 40, "top_p": 0.9, "seed": 3}
    out = client.predict("Name a colour.", MODEL, strategy, 1, True, api_name="/sampler_chain")
    assert [s["name"] for s in out["stages"]][:5] == ["repetition penalty", "no-repeat n-gram", "temperature",
                                                       "top-k", "top-p"]
    assert [s["active"] for s in out["stages"]] == [False, False, True, True, True, False, False]
    final = out["stages"][-1]["top"]
    assert out["sampled"]["id"] in {t["id"] for t in final if t["p"] > 0}
    assert out["stages"][3]["kept_mass"] <= 1.0
    with pytest.raises(Exception, match="step"):
        client.predict("Name a colour.", MODEL, strategy, -1, True, api_name="/sampler_chain")
