"""Guess the next token together (issue 31): first-token scoring, one guess per session, the histogram, and the
reveal's cross-entropy against a direct computation from a plain forward pass."""
import math

import numpy as np
import pytest
import torch

from explorer.workshop.quiz import HISTOGRAM_TOP, QuizBook, guess_ids, histogram, next_token_distribution

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def dist(tiny_engine):
    return next_token_distribution(tiny_engine, PROMPT)


def _book(tiny_engine, dist, members=("a", "b", "c", "d")):
    book = QuizBook(max_guess_chars=20, max_prompt_chars=100)
    for m in members:
        book.join("Room1", m)
    return book, book.open("room1", dist, tiny_engine.tokenizer)


def test_distribution_is_the_plain_forward_passes_last_position(tiny_engine, dist):
    ids = tiny_engine.tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        logits = tiny_engine.model(torch.tensor([ids])).logits[0, -1]
    expected = torch.log_softmax(logits.float(), -1).numpy()
    assert list(dist.prompt_ids) == ids
    np.testing.assert_allclose(dist.logprob, expected, atol=1e-5)


def test_guess_is_tokenised_as_written_after_the_prompt(tiny_engine):
    tok = tiny_engine.tokenizer
    ids = tok(PROMPT)["input_ids"]
    assert guess_ids(tok, ids, PROMPT, "Paris") == tok(" Paris", add_special_tokens=False)["input_ids"]
    spaced = PROMPT + " "  # a prompt that ends in whitespace: no space is added
    assert not tok.decode([guess_ids(tok, tok(spaced)["input_ids"], spaced, "Paris")[0]]).startswith(" ")


def test_one_guess_per_session_first_token_scoring_and_counts(tiny_engine, dist):
    tok = tiny_engine.tokenizer
    book, qid = _book(tiny_engine, dist)
    top = [int(i) for i in np.argsort(-dist.logprob, kind="stable")[:HISTOGRAM_TOP]]
    top_word = tok.decode([top[0]]).strip()
    first = book.guess("room1", qid, "a", "  Paris  ", tok)
    assert first.accepted and first.token == tok.decode([guess_ids(tok, dist.prompt_ids, PROMPT, "Paris")[0]])
    again = book.guess("room1", qid, "a", "London", tok)
    assert not again.accepted and "first guess counts" in again.message and again.token == first.token
    long = book.guess("room1", qid, "b", "unquestionably", tok)
    ids = guess_ids(tok, dist.prompt_ids, PROMPT, "unquestionably")
    assert len(ids) > 1 and long.n_tokens == len(ids) and "scored by its first" in long.message
    assert long.token == tok.decode([ids[0]])
    book.guess("room1", qid, "c", top_word, tok)
    tally = book.tally("room1", qid)
    assert tally["guesses"] == 3 and sum(b["count"] for b in tally["histogram"]) == 3
    assert len(tally["histogram"]) == HISTOGRAM_TOP + 1 and tally["histogram"][-1]["token"] == "other"
    expected = histogram([guess_ids(tok, dist.prompt_ids, PROMPT, g)[0] for g in ("Paris", "unquestionably", top_word)],
                         top, {i: tok.decode([i]) for i in top})
    assert sorted(tally["histogram"][:-1], key=str) == sorted(expected[:-1], key=str)
    assert tally["histogram"][-1] == expected[-1]
    labels = [b["token"].strip().lower() for b in tally["histogram"][:-1]]
    assert labels == sorted(labels)  # alphabetical before the reveal: the order gives no answer away
    # followers never see the raw guesses before the reveal; the presenter does
    assert "raw" not in tally and "Paris" not in str(tally).replace(tok.decode([top[0]]), "")
    raw = book.tally("room1", qid, raw=True)["raw"]
    third = tok.decode([guess_ids(tok, dist.prompt_ids, PROMPT, top_word)[0]])
    assert sorted(r["token"] for r in raw for _ in range(r["count"])) == sorted([first.token, long.token, third])


def test_reveal_matches_a_direct_computation_and_is_idempotent(tiny_engine, dist):
    tok = tiny_engine.tokenizer
    book, qid = _book(tiny_engine, dist)
    words = {"a": "Paris", "b": "the", "c": "a"}
    for member, word in words.items():
        book.guess("room1", qid, member, word, tok)
    revealed = book.reveal("room1", qid)
    p = torch.softmax(torch.tensor(dist.logprob, dtype=torch.float64), -1)
    firsts = [guess_ids(tok, dist.prompt_ids, PROMPT, w)[0] for w in words.values()]
    cross = -sum(math.log(p[i].item()) for i in firsts) / len(firsts)
    entropy = -(p * torch.log(p)).sum().item()
    assert revealed["room_cross_entropy"] == pytest.approx(cross, rel=1e-6)
    assert revealed["model_entropy"] == pytest.approx(entropy, rel=1e-5)
    top1 = int(torch.argmax(p))
    assert revealed["match_share"] == pytest.approx(sum(i == top1 for i in firsts) / 3)
    assert revealed["model_top"][0] == {"token": tok.decode([top1]), "p": pytest.approx(p[top1].item(), rel=1e-5)}
    assert [t["p"] for t in revealed["model_top"]] == sorted((t["p"] for t in revealed["model_top"]), reverse=True)
    assert book.reveal("room1", qid) == revealed  # revealing twice returns the same result
    with pytest.raises(ValueError, match="closed"):
        book.guess("room1", qid, "d", "late", tok)


def test_a_room_that_matches_the_model_scores_one(tiny_engine, dist):
    tok = tiny_engine.tokenizer
    book, qid = _book(tiny_engine, dist, members=("a",))
    top1 = int(np.argmax(dist.logprob))
    book.guess("room1", qid, "a", tok.decode([top1]).strip() or "x", tok)
    out = book.reveal("room1", qid)
    if guess_ids(tok, dist.prompt_ids, PROMPT, tok.decode([top1]).strip())[0] == top1:
        assert out["match_share"] == 1.0
        assert out["room_cross_entropy"] == pytest.approx(-float(dist.logprob[top1]), rel=1e-5)
    empty_book, empty = _book(tiny_engine, dist)
    nothing = empty_book.reveal("room1", empty)
    assert nothing["match_share"] == 0.0 and nothing["room_cross_entropy"] is None and nothing["guesses"] == 0


def test_bad_input_is_refused_with_the_argument_named(tiny_engine, dist):
    tok = tiny_engine.tokenizer
    book, qid = _book(tiny_engine, dist)
    with pytest.raises(ValueError, match="not joined"):
        book.guess("room1", qid, "stranger", "Paris", tok)
    with pytest.raises(ValueError, match="guess: 21 characters"):
        book.guess("room1", qid, "a", "x" * 21, tok)
    with pytest.raises(ValueError, match="guess: it is empty"):
        book.guess("room1", qid, "a", "   ", tok)
    with pytest.raises(ValueError, match="guess: must be text"):
        book.guess("room1", qid, "a", 3, tok)
    with pytest.raises(ValueError, match="question_id"):
        book.guess("room1", "nope", "a", "Paris", tok)
    with pytest.raises(ValueError, match="question_id"):
        book.reveal("other-room", qid)
    with pytest.raises(ValueError, match="prompt: 101 characters"):
        book.check_prompt("x" * 101)
    with pytest.raises(ValueError, match="prompt"):
        next_token_distribution(tiny_engine, "  ")
    newer = book.open("room1", dist, tok)  # one open question per room: the old one closes
    with pytest.raises(ValueError, match="question_id"):
        book.guess("room1", qid, "a", "Paris", tok)
    book.retain([])
    with pytest.raises(ValueError, match="question_id"):
        book.tally("room1", newer)


def test_the_question_travels_in_the_push_and_guesses_do_not_keep_a_room_alive():
    import json

    from explorer.workshop import PushHub, RoomGone, RoomStore

    hub = PushHub()
    quiz = {"question_id": "q1", "state": "open", "guesses": 1, "histogram": [{"token": "other", "count": 1}]}
    payload = hub.publish_quiz("room1", quiz)
    event = json.loads(payload.event.decode().split("data: ", 1)[1])
    assert event["quiz"] == quiz and json.loads(payload.body)["quiz"] == quiz
    assert "quiz" not in json.loads(hub.publish_quiz("room1", None).event.decode().split("data: ", 1)[1])

    now = [0.0]
    store = RoomStore(idle_s=10, clock=lambda: now[0])
    code, token = store.create()
    with pytest.raises(ValueError, match="only the presenter's session can reveal"):
        store.authorise(code, "wrong", "reveal the answer")
    now[0] = 8.0
    store.view(code, follower="guesser")  # a follower's read or guess is no presenter activity
    now[0] = 11.0
    with pytest.raises(RoomGone):
        store.authorise(code, token, "open a question")
