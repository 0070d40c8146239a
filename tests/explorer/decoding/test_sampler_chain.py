"""The sampler chain (``/sampler_chain``) on the tiny model: its final distribution equals transformers'
``LogitsProcessorList`` (built directly, generate()'s order) on the model's own logits at that step, the sampled
token is the Decoding column's, inactive stages are marked, and bad input is refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                          TopKLogitsWarper, TopPLogitsWarper)

from explorer.decoding import run as run_decode
from explorer.decoding.chain import run_sampler_chain

TEXT = "Once upon a time"
STRATEGY = {"name": "sampling", "temperature": 0.8, "top_k": 40, "top_p": 0.9, "repetition_penalty": 1.2, "seed": 5}


def test_chain_equals_logits_processor_list(tiny_engine):
    decoded = run_decode(TEXT, strategies=[STRATEGY], max_new_tokens=4, engine=tiny_engine, batched=False)
    tokens = [int(t) for t in decoded.runs[0].token_ids]
    result = run_sampler_chain(TEXT, strategy=STRATEGY, step=3, engine=tiny_engine)
    assert result.sampled["id"] == tokens[3]
    seen = torch.tensor([tiny_engine.chat_ids(TEXT) + tokens[:3]])
    with torch.no_grad():
        logits = tiny_engine.model(seen).logits[:, -1].float()
    chain = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.2), TemperatureLogitsWarper(0.8),
                                 TopKLogitsWarper(40), TopPLogitsWarper(0.9)])
    want = torch.softmax(chain(seen, logits)[0].double(), -1).numpy()
    np.testing.assert_allclose(result.final, want, atol=1e-5)
    names = [s["name"] for s in result.stages]
    assert names == ["repetition penalty", "no-repeat n-gram", "temperature", "top-k", "top-p", "min-p", "typical-p"]
    assert [s["active"] for s in result.stages] == [True, False, True, True, True, False, False]
    top_k = result.stages[3]
    assert len(top_k["removed"]) == 50 and top_k["kept_mass"] < 1 and len(top_k["top"]) == 50
    assert result.stages[1]["kept_mass"] == pytest.approx(1.0) and result.stages[1]["removed"] == []


def test_chain_bad_input(tiny_engine):
    with pytest.raises(ValueError, match="step"):
        run_sampler_chain(TEXT, strategy=STRATEGY, step=-1, engine=tiny_engine)
    with pytest.raises(ValueError, match="strategy"):
        run_sampler_chain(TEXT, strategy={"name": "beam"}, step=0, engine=tiny_engine)
