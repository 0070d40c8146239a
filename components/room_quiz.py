"""Guess the next token together, in a room: the presenter's controls, the pushed view, the JSON APIs.

The presenter opens a question (the room's current model unless another is named; one forward pass,
:func:`explorer.workshop.next_token_distribution`), may guess like anyone, watches the counts with the raw guessed
tokens, and reveals. Every change of the question (opened, a guess counted, revealed) is pushed to the followers
through the room's push hub (:meth:`explorer.workshop.PushHub.publish_quiz`) as the counts without the raw guesses
and their HTML, rendered once here (:func:`quiz_html`) and cleaned; a follower's page guesses with ``POST
/room_push/{code}/guess`` (``components/room_routes.py``), whose member id is its push client id, counted as
joined when its push connection opened. A Gradio session joins by presenting the room or reading it
(``/room_state``). The rules (one guess per member, first-token scoring, the reveal's numbers) are
``explorer/workshop/quiz.py``.
"""
from __future__ import annotations

import html

import gradio as gr

from components.badge import badge_html
from components.errors import ui_errors
from components.room_push import clean_html
from explorer.core.engine import get_engine
from explorer.core.provenance import measured
from explorer.workshop import RoomGone, next_token_distribution, push_hub, quiz_book, room_store
from explorer.workshop.quiz import OTHER

API_NAMES = ("room_question", "room_guess", "room_reveal")
REFRESH_S = 1.0  # the presenter's counts refresh this often while a question is open


def session_member(session: str | None) -> str:
    """The member id of a Gradio session (its session hash)."""
    return f"s:{session}" if session else ""


def client_member(client: str | None) -> str:
    """The member id of a follower page (its push client id)."""
    return f"c:{str(client)[:64]}" if client else ""


def _room_model(code: str) -> str | None:
    return (room_store().view(code).state.get("params") or {}).get("model") or None


def open_question(code: str, token: str, prompt, model: str | None = None, chat_template: bool = False,
                  session: str | None = None) -> str:
    """Open a question in room ``code`` on ``prompt`` (model: ``model``, else the room's current one, else the
    default); the presenter's ``session`` joins. Returns the question id.

    Raises:
        RoomGone: no live room has this code.
        ValueError: not the presenter's ``token``, a bad or too long ``prompt``, an unknown ``model``.
    """
    store, book = room_store(), quiz_book()
    store.authorise(code, token, "open a question")
    book.check_prompt(prompt)
    engine = get_engine(model or _room_model(code))
    dist = next_token_distribution(engine, prompt, chat_template=bool(chat_template))
    question_id = book.open(code, dist, engine.tokenizer)
    book.join(code, session_member(session))
    push(code)
    return question_id


def send_guess(code: str, question_id: str, member: str, guess) -> dict:
    """``member``'s guess: ``{"accepted", "token", "n_tokens", "message"}`` (pushed to the room when counted).

    Raises:
        RoomGone: no live room has this code.
        ValueError: see :meth:`explorer.workshop.QuizBook.guess`.
    """
    room_store().view(code)  # RoomGone for an ended room
    book = quiz_book()
    question = book.current(code)
    if question is None:
        raise ValueError("question_id: this room has no open question.")
    result = book.guess(code, question_id, member, guess, get_engine(question.dist.model).tokenizer)
    if result.accepted:
        push(code)
    return {"accepted": result.accepted, "token": result.token, "n_tokens": result.n_tokens,
            "message": result.message}


def reveal(code: str, token: str, question_id: str) -> dict:
    """Reveal (presenter only; the same result when revealed again). See :meth:`explorer.workshop.QuizBook.reveal`.

    Raises:
        RoomGone: no live room has this code.
        ValueError: not the presenter's ``token``, or an unknown ``question_id``.
    """
    room_store().authorise(code, token, "reveal the answer")
    out = quiz_book().reveal(code, question_id)
    push(code)
    return out


def follower_view(code: str) -> dict | None:
    """What every follower may see of the room's question: the tally without raw guesses (or the reveal), its
    ``state`` (``open``/``revealed``) and ``html`` (:func:`quiz_html`); ``None`` without a question."""
    book = quiz_book()
    question = book.current(code)
    if question is None:
        return None
    view = book.reveal(code, question.id) if question.revealed is not None else book.tally(code, question.id)
    view = {**view, "state": "revealed" if question.revealed is not None else "open"}
    view["html"] = clean_html(quiz_html(view))
    return view


def push(code: str) -> None:
    """Push the room's question as followers see it (:func:`follower_view`)."""
    push_hub().publish_quiz(code, follower_view(code))


def _bars(bars: list[dict], total: int, probs: dict | None = None) -> str:
    rows = []
    for bar in bars:
        share = bar["count"] / total if total else 0.0
        p = "" if probs is None else (f"<td>{probs[bar['token']]:.1%}</td>" if bar["token"] in probs else "<td></td>")
        name = ("<em>other tokens</em>" if bar is bars[-1] and bar["token"] == OTHER
                else f"<code>{html.escape(repr(bar['token']))}</code>")
        rows.append(f"<tr><td>{name}</td><td>{bar['count']}</td>"
                    f"<td><span class='llmx-quiz-bar' style='display:inline-block;height:0.8em;background:#4c78a8;"
                    f"width:{160 * share:.0f}px'></span></td>{p}</tr>")
    head = "<tr><th>token</th><th>guesses</th><th></th>" + ("<th>model p</th>" if probs is not None else "") + "</tr>"
    return f"<table class='llmx-quiz-hist'>{head}{''.join(rows)}</table>"


def quiz_html(view: dict, raw: list[dict] | None = None) -> str:
    """The question as HTML: the prompt, the counts (before the reveal, alphabetical) or, after it, the room's
    histogram beside the model's top-k probabilities (MEASURED badge), the match share and the room's
    cross-entropy against the model's entropy; ``raw`` (the presenter only) lists the guessed tokens."""
    prompt = html.escape(view.get("prompt", ""))
    n = int(view.get("guesses", 0))
    parts = [f"<div class='llmx-quiz' data-question='{html.escape(view.get('question_id', ''))}' "
             f"data-state='{html.escape(view.get('state', 'open'))}'>",
             f"<p><b>Guess the next token</b> after <code>{prompt}</code> ({html.escape(view.get('model', ''))}) · "
             f"<span class='llmx-quiz-count'>{n} guess{'es' if n != 1 else ''}</span></p>"]
    if view.get("state") == "revealed":
        probs = {t["token"]: t["p"] for t in view["model_top"]}
        badge = badge_html(measured("one forward pass over the prompt: softmax of the last position's logits",
                                    view.get("model", "")))
        ce = view.get("room_cross_entropy")
        parts.append(f"<p>{badge}</p>")
        parts.append(_bars(view["histogram"], n, probs))
        parts.append(f"<p class='llmx-quiz-score'>The model's top choice: <code>{html.escape(repr(view['model_top'][0]['token']))}"
                     f"</code> ({view['model_top'][0]['p']:.1%}). <b>{view['match_share']:.0%}</b> of the room "
                     "guessed it. ")
        if ce is not None:
            parts.append(f"How surprised the model is by you: the room's cross-entropy <b>{ce:.2f} nats</b> "
                         f"against the model's own entropy <b>{view['model_entropy']:.2f} nats</b> "
                         f"(the lower the closer you are to the model).</p>")
        else:
            parts.append(f"Nobody guessed. The model's own entropy: <b>{view['model_entropy']:.2f} nats</b>.</p>")
    else:
        parts.append(_bars(view["histogram"], n))
        parts.append("<p><small>Bars: the model's 10 most likely tokens (alphabetical, so the order gives nothing "
                     "away) and every other token. The model's probabilities come with the reveal.</small></p>")
    if raw is not None:
        items = ", ".join(f"<code>{html.escape(repr(r['token']))}</code> × {r['count']}" for r in raw) or "none yet"
        parts.append(f"<p class='llmx-quiz-raw'><small>Guessed tokens (only you see these): {items}</small></p>")
    parts.append("</div>")
    return "".join(parts)


def presenter_html(code: str, question_id: str) -> str:
    """The presenter's view of the question: :func:`quiz_html` with the raw guessed tokens."""
    book = quiz_book()
    question = book.current(code)
    if not code or question is None or question.id != question_id:
        return ""
    if question.revealed is not None:
        view = {**book.reveal(code, question_id), "state": "revealed"}
    else:
        view = {**book.tally(code, question_id), "state": "open"}
    return quiz_html(view, raw=book.tally(code, question_id, raw=True)["raw"])


def build(parts: dict) -> None:
    """The presenter's controls (inside the Workshop accordion): prompt, open, guess, reveal, the counts."""
    with gr.Group(elem_id="room-quiz"):
        gr.Markdown("**Guess the next token together** (open a room first): the audience guesses, then you reveal.")
        with gr.Row(equal_height=False):
            parts["quiz_prompt"] = gr.Textbox(label="Question prompt", value="The capital of France is", scale=3,
                                              elem_id="room-quiz-prompt", max_lines=2)
            parts["quiz_open"] = gr.Button("Open question", size="sm", elem_id="room-quiz-open", scale=0,
                                           min_width=130)
        with gr.Row(equal_height=False):
            parts["quiz_guess"] = gr.Textbox(label="Your guess", scale=3, elem_id="room-quiz-guess", max_lines=1)
            parts["quiz_send"] = gr.Button("Guess", size="sm", elem_id="room-quiz-send", scale=0, min_width=90)
            parts["quiz_reveal"] = gr.Button("Reveal", size="sm", elem_id="room-quiz-reveal", scale=0, min_width=90)
        parts["quiz_note"] = gr.Markdown("", elem_id="room-quiz-note")
        parts["quiz_view"] = gr.HTML("", elem_id="room-quiz-view")
    parts["quiz_id"] = gr.State("")
    parts["quiz_timer"] = gr.Timer(REFRESH_S, active=False)


def wire(parts: dict) -> None:
    """Connect the presenter's controls and register the JSON APIs (:data:`API_NAMES`)."""
    code, token, qid = parts["code_state"], parts["token_state"], parts["quiz_id"]

    @ui_errors
    def ask(code_, token_, prompt, request: gr.Request):
        if not code_:
            raise ValueError("Start a room first: a question is asked to a room.")
        question_id = open_question(code_, token_, prompt, session=getattr(request, "session_hash", None))
        return question_id, presenter_html(code_, question_id), "", gr.Timer(active=True)

    parts["quiz_open"].click(ask, [code, token, parts["quiz_prompt"]],
                             [qid, parts["quiz_view"], parts["quiz_note"], parts["quiz_timer"]],
                             api_visibility="private")

    @ui_errors
    def guess(code_, question_id, text, request: gr.Request):
        if not question_id:
            raise ValueError("Open a question first.")
        out = send_guess(code_, question_id, session_member(getattr(request, "session_hash", None)), text)
        return out["message"], presenter_html(code_, question_id)

    parts["quiz_send"].click(guess, [code, qid, parts["quiz_guess"]], [parts["quiz_note"], parts["quiz_view"]],
                             api_visibility="private")

    @ui_errors
    def show(code_, token_, question_id):
        if not question_id:
            raise ValueError("Open a question first.")
        reveal(code_, token_, question_id)
        return presenter_html(code_, question_id), gr.Timer(active=False)

    parts["quiz_reveal"].click(show, [code, token, qid], [parts["quiz_view"], parts["quiz_timer"]],
                               queue=False, api_visibility="private")

    def refresh(code_, question_id):
        try:
            return presenter_html(code_, question_id)
        except (RoomGone, ValueError):
            return gr.skip()

    parts["quiz_timer"].tick(refresh, [code, qid], parts["quiz_view"], queue=False, show_progress="hidden",
                             api_visibility="private")

    # JSON APIs ---------------------------------------------------------------------------------------------
    def room_question(code: str, token: str, prompt: str, model: str | None = None, chat_template: bool = False,
                      request: gr.Request = None) -> dict:
        """Open a question (presenter only): ``{"question_id"}``. ``model``: the room's current model unless
        named; ``chat_template``: wrap the prompt in the model's chat template (default: plain continuation)."""
        try:
            return {"question_id": open_question(code, token, prompt, model, chat_template,
                                                 session=getattr(request, "session_hash", None))}
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    def room_guess(code: str, question_id: str, guess: str, request: gr.Request = None) -> dict:
        """One guess per session (the session comes from the request; it must have joined the room through
        ``/room_state`` or by presenting it): ``{"accepted", "token", "n_tokens", "message"}``."""
        try:
            return send_guess(code, question_id, session_member(getattr(request, "session_hash", None)), guess)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    def room_reveal(code: str, token: str, question_id: str) -> dict:
        """Reveal (presenter only): ``{"histogram": [{"token", "count"}], "model_top": [{"token", "p"}],
        "match_share", "room_cross_entropy" (nats), "model_entropy" (nats), ...}``; the same when revealed again."""
        try:
            return reveal(code, token, question_id)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    gr.api(room_question, api_name="room_question")
    for fn in (room_guess, room_reveal):
        gr.api(fn, api_name=fn.__name__, queue=False)
