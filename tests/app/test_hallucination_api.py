"""/probe and /attribute through gradio_client on the app launched in-process."""
from __future__ import annotations

import math

import pytest

from explorer.hallucination.answer import generate_answer

MODEL = "smollm2-135m-instruct"
QUESTION = "What is the capital of France?"


def test_probe_returns_answer_and_scores(client, smollm2):
    out = client.predict(QUESTION, MODEL, ["token_confidence", "sequence", "semantic_entropy"], None, 3,
                         api_name="/probe")
    assert out["answer"] == generate_answer(smollm2, QUESTION).text and "Paris" in out["answer"]
    # independent reference: transformers' generate on the same prompt, cut at end-of-turn or a newline
    import torch

    from explorer.hallucination.answer import prompt_ids

    ids = prompt_ids(smollm2, QUESTION)
    with torch.no_grad():
        new = smollm2.model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False, temperature=None,
                                     top_p=None, top_k=None)[0, len(ids):]
    reference = smollm2.tokenizer.decode(new, skip_special_tokens=True).split("\n")[0].strip()
    assert out["answer"] == reference and out["answer_cut_short"] is False
    probes = out["probes"]
    assert set(probes) == {"token_confidence", "sequence", "semantic_entropy"}
    tc = probes["token_confidence"]
    assert len(tc["tokens"]) == len(tc["probs"]) == len(tc["ranks"]) > 0 and set(tc["ranks"]) == {1}
    assert probes["sequence"]["perplexity"] == pytest.approx(math.exp(-probes["sequence"]["sequence_logprob"]
                                                                      / probes["sequence"]["n_tokens"]))
    se = probes["semantic_entropy"]
    assert se["n_samples"] == 3 and sum(c["probability"] for c in se["clusters"]) == pytest.approx(1.0)
    assert 0 <= se["semantic_entropy"] <= se["max_entropy"] + 1e-9


def test_probe_caps_samples_with_a_notice(client):
    from explorer.core.config import get_limits

    out = client.predict(QUESTION, MODEL, ["sequence"], None, get_limits().max_samples + 1, api_name="/probe")
    assert any("capped" in n for n in out["notices"])


def test_probe_empty_question_is_a_friendly_error(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Type a question"):
        client.predict("   ", MODEL, ["sequence"], None, 3, api_name="/probe")


def test_attribute_segments(client):
    question = "Who wrote {the} play Romeo and Juliet?"
    out = client.predict(question, MODEL, "feature_ablation", "sentence", "William Shakespeare",
                         api_name="/attribute")
    assert out["segments"] == [question] and len(out["scores"]) == 1
    assert len(out["tokens"]) == len(out["token_scores"]) == len(out["attributed"])
    assert "".join(t for t, on in zip(out["tokens"], out["attributed"]) if on) == question
    assert all(s == 0 for s, on in zip(out["token_scores"], out["attributed"]) if not on)
