"""Hallucination probes: semantic entropy, answer matching, token/sequence scores, logit lens, P(True), caps."""
from __future__ import annotations

import math

import numpy as np
import pytest

from explorer import hallucination as H
from explorer.hallucination.answer import generate_answer, matches, normalise, sequence_scores
from explorer.hallucination.samples import cluster_answers, entropy
from explorer.hallucination.signals import logit_lens, p_true


def test_identical_samples_have_zero_semantic_entropy():
    clusters = cluster_answers(["Paris", "Paris.", "paris", "Paris"], greedy="Paris")
    assert clusters.semantic_entropy == 0.0
    assert len(clusters.cluster_probs) == 1
    assert clusters.cluster_probs.sum() == pytest.approx(1.0)
    assert clusters.greedy_agreement == 1.0


def test_distinct_samples_reach_log_n_and_probs_sum_to_one():
    samples = ["Paris", "a yellow banana", "1945", "Leonardo da Vinci", "Paris"]
    clusters = cluster_answers(samples, greedy="Tokyo")
    assert clusters.cluster_probs.sum() == pytest.approx(1.0)
    assert clusters.cluster_of.tolist() == [0, 1, 2, 3, 0]
    assert clusters.cluster_probs.tolist() == pytest.approx([0.4, 0.2, 0.2, 0.2])
    assert clusters.semantic_entropy == pytest.approx(entropy([0.4, 0.2, 0.2, 0.2]))
    assert 0 < clusters.semantic_entropy < math.log(len(samples))
    assert clusters.greedy_agreement == 0.0
    assert cluster_answers(samples[:4]).semantic_entropy == pytest.approx(math.log(4))


def test_normalised_matching():
    assert normalise("  The Brasília!  ") == "brasilia"
    assert matches("The capital of Australia is Canberra.", ["Canberra"])
    assert not matches("Sydney", ["Canberra"])
    assert matches("It has 8 legs", ["8", "eight"])
    assert not matches("Berne is pretty", ["Bern"])  # whole words only
    assert matches("pi is 3.14.", ["3.14"])


def test_greedy_answer_statistics(smollm2):
    answer = generate_answer(smollm2, "What is the capital of France?")
    assert "paris" in answer.text.lower()
    n = answer.answer_ids.size
    assert n >= 1 and answer.logprob.shape == (n,) and answer.top_probs.shape == (n, 5)
    # greedy decoding picks the argmax of the raw logits, so every chosen token has rank 1
    assert answer.rank.tolist() == [1] * n
    assert np.allclose(answer.prob, answer.top_probs[:, 0], atol=1e-5)
    seq = sequence_scores(answer)
    assert seq["perplexity"] == pytest.approx(math.exp(-answer.logprob.mean()))
    assert seq["sequence_prob"] == pytest.approx(float(np.prod(answer.prob)), rel=1e-4)
    assert all(0 <= h <= math.log(smollm2.config.vocab_size) for h in answer.entropy)


def test_logit_lens_last_layer_is_the_models_prediction(smollm2):
    import torch

    answer = generate_answer(smollm2, "Who wrote Romeo and Juliet?", max_new_tokens=6)
    lens = logit_lens(smollm2, answer)
    assert lens.top_ids.shape == (smollm2.config.num_hidden_layers + 1, answer.answer_ids.size)
    ids = np.concatenate([answer.prompt_ids, answer.answer_ids])
    with torch.inference_mode():
        logits = smollm2.model(torch.from_numpy(ids)[None]).logits[0]
    own = logits[answer.prompt_ids.size - 1:-1].argmax(-1).numpy()
    assert lens.top_ids[-1].tolist() == own.tolist() == answer.answer_ids.tolist()
    assert (lens.first_layer >= 0).all() and (lens.first_layer <= lens.num_layers).all()
    assert 0 <= lens.mean_first_layer_fraction() <= 1


def test_p_true_is_a_probability(smollm2):
    """P(True) equals a softmax over the True/False token ids from a plain transformers forward pass."""
    import torch

    from explorer.hallucination.signals import FALSE_WORDS, TRUE_WORDS

    out = p_true(smollm2, "What is the capital of France?", "Paris")
    assert 0 <= out["p_true"] <= 1 and 0 < out["mass"] <= 1
    tok, model = smollm2.tokenizer, smollm2.model
    ids = tok.apply_chat_template([{"role": "user", "content": out["prompt"]}], add_generation_prompt=True,
                                  tokenize=True, return_dict=True)["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
    first = lambda words: sorted({tok.encode(w, add_special_tokens=False)[0] for w in words})  # noqa: E731
    pt, pf = float(probs[first(TRUE_WORDS)].sum()), float(probs[first(FALSE_WORDS)].sum())
    assert out["mass"] == pytest.approx(pt + pf, rel=1e-4)
    assert out["p_true"] == pytest.approx(pt / (pt + pf), rel=1e-4)


def test_run_reports_probes_and_bad_input(smollm2):
    result = H.run("What is the capital of France?", probes=["token_confidence", "sequence", "grounded"],
                   engine=smollm2)
    data = result.to_api()
    assert set(data["probes"]) == {"token_confidence", "sequence", "grounded"}
    assert data["probes"]["sequence"]["score"] == pytest.approx(data["probes"]["sequence"]["perplexity"])
    assert "context passage" in data["probes"]["grounded"]["error"]
    with pytest.raises(ValueError, match="question"):
        H.run("   ", engine=smollm2)
    with pytest.raises(ValueError, match="Unknown probe"):
        H.run("Hi?", probes=["astrology"], engine=smollm2)


def test_caps_samples_and_context(smollm2):
    from explorer.core.config import get_limits

    limits = get_limits()
    n, context, notices = H.cap_inputs(smollm2, limits.max_samples + 5, "word " * (limits.max_prompt_tokens + 10))
    assert n == limits.max_samples and len(notices) == 2
    assert len(smollm2.tokenizer(context)["input_ids"]) <= limits.max_prompt_tokens - H.CONTEXT_RESERVE_TOKENS + 1
    assert H.cap_inputs(smollm2, 3, "short")[2] == []


def test_grounded_context_changes_reliance(smollm2):
    context = "The secret code word is pineapple."
    result = H.run("What is the secret code word?", probes=["grounded"], context=context, engine=smollm2)
    grounded = result.probes["grounded"]
    assert "pineapple" in normalise(grounded["answer_with_context"])
    assert "pineapple" not in normalise(grounded["answer_without_context"]) and grounded["changed"]
    assert grounded["pmi_per_token"] > 0  # the passage makes its own answer more likely
    assert grounded["logprob_with"] > grounded["logprob_without"]


def test_real_vs_invented_entity(smollm2):
    real, fake = H.compare_entities("Who was {entity}? {Answer briefly}", "Marie Curie", "Zorvak Melindrel",
                                    probes=["sequence"], engine=smollm2)
    assert real.question == "Who was Marie Curie? {Answer briefly}" and "Zorvak" in fake.question
    assert real.probes["sequence"]["n_tokens"] > 0 and fake.probes["sequence"]["n_tokens"] > 0
    # the two compared: each side equals its own run, and the two answers differ (a small model is not
    # reliably surer about the real person: its mean entropy was higher for Marie Curie here)
    alone = H.run("Who was Zorvak Melindrel? {Answer briefly}", probes=["sequence"], engine=smollm2)
    assert fake.answer.text == alone.answer.text and fake.probes["sequence"] == pytest.approx(alone.probes["sequence"])
    assert real.answer.text != fake.answer.text
    with pytest.raises(ValueError, match="{entity}"):
        H.compare_entities("Who was Marie Curie?", "a", "b", engine=smollm2)
    with pytest.raises(ValueError, match="both"):
        H.compare_entities("Who was {entity}?", "Marie Curie", " ", engine=smollm2)


def test_samples_use_a_private_generator(tiny_engine):
    """The same seed gives the same samples, and the global RNG is neither read nor seeded."""
    import torch

    from explorer.hallucination.samples import sample_answers

    first, _ = sample_answers(tiny_engine, "Name a colour.", n_samples=3, seed=7, max_new_tokens=4)
    torch.manual_seed(12345)  # another user's seed in between changes nothing
    second, _ = sample_answers(tiny_engine, "Name a colour.", n_samples=3, seed=7, max_new_tokens=4)
    assert first == second and len(first) == 3
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    sample_answers(tiny_engine, "Name a colour.", n_samples=2, seed=1, max_new_tokens=4)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_greedy_answer_steps_the_engine_one_locked_pass_per_token(tiny_engine, monkeypatch):
    calls = []
    real = tiny_engine.steps

    def steps(*args, **kwargs):
        for step in real(*args, **kwargs):
            calls.append(step.index)
            yield step

    monkeypatch.setattr(tiny_engine, "steps", steps)
    answer = generate_answer(tiny_engine, "Name a colour.", max_new_tokens=4)
    assert calls and calls == list(range(len(calls))) and answer.answer_ids.size <= len(calls)

