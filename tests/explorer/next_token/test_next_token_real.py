"""Next token lens on the real embedded SmolLM2-135M-Instruct: values against transformers' own loss, a needle the
model finds, the domain controls, and the encoder refusal."""
from __future__ import annotations

import math

import pytest
import torch

from explorer.next_token import domains, min_k, needle, scoring
from explorer.next_token.texts import LONG_DOCUMENT


def test_perplexity_equals_exp_of_transformers_loss(smollm2):
    """Scored in several chunks (one cache), the perplexity equals exp(loss) of one labels= pass (rel 1e-4)."""
    text = LONG_DOCUMENT[:3000]
    result = scoring.run(text, engine=smollm2, top_k=5)
    assert len(result.ids) > scoring.chunk_tokens(smollm2) + 10  # really chunked
    ids = torch.tensor([result.ids.tolist()])
    with torch.no_grad():
        loss = float(smollm2.model(input_ids=ids, labels=ids).loss)
    assert result.perplexity == pytest.approx(math.exp(loss), rel=1e-4)
    assert result.cross_entropy == pytest.approx(loss, rel=1e-4)
    assert result.surprisal.sum() == pytest.approx(result.n_predicted * loss, rel=1e-4)
    m = result.reference_tokens
    assert result.reference_loss == pytest.approx(float(result.surprisal[: m - 1].mean()), rel=1e-4)


def test_planted_needle_is_found(smollm2):
    """A fact in a short haystack is copied by the real model, in every depth of a small grid."""
    result = needle.run(engine=smollm2, lengths=[160], depths=[0.0, 1.0])
    assert all(c.correct for c in result.cells), [c.generated for c in result.cells]
    assert all(c.answer_logprob > -2.0 for c in result.cells)


def test_domain_controls_behave(smollm2):
    table = domains.run(engine=smollm2, names=("English prose", "shuffled prose", "random tokens"))
    prose, shuffled, rand = (table.row(n) for n in ("English prose", "shuffled prose", "random tokens"))
    assert prose.perplexity < shuffled.perplexity < rand.perplexity
    assert prose.ppl_low <= prose.perplexity <= prose.ppl_high


def test_min_k_famous_vs_fresh(smollm2):
    result = min_k.run("Four score and seven years ago our fathers brought forth on this continent",
                       engine=smollm2, k=0.2)
    assert result.famous.score > result.fresh.score


def test_encoder_is_refused():
    from explorer.core.engine import get_engine

    with pytest.raises(ValueError, match="does not predict the next token"):
        scoring.run("Hello there, world", model="all-minilm-l6-v2")
    encoder = get_engine("all-minilm-l6-v2")
    with pytest.raises(ValueError, match="does not predict the next token"):
        needle.run(engine=encoder, lengths=[100], depths=[0.5])
