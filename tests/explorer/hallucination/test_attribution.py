"""Captum attribution: shapes follow the question's segments, template and special tokens get none, braces work."""
from __future__ import annotations

import numpy as np
import pytest

from explorer.hallucination.attribution import _prompt_parts, attribute, split_segments

QUESTION = "Who wrote {the} play Romeo and Juliet? Name one."


def test_split_segments_join_back():
    for unit in ("word", "sentence"):
        assert "".join(split_segments(QUESTION, unit)) == QUESTION
    assert split_segments(QUESTION, "word")[2] == " {the}"
    assert split_segments(QUESTION, "sentence") == ["Who wrote {the} play Romeo and Juliet?", " Name one."]
    with pytest.raises(ValueError, match="unit"):
        split_segments(QUESTION, "paragraph")


@pytest.mark.parametrize("method", ["feature_ablation", "integrated_gradients"])
@pytest.mark.parametrize("unit", ["word", "sentence", "token"])
def test_attribution_shapes_and_fixed_tokens(tiny_engine, method, unit):
    result = attribute(tiny_engine, QUESTION, method=method, unit=unit, target="William Shakespeare")
    expected = {"word": len(split_segments(QUESTION, "word")), "sentence": 2,
                "token": len(tiny_engine.tokenizer(QUESTION, add_special_tokens=False)["input_ids"])}[unit]
    assert len(result.segments) == result.segment_scores.shape[0] == expected
    if unit != "token":
        assert "".join(result.segments) == QUESTION
    assert len(result.tokens) == result.token_scores.shape[0] == result.attributed.shape[0]
    specials = set(tiny_engine.tokenizer.all_special_tokens)
    on_special = [t in specials for t in result.tokens]
    assert any(on_special) and not result.attributed[on_special].any()
    assert np.all(result.token_scores[~result.attributed] == 0)
    assert np.any(result.segment_scores != 0)
    # the attributed tokens spell the question exactly
    assert "".join(t for t, on in zip(result.tokens, result.attributed) if on) == QUESTION


def test_feature_ablation_matches_a_manual_ablation(tiny_engine):
    """Ablating one word by hand changes the target by exactly that word's attribution."""
    import torch

    from explorer.hallucination.attribution import NEUTRAL_TOKEN, _prompt_parts, _target_fn

    result = attribute(tiny_engine, QUESTION, method="feature_ablation", unit="word", target="Shakespeare")
    prefix, seg_ids, suffix, _ = _prompt_parts(tiny_engine, QUESTION)
    forward = _target_fn(tiny_engine, tiny_engine.tokenizer("Shakespeare", add_special_tokens=False)["input_ids"])
    neutral = tiny_engine.tokenizer(NEUTRAL_TOKEN, add_special_tokens=False)["input_ids"][0]
    ablated = [ids if i != 3 else [neutral] * len(ids) for i, ids in enumerate(seg_ids)]
    full = [prefix + [t for ids in seg_ids for t in ids] + suffix,
            prefix + [t for ids in ablated for t in ids] + suffix]
    with torch.inference_mode():
        values = forward(torch.tensor(full)).numpy()
    assert result.segment_scores[3] == pytest.approx(values[0] - values[1], abs=1e-4)
    assert result.target_logprob == pytest.approx(values[0], abs=1e-4)


def test_bad_attribution_input(tiny_engine):
    with pytest.raises(ValueError, match="question"):
        attribute(tiny_engine, "  ", target="x")
    with pytest.raises(ValueError, match="method"):
        attribute(tiny_engine, "Hi?", method="shap", target="x")
    with pytest.raises(ValueError, match="cap"):
        attribute(tiny_engine, "Hi there, how are you?", target="x", method="integrated_gradients", max_seconds=1e-6)


TYPED_SPECIAL = "Who wrote <|im_end|> Hamlet?"


@pytest.mark.parametrize("method", ["feature_ablation", "integrated_gradients"])
def test_typed_special_token_parsed_gets_no_credit(tiny_engine, method):
    tok = tiny_engine.tokenizer
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    result = attribute(tiny_engine, TYPED_SPECIAL, method=method, unit="word", target="Shakespeare",
                       parse_special=True)
    prefix, seg_ids, _, _ = _prompt_parts(tiny_engine, TYPED_SPECIAL, parse_special=True)
    flat = [t for ids in seg_ids for t in ids]
    assert im_end in flat  # the typed text became the real special token, as the Tokens tab's "parsed" shows
    position = len(prefix) + flat.index(im_end)
    assert not result.attributed[position] and result.token_scores[position] == 0.0
    words = [t for t in result.tokens if t.strip()]
    assert "<|im_end|>" in words
    credited = result.attributed.sum()
    assert credited == len(flat) - flat.count(im_end)


def test_typed_special_token_as_plain_text_is_attributed(tiny_engine):
    tok = tiny_engine.tokenizer
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    result = attribute(tiny_engine, TYPED_SPECIAL, method="feature_ablation", unit="word", target="Shakespeare",
                       parse_special=False)
    prefix, seg_ids, _, words = _prompt_parts(tiny_engine, TYPED_SPECIAL, parse_special=False)
    flat = [t for ids in seg_ids for t in ids]
    assert im_end not in flat and len(flat) > len(tok(TYPED_SPECIAL, add_special_tokens=False)["input_ids"])
    assert tok.decode(flat) == tok.decode(tok(TYPED_SPECIAL, add_special_tokens=False,
                                              split_special_tokens=True)["input_ids"])
    assert result.attributed.sum() == len(flat)
    index = [i for i, w in enumerate(result.segments) if "<|im_end|>" in w][0]
    assert result.segment_scores[index] != 0.0


def _lock_free_on_every_pass(engine, monkeypatch) -> list[bool]:
    """Patch ``engine.session`` to record, at each pass, whether another thread could take the model's lock."""
    import contextlib
    import threading

    real, free = engine.session, []

    @contextlib.contextmanager
    def session(grad: bool = False):
        got = []

        def probe():
            if engine.lock.acquire(timeout=5):
                engine.lock.release()
                got.append(True)

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        free.append(bool(got))
        with real(grad=grad):
            yield engine

    monkeypatch.setattr(engine, "session", session)
    return free


@pytest.mark.parametrize("method", ["feature_ablation", "integrated_gradients"])
def test_lock_is_free_between_passes_and_no_hook_stays(tiny_engine, monkeypatch, method):
    free = _lock_free_on_every_pass(tiny_engine, monkeypatch)
    attribute(tiny_engine, QUESTION, method=method, unit="sentence", target="Shakespeare")
    assert len(free) >= 3 and all(free)  # several passes, the lock released between every two
    embedding = tiny_engine.model.get_input_embeddings()
    assert not embedding._forward_hooks and not embedding._forward_pre_hooks


def test_integrated_gradients_equals_captums_layer_integrated_gradients(tiny_engine):
    """IG on inputs_embeds gives captum's LayerIntegratedGradients-on-the-embedding-layer attributions."""
    import torch
    from captum.attr import LayerIntegratedGradients

    from explorer.hallucination.attribution import IG_STEPS, NEUTRAL_TOKEN, _prompt_parts

    result = attribute(tiny_engine, QUESTION, method="integrated_gradients", unit="token", target="Shakespeare")
    prefix, seg_ids, suffix, _ = _prompt_parts(tiny_engine, QUESTION)
    flat = [t for ids in seg_ids for t in ids]
    ids = torch.tensor([prefix + flat + suffix])
    baseline = ids.clone()
    baseline[0, len(prefix):len(prefix) + len(flat)] = tiny_engine.tokenizer(NEUTRAL_TOKEN, add_special_tokens=False)["input_ids"][0]
    answer = torch.tensor(tiny_engine.tokenizer("Shakespeare", add_special_tokens=False)["input_ids"])

    def forward(prompt):  # the answer's log-probability, written out independently of the explorer
        full = torch.cat([prompt, answer.expand(prompt.shape[0], -1)], dim=1)
        logits = tiny_engine.model(full, use_cache=False).logits[:, prompt.shape[1] - 1:-1].float()
        logp = torch.log_softmax(logits, -1)
        return logp.gather(2, answer.expand(prompt.shape[0], -1).unsqueeze(2)).squeeze(2).sum(1)

    lig = LayerIntegratedGradients(forward, tiny_engine.model.get_input_embeddings())
    reference = lig.attribute(ids, baselines=baseline, n_steps=IG_STEPS, internal_batch_size=4)
    expected = reference[0, :ids.shape[1]].sum(-1).detach().numpy()
    np.testing.assert_allclose(result.token_scores[result.attributed], expected[result.attributed], atol=1e-4, rtol=1e-3)
