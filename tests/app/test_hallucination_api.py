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


def test_attribute_integrated_gradients_equals_captum_run_directly(client, smollm2, monkeypatch):
    """/attribute's integrated gradients against captum run here on the same inputs: the prompt from the tokenizer's
    own chat template, a plain forward pass for the target (log-probability of the answer), captum's
    ``LayerIntegratedGradients`` on the embeddings. Token scores match, and both obey completeness: they sum to
    f(input) - f(baseline) within captum's convergence delta."""
    import dataclasses

    import torch
    from captum.attr import LayerIntegratedGradients

    from components.tabs.hallucination import tab
    from explorer.hallucination.answer import prompt_messages
    from explorer.hallucination.attribution import IG_STEPS, NEUTRAL_TOKEN

    question, target = "Who wrote the play Romeo and Juliet?", "William Shakespeare"
    limits = tab.gr_limits()  # the app runs in this process: lift the time cap, whose estimate follows machine load
    monkeypatch.setattr(tab, "gr_limits", lambda: dataclasses.replace(limits, max_probe_seconds=3600.0))
    out = client.predict(question, MODEL, "integrated_gradients", "token", target, api_name="/attribute")
    tok, model = smollm2.tokenizer, smollm2.model
    prompt = tok.apply_chat_template(prompt_messages(question), add_generation_prompt=True, tokenize=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    assert out["tokens"] == [tok.decode([t]) for t in prompt]  # the same prompt the model reads
    answer = torch.tensor(tok(target, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([prompt])
    baseline = ids.clone()
    on = torch.tensor(out["attributed"])
    baseline[0, on] = tok(NEUTRAL_TOKEN, add_special_tokens=False)["input_ids"][0]

    def logprob(x: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B,): sum of log p(answer_t | prompt, answer_<t)
        full = torch.cat([x, answer.expand(x.shape[0], -1)], dim=1)
        logits = model(full, use_cache=False).logits[:, x.shape[1] - 1:-1].float()
        return torch.log_softmax(logits, -1).gather(2, answer.expand(x.shape[0], -1).unsqueeze(2)).sum((1, 2))

    with torch.inference_mode():
        f_input, f_baseline = (float(v) for v in logprob(torch.cat([ids, baseline])))
    lig = LayerIntegratedGradients(logprob, model.get_input_embeddings())
    attr, delta = lig.attribute(ids, baselines=baseline, n_steps=IG_STEPS, return_convergence_delta=True)
    reference = attr[0, :ids.shape[1]].sum(-1).detach().numpy()
    scores = torch.tensor(out["token_scores"]).numpy()
    assert out["target_logprob"] == pytest.approx(f_input, abs=1e-3)
    assert scores == pytest.approx(reference, abs=2e-3)
    assert abs(scores).max() > 0.01 and (scores[~on.numpy()] == 0).all()
    for total in (reference.sum(), scores.sum()):
        assert abs(total - (f_input - f_baseline)) <= abs(float(delta)) + 5e-3
