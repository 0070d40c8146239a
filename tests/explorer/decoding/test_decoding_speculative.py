"""Speculative decoding: prompt lookup and assisted generation give exactly plain greedy's ids, and the
records (drafted / accepted / target tokens) add up to the output."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from explorer.decoding.speculative import run_speculative
from explorer.core.engine import Engine

QUOTE = ("Repeat this sentence exactly: The quick brown fox jumps over the lazy dog near the river bank "
         "on a sunny afternoon.")


def _check_records(result):
    rebuilt = []
    for draft, n_ok, target in zip(result.drafted, result.accepted, result.target_tokens):
        assert 0 <= n_ok <= len(draft) <= result.num_draft
        rebuilt += list(draft[:n_ok]) + [int(target)]
    assert rebuilt[:len(result.token_ids)] == result.token_ids.tolist()


def test_prompt_lookup_equals_greedy_and_generate(smollm2):
    result = run_speculative(QUOTE, engine=smollm2, max_new_tokens=24, num_draft=8)
    assert result.identical
    assert result.num_drafted > 0 and result.accepted.sum() > 0  # the quote is found in the prompt
    assert result.forward_passes < len(result.token_ids)
    _check_records(result)
    prompt = smollm2.chat_ids(QUOTE)
    with smollm2.session():
        ref = smollm2.model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False,
                                     prompt_lookup_num_tokens=8)[0, len(prompt):].tolist()
    assert result.token_ids.tolist() == ref


def _renamed(engine, name):
    return Engine(dataclasses.replace(engine.loaded, spec=dataclasses.replace(engine.spec, name=name)))


def test_assisted_equals_greedy(tiny_engine):
    from conftest import make_tiny_engine

    random_draft = _renamed(make_tiny_engine(seed=7), "tiny-random-draft")
    result = run_speculative(QUOTE, method="assisted", engine=tiny_engine, draft_engine=random_draft,
                             max_new_tokens=12, num_draft=3)
    assert result.identical and result.draft_model == random_draft.name
    _check_records(result)
    prompt = tiny_engine.chat_ids(QUOTE)
    with tiny_engine.session():  # transformers' own assisted generation gives the same ids
        ref = tiny_engine.model.generate(torch.tensor([prompt]), assistant_model=random_draft.model, do_sample=False,
                                         max_new_tokens=12)[0, len(prompt):].tolist()
    assert result.token_ids.tolist() == ref
    # a draft model with the target's own weights (under another name) is always right
    twin = _renamed(tiny_engine, "twin")
    perfect = run_speculative(QUOTE, method="assisted", engine=tiny_engine, draft_engine=twin,
                              max_new_tokens=12, num_draft=3)
    assert perfect.identical and perfect.acceptance_rate == 1.0
    assert perfect.forward_passes == 3  # 12 tokens in blocks of 3 drafts + 1 target token
    _check_records(perfect)


def test_speculative_bad_inputs(tiny_engine):
    with pytest.raises(ValueError, match="smaller than the target"):
        run_speculative(QUOTE, method="assisted", engine=tiny_engine, draft_engine=tiny_engine, max_new_tokens=4)
    with pytest.raises(ValueError, match="draft model"):
        run_speculative(QUOTE, method="assisted", engine=tiny_engine, max_new_tokens=4)
    with pytest.raises(ValueError, match="Unknown speculative method"):
        run_speculative(QUOTE, method="medusa", engine=tiny_engine)
    with pytest.raises(ValueError, match="num_draft"):
        run_speculative(QUOTE, engine=tiny_engine, num_draft=0)
