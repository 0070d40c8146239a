"""Next token lens mechanics on the tiny random Llama, checked against direct torch / transformers computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.next_token import context, domains, min_k, needle, scoring
from explorer.next_token.texts import LONG_DOCUMENT, NEEDLE, PROSE

TEXT = "The quick brown fox jumps over the lazy dog. Then it sleeps in the sun, dreaming of rabbits."


def _reference_logprobs(engine, ids):
    with torch.no_grad():
        logits = engine.model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return logp[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0].numpy(), logits


def test_chunked_scores_equal_one_pass(tiny_engine, monkeypatch):
    monkeypatch.setattr(scoring, "chunk_tokens", lambda engine: 5)  # many chunks continuing one cache
    result = scoring.run(TEXT, engine=tiny_engine, top_k=4)
    ids = result.ids.tolist()
    expected, logits = _reference_logprobs(tiny_engine, ids)
    np.testing.assert_allclose(result.logprob, expected, rtol=1e-4, atol=1e-5)
    # rank: 1 + tokens with a higher logit; top-k ids are the arg-sorted logits
    actual = logits[:-1].gather(1, torch.tensor(ids[1:])[:, None])
    np.testing.assert_array_equal(result.rank, ((logits[:-1] > actual).sum(1) + 1).numpy())
    np.testing.assert_array_equal(result.top_ids, logits[:-1].topk(4, dim=-1).indices.numpy())
    assert np.all(np.diff(result.top_p, axis=1) <= 1e-12)
    assert result.reference_tokens == 5 and result.reference_loss == pytest.approx(-expected[:4].mean(), rel=1e-4)


def test_surprisal_sums_to_n_times_cross_entropy(tiny_engine):
    result = scoring.run(TEXT, engine=tiny_engine)
    n = len(result.ids) - 1
    assert result.n_predicted == n
    assert result.surprisal.sum() == pytest.approx(n * result.cross_entropy, rel=1e-12)
    assert result.perplexity == pytest.approx(math.exp(result.cross_entropy))
    # SmolLM2's tokenizer adds no BOS: the bytes of all tokens are the text's bytes
    assert int(result.token_bytes.sum()) == len(TEXT.encode("utf-8"))
    first = len(result.token_texts[0].encode("utf-8"))
    assert result.predicted_bytes == len(TEXT.encode("utf-8")) - first
    assert result.bits_per_byte == pytest.approx(result.total_nll / (math.log(2) * result.predicted_bytes))


def test_token_bytes_cover_multibyte_text(tiny_engine):
    text = "naïve 日本語 🍓 ok"
    ids = tiny_engine.tokenizer(text)["input_ids"]
    counts = scoring.token_byte_counts(tiny_engine.tokenizer, text, ids)
    assert counts.sum() == len(text.encode("utf-8")) and len(counts) == len(ids)


def test_api_shape(tiny_engine):
    api = scoring.run(TEXT, engine=tiny_engine, top_k=3).to_api()
    assert {"tokens", "cross_entropy", "perplexity", "bits_per_byte", "notices"} <= set(api)
    first, second = api["tokens"][0], api["tokens"][1]
    assert first["logprob"] is None and first["rank"] is None and first["top"] == []
    assert set(second) == {"id", "text", "logprob", "rank", "top"} and len(second["top"]) == 3
    assert set(second["top"][0]) == {"id", "text", "p"}


def test_bad_inputs(tiny_engine):
    with pytest.raises(ValueError, match="one token"):
        scoring.run("Hi", engine=tiny_engine)
    with pytest.raises(ValueError, match="empty"):
        scoring.run("   ", engine=tiny_engine)
    with pytest.raises(ValueError, match="top_k"):
        scoring.run(TEXT, engine=tiny_engine, top_k=0)
    capped = scoring.run(TEXT, engine=tiny_engine, top_k=10**6)
    assert any("top_k" in n for n in capped.notices)


def test_over_cap_scores_a_window_with_a_notice(tiny_engine):
    result = scoring.run(LONG_DOCUMENT, engine=tiny_engine, cap=50)
    assert len(result.ids) == 50 and "scored the first 50" in result.notices[0]


def test_min_k_score_is_the_mean_of_the_lowest():
    lp = np.array([-0.1, -5.0, -0.3, -2.0, -0.2, -7.0, -0.4, -0.5, -0.6, -1.0])
    assert min_k.min_k_score(lp, 0.2) == (pytest.approx(-6.0), 2)
    assert min_k.min_k_score(lp, 1.0)[0] == pytest.approx(lp.mean())
    assert min_k.min_k_score(lp, 0.01) == (-7.0, 1)


def test_min_k_run_and_bad_k(tiny_engine):
    result = min_k.run(TEXT, k=0.2, engine=tiny_engine)
    scored = scoring.run(TEXT, engine=tiny_engine)
    assert result.to_api()["score"] == pytest.approx(min_k.min_k_score(scored.logprob, 0.2)[0])
    assert result.famous.score < 0 and result.fresh.score < 0
    for bad in (0, 1.5, "x"):
        with pytest.raises(ValueError, match="k must"):
            min_k.run(TEXT, k=bad, engine=tiny_engine)


def test_domain_windows_and_bootstrap():
    rng = np.random.default_rng(0)
    nll, nbytes = rng.gamma(2.0, 1.0, 200), rng.integers(1, 6, 200)
    nll_w, count_w, bytes_w = domains.window_sums(nll, nbytes, 32)
    assert nll_w.sum() == pytest.approx(nll.sum()) and count_w.sum() == 200 and bytes_w.sum() == nbytes.sum()
    assert count_w.min() >= 16
    lo, hi, blo, bhi = domains.bootstrap_interval(nll_w, count_w, bytes_w)
    point = math.exp(nll.mean())
    assert lo < point < hi
    bpb = nll.sum() / (math.log(2) * nbytes.sum())
    assert blo < bpb < bhi


def test_domain_table_on_tiny(tiny_engine):
    table = domains.run(engine=tiny_engine, names=("English prose", "shuffled prose", "random tokens"))
    prose = table.row("English prose")
    assert prose.perplexity == pytest.approx(scoring.run(PROSE, engine=tiny_engine).perplexity, rel=1e-9)
    assert table.row("shuffled prose").tokens > 0 and table.provenance.kind == "measured"
    with pytest.raises(ValueError, match="Unknown domain"):
        domains.run(engine=tiny_engine, names=("Klingon",))


def test_loss_by_position_bins(tiny_engine):
    assert context.log_bins(10).tolist() == [1, 2, 4, 8, 11]
    assert context.log_bins(1046).tolist()[-3:] == [256, 512, 1047]  # the short bin 1024-1046 merged
    assert context.plateau_position(np.array([1, 2, 4, 8, 16]), np.array([5.0, 4.0, 3.0, 2.95])) == 4
    result = context.run(engine=tiny_engine, max_tokens=100)
    assert len(result.nll) == 99 and result.edges[-1] == 100 and "max_position_tokens" in result.notices[0]
    assert result.bin_mean[0] == pytest.approx(result.nll[0])


def test_needle_prompt_places_the_fact(tiny_engine):
    tok = tiny_engine.tokenizer
    needle_ids = tok(" " + NEEDLE, add_special_tokens=False)["input_ids"]
    for length in (128, 300):
        for depth in (0.0, 0.5, 1.0):
            ids = needle.build_prompt(tok, length, depth)
            assert length - 40 <= len(ids) <= length
            text = tok.decode(ids)
            assert NEEDLE in text and text.endswith("The secret passcode is")
    start = needle.build_prompt(tok, 300, 0.0)
    assert start[:len(needle_ids)] == needle_ids
    end = needle.build_prompt(tok, 300, 1.0)
    question = tok(needle.NEEDLE_QUESTION, add_special_tokens=False)["input_ids"]
    assert end[-len(question) - len(needle_ids):-len(question)] == needle_ids


def test_needle_cells_come_from_greedy_generation(tiny_engine):
    """Each cell's verdict and text equal transformers' own greedy ``generate`` on the same prompt."""
    result = needle.run(engine=tiny_engine, lengths=[96, 160], depths=[0.0, 1.0])
    answer = needle.answer_ids(tiny_engine.tokenizer)
    assert result.grid.shape == (2, 2)
    for cell in result.cells:
        ids = needle.build_prompt(tiny_engine.tokenizer, cell.length, cell.depth)
        out = tiny_engine.model.generate(torch.tensor([ids]), max_new_tokens=len(answer), do_sample=False,
                                         attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                         pad_token_id=2, eos_token_id=None)
        generated = out[0, len(ids):].tolist()
        assert cell.correct == (generated == answer)
        assert tiny_engine.tokenizer.decode(generated).startswith(cell.generated)
        with torch.no_grad():
            logits = tiny_engine.model(input_ids=torch.tensor([ids + answer])).logits[0, len(ids) - 1:-1].double()
        ref = torch.log_softmax(logits, -1).gather(1, torch.tensor(answer)[:, None]).sum().item()
        assert cell.answer_logprob == pytest.approx(ref, rel=1e-4)
    api = result.to_api()
    assert set(api) >= {"grid", "lengths", "depths", "metric"} and api["metric"] == "accuracy"


def test_needle_grid_over_the_caps_is_refused(tiny_engine):
    with pytest.raises(ValueError, match="at most 1,024 tokens"):
        needle.run(engine=tiny_engine, lengths=[2048], depths=[0.5], max_tokens=1024)
    with pytest.raises(ValueError, match="at most 4 cells"):
        needle.run(engine=tiny_engine, lengths=[100, 200, 300], depths=[0, 1], max_cells=4)
    with pytest.raises(ValueError, match="depths"):
        needle.run(engine=tiny_engine, lengths=[100], depths=[1.5])
    with pytest.raises(ValueError, match="lengths"):
        needle.run(engine=tiny_engine, lengths=[10], depths=[0.5])


def test_needle_verdict_wording():
    cell = lambda length, depth, ok, lp: needle.NeedleCell(length, length, depth, ok, lp, "", 1.0)  # noqa: E731
    middle = needle.NeedleResult("m", (100,), (0.0, 0.5, 1.0), (cell(100, 0.0, True, -1), cell(100, 0.5, False, -9),
                                                               cell(100, 1.0, True, -1)))
    assert "Lost in the middle shows" in middle.verdict()
    flat = needle.NeedleResult("m", (100,), (0.0, 0.5, 1.0), tuple(cell(100, d, True, -1) for d in (0.0, 0.5, 1.0)))
    assert "does not show" in flat.verdict()


def test_needle_partial_grid_says_so():
    cell = needle.NeedleCell(100, 100, 0.0, True, -1.0, " 7391", 1.0)
    partial = needle.NeedleResult("m", (100, 200), (0.0, 0.5, 1.0), (cell,))
    assert np.isnan(partial.grid).sum() == 5 and "Partial grid (1 of 6 cells)" in partial.verdict()
    assert partial.to_api()["grid"][1] == [None, None, None]
