"""Guess the next token together: a room's question, its guesses, the histogram and the reveal.

The presenter opens a question on a prompt (:func:`next_token_distribution` runs one forward pass of the room's
model and keeps the next-token log-probabilities, ``log_softmax`` of the last position's logits, float32 over the
vocabulary). Every member of the room (a session that joined it: :meth:`QuizBook.join`) may send one guess per
question. A guess is stripped, capped in length and tokenised as the model would write it after the prompt
(:func:`guess_ids`: with a leading space unless the prompt ends in whitespace); it is scored by its **first**
token (a guess of several tokens is accepted and told so).

Before the reveal everyone sees counts over the model's top-10 tokens plus "other" (:meth:`QuizBook.tally`);
only the presenter's tally carries the raw guessed tokens. The reveal (:meth:`QuizBook.reveal`, idempotent)
gives the model's top-k probabilities, the share of guesses equal to the model's top-1, the room's
cross-entropy under the model's distribution ``H(q, p) = -(1/N) sum_i ln p(t_i)`` over the N guesses' first
tokens ``t_i`` (the mean surprisal, nats) and the model's own entropy ``H(p) = -sum_t p(t) ln p(t)`` (nats):
"how surprised the model is by you" against how surprised it is by itself (Shannon 1948; the cross-entropy of a
language model as in Jurafsky & Martin, *Speech and Language Processing*, ch. 3).

Guesses are kept per member id only to refuse a second one; nothing a member types reaches another member except
through the counts. Pure Python and numpy apart from the forward pass, which goes through the engine.
"""
from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from explorer.core.validation import check_text, require_causal

HISTOGRAM_TOP = 10  # the histogram's bars: the model's top-10 tokens, then "other"
REVEAL_TOP = 10  # the model's top-k shown on reveal
OTHER = "other"


@dataclass(frozen=True)
class Distribution:
    """The model's next-token distribution after a prompt.

    Attributes:
        model: model name.
        prompt: the prompt text.
        prompt_ids: its token ids (as :meth:`explorer.core.engine.Engine.encode` or ``chat_ids`` made them).
        logprob: natural-log probabilities of every next token, ``(vocab,)`` float32 (sums to 1 after ``exp``).
        chat_template: whether the prompt was wrapped in the chat template.
    """

    model: str
    prompt: str
    prompt_ids: tuple[int, ...]
    logprob: np.ndarray
    chat_template: bool = False


def next_token_distribution(engine, prompt: str, chat_template: bool = False) -> Distribution:
    """One forward pass of ``engine``'s model over ``prompt``; the last position's ``log_softmax`` (float32).

    Raises:
        ValueError: ``prompt`` empty or not a string, too long for the engine's caps, or an encoder model.
    """
    import torch

    check_text(prompt, "prompt")
    require_causal(engine, "Guess the next token")
    ids = engine.chat_ids(prompt) if chat_template else engine.encode(prompt)
    out = engine.forward(ids, logits_to_keep=1)
    logprob = torch.log_softmax(out.logits[0, -1].float(), dim=-1).cpu().numpy()
    return Distribution(engine.name, prompt, tuple(int(i) for i in ids), logprob, bool(chat_template))


def guess_ids(tokenizer, prompt_ids, prompt: str, guess: str, chat_template: bool = False) -> list[int]:
    """The token ids the model would write for ``guess`` right after ``prompt``.

    A leading space is added unless the prompt ends in whitespace (or the guess goes into a chat reply). The
    prompt and guess are tokenised together and the guess's ids are those after the prompt's; when the
    tokenizer merges across the boundary (the prompt's ids are not a prefix), the guess alone is tokenised.

    Raises:
        ValueError: the guess makes no token.
    """
    text = guess if (chat_template or not prompt or prompt[-1].isspace()) else " " + guess
    ids: list[int] = []
    if not chat_template:
        full = tokenizer(prompt + text)["input_ids"]
        if list(full[:len(prompt_ids)]) == list(prompt_ids):
            ids = list(full[len(prompt_ids):])
    if not ids:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise ValueError("guess: it makes no token; type a word.")
    return [int(i) for i in ids]


@dataclass(frozen=True)
class GuessResult:
    """What a member is told about a guess.

    Attributes:
        accepted: True for the member's first guess on the question; False for a later one (the first counts).
        token: the scored token as text (the guess's first token, or the first guess's for a repeat).
        n_tokens: tokens the guess makes (scored by the first when above 1).
        message: a sentence for the member.
    """

    accepted: bool
    token: str
    n_tokens: int
    message: str


@dataclass
class Question:
    """One question of a room (see the module docstring); ``guesses``: member id -> first token id."""

    id: str
    code: str
    dist: Distribution
    top_ids: tuple[int, ...]
    texts: dict
    guesses: dict = field(default_factory=dict)
    revealed: dict | None = None


class QuizBook:
    """Thread-safe questions of every room (one per process: :func:`quiz_book`).

    Args:
        max_guess_chars: a stripped guess longer than this is refused (characters).
        max_prompt_chars: a question's prompt longer than this is refused (characters).
        max_members: member ids one room remembers (beyond it, the oldest joins are forgotten).
    """

    def __init__(self, max_guess_chars: int = 40, max_prompt_chars: int = 2000, max_members: int = 10_000):
        self.max_guess_chars, self.max_prompt_chars, self.max_members = max_guess_chars, max_prompt_chars, max_members
        self._open: dict[str, Question] = {}  # room code -> its current question (open or revealed)
        self._members: dict[str, dict] = {}  # room code -> {member id: None} (insertion ordered)
        self._lock = threading.Lock()

    def check_prompt(self, prompt) -> str:
        """``prompt`` if a question may be opened on it.

        Raises:
            ValueError: not a string, empty, or longer than ``max_prompt_chars``.
        """
        check_text(prompt, "prompt")
        if len(prompt) > self.max_prompt_chars:
            raise ValueError(f"prompt: {len(prompt):,} characters; a question takes at most {self.max_prompt_chars:,} "
                             "(LLM_EXPLORER_ROOM_QUESTION_CHARS).")
        return prompt

    def join(self, code: str, member: str) -> None:
        """Count ``member`` (a session or follower-page id) as in room ``code``: it may guess from now on."""
        if not member:
            return
        with self._lock:
            members = self._members.setdefault(_norm(code), {})
            members[str(member)[:160]] = None
            while len(members) > self.max_members:
                members.pop(next(iter(members)))

    def open(self, code: str, dist: Distribution, tokenizer) -> str:
        """Open a question on ``dist`` (from :func:`next_token_distribution`) in room ``code``; the room's previous
        question closes. Returns the question id (URL-safe, unguessable)."""
        order = np.argsort(-dist.logprob, kind="stable")[:max(HISTOGRAM_TOP, REVEAL_TOP)]
        top = tuple(int(i) for i in order)
        texts = {i: tokenizer.decode([i]) for i in top}
        question = Question(secrets.token_urlsafe(9), _norm(code), dist, top, texts)
        with self._lock:
            self._open[_norm(code)] = question
        return question.id

    def _question(self, code: str, question_id: str) -> Question:
        question = self._open.get(_norm(code))
        if question is None or not isinstance(question_id, str) or question.id != question_id:
            raise ValueError(f"question_id: no open question {str(question_id)[:20]!r} in this room (it was never "
                             "opened, or the presenter opened a newer one).")
        return question

    def guess(self, code: str, question_id: str, member: str, guess, tokenizer) -> GuessResult:
        """Record ``member``'s guess (see the module docstring).

        Raises:
            ValueError: the member never joined the room, the question is unknown or revealed, the guess is not a
                string, blank after stripping, or longer than ``max_guess_chars``.
        """
        member = str(member or "")[:160]
        if not isinstance(guess, str):
            raise ValueError(f"guess: must be text (got {type(guess).__name__}).")
        text = guess.strip()
        if not text:
            raise ValueError("guess: it is empty; type the word you think comes next.")
        if len(text) > self.max_guess_chars:
            raise ValueError(f"guess: {len(text)} characters; a guess is at most {self.max_guess_chars} "
                             "(LLM_EXPLORER_ROOM_GUESS_CHARS). A next token is usually one short word.")
        with self._lock:
            if not member or member not in self._members.get(_norm(code), {}):
                raise ValueError("guess: this session has not joined the room; open the room's link first.")
            question = self._question(code, question_id)
            if question.revealed is not None:
                raise ValueError("guess: this question is closed (the answer was revealed).")
            dist = question.dist
        ids = guess_ids(tokenizer, dist.prompt_ids, dist.prompt, text, dist.chat_template)
        with self._lock:
            if question.revealed is not None:
                raise ValueError("guess: this question is closed (the answer was revealed).")
            first = question.guesses.get(member)
            if first is not None:
                return GuessResult(False, tokenizer.decode([first]), 1,
                                   "You already guessed on this question; your first guess counts.")
            token = tokenizer.decode([ids[0]])
            question.guesses[member] = ids[0]
            question.texts.setdefault(ids[0], token)
        note = (f"Your guess makes {len(ids)} tokens; it is scored by its first, {token!r}." if len(ids) > 1
                else f"Guess recorded: {token!r}.")
        return GuessResult(True, token, len(ids), note)

    def tally(self, code: str, question_id: str, raw: bool = False) -> dict:
        """The counts so far: ``{"question_id", "prompt", "guesses" (N), "revealed" (bool), "histogram": [{"token",
        "count"}]}`` over the model's top-10 tokens (in alphabetical order before the reveal, so the order does
        not give the top-1 away; by probability after it) and ``"other"``; with ``raw`` (the presenter only) also ``"raw": [{"token", "count"}]``
        of every guessed first token, most guessed first.

        Raises:
            ValueError: unknown question.
        """
        with self._lock:
            question = self._question(code, question_id)
            guesses = list(question.guesses.values())
        out = {"question_id": question.id, "prompt": question.dist.prompt, "model": question.dist.model,
               "guesses": len(guesses), "revealed": question.revealed is not None,
               "histogram": histogram(guesses, question.top_ids[:HISTOGRAM_TOP], question.texts)}
        if question.revealed is None:  # before the reveal the bars' order must not give the top-1 away
            bars = out["histogram"]
            out["histogram"] = sorted(bars[:-1], key=lambda b: (b["token"].strip().lower(), b["token"])) + bars[-1:]
        if raw:
            out["raw"] = [{"token": text, "count": n} for text, n in
                          Counter(_decode_one(question, i) for i in guesses).most_common()]
        return out

    def reveal(self, code: str, question_id: str) -> dict:
        """Close the question and score the room (the same dict when revealed again): ``{"question_id", "prompt",
        "model", "guesses", "histogram", "model_top": [{"token", "p"}] (top-k, p in [0, 1]), "match_share"
        (guesses equal to the model's top-1 / N; 0.0 with no guesses), "room_cross_entropy" (nats; ``None`` with
        no guesses), "model_entropy" (nats)}``.

        Raises:
            ValueError: unknown question.
        """
        with self._lock:
            question = self._question(code, question_id)
            if question.revealed is None:
                question.revealed = score(question)
            return dict(question.revealed)

    def current(self, code: str) -> Question | None:
        """The room's current question (open or revealed), or ``None``."""
        with self._lock:
            return self._open.get(_norm(code))

    def end(self, code: str) -> None:
        """Forget a room's question and members (the room ended)."""
        with self._lock:
            self._open.pop(_norm(code), None)
            self._members.pop(_norm(code), None)

    def retain(self, live_codes) -> None:
        """Forget every room whose code is not in ``live_codes``."""
        keep = {_norm(c) for c in live_codes}
        with self._lock:
            for table in (self._open, self._members):
                for code in [c for c in table if c not in keep]:
                    del table[code]


def _decode_one(question: Question, token_id: int) -> str:
    return question.texts.get(token_id) or f"#{token_id}"


def histogram(first_ids, top_ids, texts: dict) -> list[dict]:
    """Counts of ``first_ids`` over ``top_ids`` (in their order) and ``"other"`` (every id not among them):
    ``[{"token", "count"}]``, ``len(top_ids) + 1`` entries summing to ``len(first_ids)``."""
    counts = Counter(int(i) for i in first_ids)
    bars = [{"token": texts.get(i, f"#{i}"), "count": counts.pop(i, 0)} for i in top_ids]
    return bars + [{"token": OTHER, "count": sum(counts.values())}]


def score(question: Question) -> dict:
    """The reveal of ``question`` (see :meth:`QuizBook.reveal`), computed from its stored log-probabilities."""
    logprob = question.dist.logprob.astype(np.float64)
    p = np.exp(logprob)
    guesses = [int(i) for i in question.guesses.values()]
    top1 = question.top_ids[0]
    entropy = float(-(p * np.where(p > 0, logprob, 0.0)).sum())
    cross = float(-np.mean([logprob[i] for i in guesses])) if guesses else None
    return {"question_id": question.id, "prompt": question.dist.prompt, "model": question.dist.model,
            "guesses": len(guesses),
            "histogram": histogram(guesses, question.top_ids[:HISTOGRAM_TOP], question.texts),
            "model_top": [{"token": question.texts[i], "p": float(p[i])} for i in question.top_ids[:REVEAL_TOP]],
            "match_share": (sum(g == top1 for g in guesses) / len(guesses)) if guesses else 0.0,
            "room_cross_entropy": cross, "model_entropy": entropy}


def _norm(code) -> str:
    return str(code or "").strip().lower()


@lru_cache(maxsize=1)
def quiz_book() -> QuizBook:
    """The process-wide :class:`QuizBook`, sized from :func:`explorer.core.config.get_limits`."""
    from explorer.core.config import get_limits

    limits = get_limits()
    return QuizBook(max_guess_chars=limits.room_guess_chars, max_prompt_chars=limits.room_question_chars)
