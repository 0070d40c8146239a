"""Decoding lens: our recording loops against ``model.generate``, the processors' kept sets against their
definitions, step records against the output, and the bad inputs of issue 5."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import decoding
from explorer.decoding.strategies import Strategy, generate_kwargs, parse_strategy

PROMPT = "Write one sentence about the sea."
VOCAB = 49152


def _strategy(raw, notices=None):
    return parse_strategy(raw, VOCAB, 8, notices)


def _generate(engine, prompt_ids, strategy, max_new_tokens, **extra):
    if strategy.seed is not None:
        torch.manual_seed(strategy.seed)
    with engine.session():
        out = engine.model.generate(torch.tensor([prompt_ids]), max_new_tokens=max_new_tokens,
                                    **generate_kwargs(strategy), **extra)
    return out


def test_greedy_equals_generate_and_records_match(smollm2):
    result = decoding.run(PROMPT, strategies=[{"name": "greedy"}], max_new_tokens=10, engine=smollm2)
    run = result.runs[0]
    out = _generate(smollm2, result.prompt_ids.tolist(), _strategy({"name": "greedy"}), 10,
                    return_dict_in_generate=True, output_logits=True)
    ref_ids = out.sequences[0, len(result.prompt_ids):].tolist()
    assert run.token_ids.tolist() == ref_ids
    ref_lp = [float(torch.log_softmax(lg[0].float(), -1)[t]) for lg, t in zip(out.logits, ref_ids)]
    np.testing.assert_allclose(run.token_logprobs, ref_lp, atol=1e-4)
    steps = run.steps
    assert steps.chosen_ids.tolist() == run.token_ids.tolist()
    assert steps.stage_names == ()
    assert np.all(steps.top_ids[:, 0] == steps.chosen_ids)  # greedy picks the top raw token
    np.testing.assert_allclose(np.log(steps.chosen_raw_probs), run.token_logprobs, atol=1e-4)
    assert np.all(np.isfinite(run.token_logprobs)) and np.all(steps.entropy_nats > 0)
    assert result.first_logits.shape == (VOCAB,)
    assert run.text == smollm2.tokenizer.decode(ref_ids, skip_special_tokens=True)


@pytest.mark.parametrize("raw", [
    {"name": "sampling", "temperature": 0.7, "top_p": 0.95, "top_k": 0, "seed": 11},
    {"name": "sampling", "temperature": 1.3, "top_k": 40, "min_p": 0.05, "typical_p": 0.9,
     "repetition_penalty": 1.2, "no_repeat_ngram_size": 2, "seed": 5},
])
def test_seeded_sampling_reproducible_and_equals_generate(smollm2, raw):
    strategy = _strategy(raw)
    first = decoding.run(PROMPT, strategies=[strategy], max_new_tokens=8, engine=smollm2)
    again = decoding.run(PROMPT, strategies=[strategy], max_new_tokens=8, engine=smollm2)
    run = first.runs[0]
    assert run.seed == raw["seed"] and run.token_ids.tolist() == again.runs[0].token_ids.tolist()
    ref = _generate(smollm2, first.prompt_ids.tolist(), strategy, 8)[0, len(first.prompt_ids):].tolist()
    assert run.token_ids.tolist() == ref
    steps = run.steps
    assert steps.chosen_ids.tolist() == run.token_ids.tolist()
    assert len(steps.stage_names) == len([k for k in ("repetition_penalty", "no_repeat_ngram_size", "temperature",
                                                      "top_k", "top_p", "min_p", "typical_p")
                                          if k in raw and raw[k] not in (0, 1.0)])
    assert np.all(steps.chosen_final_probs > 0)  # a sampled token was always kept by every stage
    assert np.all(steps.stage_kept[:, -1] >= 1) and np.all(steps.stage_kept <= VOCAB)


def test_different_seeds_differ(tiny_engine):
    runs = decoding.run(PROMPT, strategies=[{"name": "sampling", "temperature": 1.5, "top_k": 0, "seed": s}
                                            for s in (1, 2)], max_new_tokens=6, engine=tiny_engine).runs
    assert runs[0].token_ids.tolist() != runs[1].token_ids.tolist()


@pytest.mark.parametrize("raw,prompt,new", [
    ({"name": "beam", "num_beams": 3}, PROMPT, 8),
    ({"name": "beam", "num_beams": 4, "length_penalty": 2.0}, "Answer in one word: what colour is the sky?", 12),
])
def test_beam_equals_generate(smollm2, raw, prompt, new):
    strategy = _strategy(raw)
    result = decoding.run(prompt, strategies=[strategy], max_new_tokens=new, engine=smollm2)
    run = result.runs[0]
    out = _generate(smollm2, result.prompt_ids.tolist(), strategy, new, return_dict_in_generate=True,
                    output_scores=True)
    assert run.token_ids.tolist() == out.sequences[0, len(result.prompt_ids):].tolist()
    beam = run.beam
    assert beam.winner_score == pytest.approx(float(out.sequences_scores[0]), abs=1e-4)
    winner_tokens = [beam.cand_token[t, c] for t, c in enumerate(beam.winner)]
    assert winner_tokens == run.token_ids.tolist()
    assert beam.cand_token.shape[1] == 2 * raw["num_beams"] and beam.running.shape[1] == raw["num_beams"]
    assert np.all(np.diff(beam.cand_score, axis=1) <= 1e-6)  # candidates sorted by score


def test_kept_sets_equal_definitions():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=500).astype(np.float32)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)
    stages = dict(decoding.stage_distributions(_strategy({"name": "sampling", "top_k": 7, "seed": 0}), logits))
    assert set(np.flatnonzero(stages["top-k"])) == set(order[:7])
    stages = dict(decoding.stage_distributions(_strategy({"name": "sampling", "top_k": 0, "top_p": 0.8, "seed": 0}),
                                               logits))
    n_nucleus = int(np.searchsorted(np.cumsum(probs[order]), 0.8) + 1)  # smallest set with mass >= 0.8
    assert set(np.flatnonzero(stages["top-p"])) == set(order[:n_nucleus])
    np.testing.assert_allclose(stages["top-p"][order[:n_nucleus]],
                               probs[order[:n_nucleus]] / probs[order[:n_nucleus]].sum(), rtol=1e-4)
    stages = dict(decoding.stage_distributions(_strategy({"name": "sampling", "top_k": 0, "min_p": 0.1, "seed": 0}),
                                               logits))
    assert set(np.flatnonzero(stages["min-p"])) == set(np.flatnonzero(probs >= 0.1 * probs.max()))
    stages = dict(decoding.stage_distributions(_strategy({"name": "sampling", "temperature": 0.5, "top_k": 0,
                                                          "seed": 0}), logits))
    sharp = np.exp((logits - logits.max()) / 0.5)
    np.testing.assert_allclose(stages["temperature"], sharp / sharp.sum(), rtol=1e-4, atol=1e-7)


def test_loop_start():
    assert decoding.loop_start([5, 6, 7, 8, 9]) is None
    assert decoding.loop_start([1, 2, 3, 4, 3, 4, 3, 4, 3, 4]) == 4
    assert decoding.loop_start([9, 8, 7, 7, 7, 7, 7, 7]) == 3
    assert decoding.loop_start([1, 2, 3, 1, 2]) is None  # too short to call a loop


def test_bad_inputs_and_caps(tiny_engine):
    with pytest.raises(ValueError, match="negative"):
        _strategy({"name": "sampling", "temperature": -0.5})
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            _strategy({"name": "sampling", "top_p": bad})
    with pytest.raises(ValueError, match="top_k=-1"):
        _strategy({"name": "sampling", "top_k": -1})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _strategy({"name": "sampling", "min_p": 1.5})
    with pytest.raises(ValueError, match="Unknown decoding strategy"):
        _strategy({"name": "contrastive"})
    with pytest.raises(ValueError, match="does not take"):
        _strategy({"name": "greedy", "temperature": 0.7})
    greedy_like = _strategy({"name": "sampling", "temperature": 0, "seed": 3})
    assert not greedy_like.do_sample and greedy_like.seed is None
    notices: list[str] = []
    assert _strategy({"name": "sampling", "top_k": 10 ** 6}, notices).params["top_k"] == VOCAB
    assert _strategy({"name": "beam", "num_beams": 99}, notices).params["num_beams"] == 8
    assert any("clamped" in n for n in notices) and any("capped" in n for n in notices)
    assert _strategy({"name": "sampling"}).seed is not None  # a sampled run always has a seed
    engine, _, _, max_new, notes = decoding.prepare(PROMPT, None, [{"name": "greedy"}], 10 ** 6, tiny_engine)
    assert max_new == 256 and "capped" in notes[0]
    with pytest.raises(ValueError, match="at least 1"):
        decoding.prepare(PROMPT, None, [{"name": "greedy"}], 0, tiny_engine)
    with pytest.raises(ValueError, match="prompt"):
        decoding.prepare("  ", None, [{"name": "greedy"}], 5, tiny_engine)
    # temperature 0 runs as greedy through the whole pipeline (transformers would raise)
    runs = decoding.run(PROMPT, strategies=[{"name": "sampling", "temperature": 0}, {"name": "greedy"}],
                        max_new_tokens=5, engine=tiny_engine).runs
    assert runs[0].token_ids.tolist() == runs[1].token_ids.tolist()


def test_api_shape_and_order(tiny_engine):
    result = decoding.run(PROMPT, strategies=[{"name": "beam", "num_beams": 2}, {"name": "greedy"},
                                              {"name": "sampling", "seed": 4}], max_new_tokens=4, engine=tiny_engine)
    api = decoding.to_api(result)
    assert [r["strategy"] for r in api["runs"]] == ["beam", "greedy", "sampling"]
    for r in api["runs"]:
        assert set(r) == {"strategy", "params", "seed", "text", "token_ids", "token_logprobs", "seconds"}
        assert len(r["token_ids"]) == len(r["token_logprobs"]) and all(lp <= 0 for lp in r["token_logprobs"])
    assert api["runs"][2]["seed"] == 4 and api["runs"][0]["seed"] is None
    assert Strategy("greedy").label == "greedy"
