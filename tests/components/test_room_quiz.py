"""Guess the next token together in a room, through the app (issue 31): the JSON APIs and the follower's guess
route on the real SmolLM2, the reveal against a direct transformers forward pass, and no raw guess in the push."""
import gzip
import json

import httpx
import pytest
import torch

PROMPT = "The capital of France is"


def _join_by_push(app_url, code, client_id):
    """Open a follower page's push connection (which joins the room) and close it after the first bytes."""
    with httpx.stream("GET", f"{app_url}room_push/{code}/events", params={"client": client_id}, timeout=30) as r:
        assert r.status_code == 200
        next(r.iter_bytes())


def _guess(app_url, code, qid, client_id, guess):
    return httpx.post(f"{app_url}room_push/{code}/guess", timeout=30,
                      json={"question_id": qid, "guess": guess, "client": client_id})


def _pushed(app_url, code) -> dict:
    r = httpx.get(f"{app_url}room_push/{code}/payload", headers={"Accept-Encoding": "gzip"}, timeout=30)
    return json.loads(r.content if r.content[:1] == b"{" else gzip.decompress(r.content))


def test_a_room_guesses_and_the_reveal_matches_a_direct_forward_pass(app_url, client):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from models.loading import load_model

    room = client.predict(api_name="/room_start")  # this client's session presents
    code, token = room["code"], room["token"]
    with pytest.raises(AppError, match="only the presenter"):  # a follower cannot open or reveal
        client.predict(code, "not-the-token", PROMPT, None, False, api_name="/room_question")
    with pytest.raises(AppError, match="prompt: 2,001 characters"):
        client.predict(code, token, "x" * 2001, None, False, api_name="/room_question")
    qid = client.predict(code, token, PROMPT, None, False, api_name="/room_question")["question_id"]
    with pytest.raises(AppError, match="only the presenter"):
        client.predict(code, "not-the-token", qid, api_name="/room_reveal")

    # a Gradio session that never joined is refused; reading the room joins it; one guess per session
    other = Client(app_url, verbose=False)
    with pytest.raises(AppError, match="not joined"):
        other.predict(code, qid, "Paris", api_name="/room_guess")
    other.predict(code, "", api_name="/room_state")
    first = other.predict(code, qid, "  Paris ", api_name="/room_guess")
    assert first["accepted"] and first["token"] == " Paris"
    again = other.predict(code, qid, "London", api_name="/room_guess")
    assert not again["accepted"] and again["token"] == " Paris" and "first guess counts" in again["message"]
    assert client.predict(code, qid, "Lyon", api_name="/room_guess")["accepted"]  # the presenter plays too

    # follower pages guess through the push route once their push connection opened
    assert _guess(app_url, code, qid, "never-joined", "Paris").status_code == 400
    _join_by_push(app_url, code, "page-1")
    _join_by_push(app_url, code, "page-2")
    multi = _guess(app_url, code, qid, "page-1", "xylophonically")
    assert multi.status_code == 200 and multi.json()["n_tokens"] > 1 and "scored by its first" in multi.json()["message"]
    long = _guess(app_url, code, qid, "page-2", "y" * 41)
    assert long.status_code == 400 and "guess: 41 characters" in long.text
    assert _guess(app_url, code, qid, "page-2", "Paris").json()["accepted"]
    assert _guess(app_url, code, "nope", "page-2", "Paris").status_code == 400

    # before the reveal the push carries the counts only: no raw guessed token reaches a follower
    pushed = _pushed(app_url, code)["quiz"]
    assert pushed["state"] == "open" and pushed["guesses"] == 4 and "raw" not in pushed
    first_multi = multi.json()["token"]
    assert first_multi not in json.dumps(pushed) or any(b["token"] == first_multi for b in pushed["histogram"])
    assert sum(b["count"] for b in pushed["histogram"]) == 4

    revealed = client.predict(code, token, qid, api_name="/room_reveal")
    assert client.predict(code, token, qid, api_name="/room_reveal") == revealed  # the same result again
    loaded = load_model("smollm2-135m-instruct")
    tok = loaded.tokenizer
    ids = tok(PROMPT)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(loaded.model(torch.tensor([ids])).logits[0, -1].double(), -1)
    firsts = [tok(PROMPT + g)["input_ids"][len(ids)] for g in (" Paris", " Lyon", " xylophonically", " Paris")]
    assert revealed["room_cross_entropy"] == pytest.approx(-logp[firsts].mean().item(), rel=1e-3)
    assert revealed["model_entropy"] == pytest.approx(-(logp.exp() * logp).sum().item(), rel=1e-3)
    top1 = int(logp.argmax())
    assert revealed["model_top"][0]["token"] == tok.decode([top1])
    assert revealed["match_share"] == pytest.approx(sum(f == top1 for f in firsts) / 4)
    counts = {b["token"]: b["count"] for b in revealed["histogram"]}
    assert sum(counts.values()) == 4 and counts.get(" Paris", 0) == (2 if tok.encode(" Paris")[0] in
                                                                    logp.topk(10).indices.tolist() else 0)
    after = _pushed(app_url, code)["quiz"]
    assert after["state"] == "revealed" and after["model_top"] == revealed["model_top"]
    assert "cross-entropy" in after["html"] and "MEASURED" in after["html"]
    late = _guess(app_url, code, qid, "page-1", "Paris")
    assert late.status_code == 400 and "closed" in late.text


def test_presenter_notes_are_rendered_cleaned_and_capped():
    from components.room_notes import note_html

    out = note_html("**Look** at [this](javascript:alert(1)) <img src=x onerror=alert(1)>", cap=2000)
    assert "<strong>Look</strong>" in out and "href" not in out and "<img" not in out and "onerror" not in out
    assert "cut at 5 characters" in note_html("abcdefgh", cap=5) and note_html("  ", cap=5) == ""
