"""Retrieval-augmented generation: question -> top-k passages (Chroma) -> a prompt with them -> greedy answer,
beside the answer to the bare question; which retrieved sentences the answer drew on; accuracy on the labelled
questions with and without retrieval (Lewis et al. 2020, RAG).

The answer is greedy through ``engine.steps`` on the model's chat template (three worked short answers, then the
passages and the question in the last user turn) and stops at end-of-turn or a newline.
A question the passages cannot answer should get "I don't know" (or "not mentioned" ...): that is what counts as
correct for the unanswerable questions in ``questions.json``; the prompt does not ask for it, so the measurement
shows whether the model declines on its own.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int, check_text
from explorer.embeddings.search import search

MAX_NEW_TOKENS = 24
MAX_RAG_K = 8
RAG_INSTRUCTION = "Use these passages to answer."
REFUSALS = ("don't know", "do not know", "not know", "no information", "not mentioned", "does not say",
            "doesn't say", "not provided", "cannot answer", "can't answer", "not contain", "doesn't contain",
            "unknown", "not specified", "no mention", "not available")


# Worked examples shown before every question (question, answer), as in the Hallucination lens: they fix the
# short-answer format. They carry no passages and no "I don't know", and there is no extra system instruction:
# with any of those a 135M model copied the example's answer or declined instead of reading its own passages
# (tried on "Who founded Velmora?" on 2026-12-01).
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is the capital of Italy?", "Rome"),
    ("Who wrote Hamlet?", "William Shakespeare"),
    ("How many days are in a week?", "Seven"),
)


def rag_prompt(question: str, passages: list[str]) -> str:
    """The user turn: the instruction, the numbered passages (``[1] ...``, best first), then the question."""
    lines = "\n".join(f"[{i + 1}] {p}" for i, p in enumerate(passages))
    return f"{RAG_INSTRUCTION}\nPassages:\n{lines}\n\nQuestion: {question}"


def bare_prompt(question: str) -> str:
    """The user turn without retrieval."""
    return question


def prompt_ids(engine, user: str, retrieval: bool = True) -> list[int]:
    """Chat-template ids: three worked examples (the template's default system turn), then ``user``.

    ``retrieval`` is kept for callers that frame the two prompts differently; both share the examples today.

    Raises:
        ValueError: the prompt is longer than the token caps.
    """
    messages = []
    for question, answer in EXAMPLES:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": user})
    tok = engine.tokenizer
    if not getattr(tok, "chat_template", None):
        text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"
        return engine.encode(text)
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    engine.check_length(len(ids))
    return list(ids)


def generate(engine, user: str, retrieval: bool = True, max_new_tokens: int = MAX_NEW_TOKENS) -> tuple[str, int]:
    """Greedy answer to ``user`` (through ``engine.steps``); stops at end-of-turn or the first newline after text.

    Returns:
        ``(answer text, prompt tokens)``.
    """
    ids = prompt_ids(engine, user, retrieval)
    tokens: list[int] = []
    for step in engine.steps(ids, max_new_tokens, share=True):
        if step.finished:
            break
        tokens.append(step.token)
        text = engine.tokenizer.decode(tokens, skip_special_tokens=True)
        if "\n" in text.strip():
            break
    text = engine.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    return text.split("\n")[0].strip(), len(ids)


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, no punctuation other than apostrophes, single spaces."""
    text = text.lower().replace("\u2019", "'")
    return " ".join(re.sub(r"[^\w' ]+", " ", text).split())


def says_unknown(answer: str) -> bool:
    """True when the answer declines ("I don't know", "not mentioned" ...)."""
    text = normalise(answer)
    return any(phrase in text for phrase in REFUSALS)


def is_correct(answer: str, question: dict) -> bool:
    """Answerable: an accepted answer appears in the answer (normalised) and it does not decline.
    Unanswerable: the answer declines."""
    if not question.get("answerable", True):
        return says_unknown(answer)
    text = normalise(answer)
    return not says_unknown(answer) and any(normalise(a) in text for a in question["answers"])


@dataclass(frozen=True)
class RagResult:
    """One question followed from retrieval to answer.

    Attributes:
        question; k; answer: with retrieval; answer_without_retrieval; passages: list of :class:`Hit` (best first);
        prompt: the user turn with passages; prompt_tokens / bare_prompt_tokens: prompt lengths in tokens;
        ms: wall time, ms; model; notices; provenance.
    """

    question: str
    k: int
    answer: str
    answer_without_retrieval: str
    passages: list
    prompt: str
    prompt_tokens: int
    bare_prompt_tokens: int
    ms: float
    model: str
    notices: list = field(default_factory=list)
    provenance: Provenance | None = None

    def to_api(self) -> dict:
        """JSON of ``/rag``: ``{"answer", "answer_without_retrieval", "passages": [{"text", "score", "rank"}], ...}``."""
        return {"answer": self.answer, "answer_without_retrieval": self.answer_without_retrieval,
                "passages": [h.to_api() for h in self.passages], "question": self.question, "k": self.k,
                "prompt_tokens": self.prompt_tokens, "ms": round(self.ms, 1), "model": self.model,
                "notices": list(self.notices), "provenance": self.provenance.to_api() if self.provenance else None}


def answer_question(question: str, model: str | None = None, k: int = 1, metric: str = "cosine",
                    chunk_size: int | None = None, session=None, with_bare: bool = True) -> RagResult:
    """Retrieve ``k`` passages for ``question`` and answer it with them (and without, when ``with_bare``).

    Raises:
        ValueError: empty question, k below 1 (above :data:`MAX_RAG_K` it is capped with a notice), an encoder model.
    """
    from explorer.core.engine import get_engine
    from explorer.core.validation import require_causal

    question = check_text(question, "question").strip()
    notices: list[str] = []
    k = check_int(k, "k", minimum=1, cap=MAX_RAG_K, notices=notices)
    engine = get_engine(model)
    require_causal(engine, "RAG")
    start = time.perf_counter()
    found = search(question, k, metric, None, chunk_size, session)
    notices += found.notices
    prompt = rag_prompt(question, [h.text for h in found.hits])
    answer, n_prompt = generate(engine, prompt, retrieval=True)
    bare, n_bare = generate(engine, bare_prompt(question), retrieval=False) if with_bare else ("", 0)
    return RagResult(question, k, answer, bare, found.hits, prompt, n_prompt, n_bare,
                     (time.perf_counter() - start) * 1000, engine.name, notices,
                     measured("Chroma top-k + engine.steps greedy on the chat template", engine.name))


@dataclass(frozen=True)
class ContextAttribution:
    """How much each retrieved passage (and each sentence of the prompt) supported the answer.

    Attributes:
        segments: list of S prompt sentences; scores: ``np.ndarray`` (S,) nats (drop of the answer's log-probability
        when the sentence is replaced by neutral tokens; positive = the answer drew on it); passage_of: list of S
        passage numbers (1-based, 0 = instruction or question); passage_scores: ``np.ndarray`` (k,) summed per passage;
        target_logprob: nats; method; provenance.
    """

    segments: list
    scores: np.ndarray
    passage_of: list
    passage_scores: np.ndarray
    target_logprob: float
    method: str
    provenance: Provenance


def attribute_context(result: RagResult, method: str = "feature_ablation",
                      max_seconds: float | None = None) -> ContextAttribution:
    """Captum attribution of ``result.answer`` over the RAG prompt's sentences, reusing the Hallucination lens.

    Calls :func:`explorer.hallucination.attribution.attribute` with the RAG user turn as the question and the RAG
    answer as the target (that lens frames it with its own worked examples), sentence by sentence, then sums the
    sentence scores inside each retrieved passage.
    Raises:
        ValueError: empty answer, or a run estimated above ``max_seconds`` (default: the configured
            ``max_run_seconds``).
    """
    from explorer.core.config import get_limits
    from explorer.core.engine import get_engine
    from explorer.hallucination.attribution import attribute

    if not result.answer.strip():
        raise ValueError("The answer is empty, so there is nothing to attribute.")
    engine = get_engine(result.model)
    attr = attribute(engine, result.prompt, method=method, unit="sentence", target=result.answer,
                     max_seconds=max_seconds or get_limits().max_run_seconds)
    # Map each sentence to the passage line it lies in, by character offsets (segments join back to the prompt).
    starts, pos = [], 0
    for seg in attr.segments:
        starts.append(pos)
        pos += len(seg)
    text = "".join(attr.segments)
    spans, cursor = [], 0
    for i, hit in enumerate(result.passages):
        line = f"[{i + 1}] {hit.text}"
        at = text.find(line, cursor)
        spans.append((at, at + len(line)) if at >= 0 else (-1, -1))
        cursor = max(cursor, at + len(line)) if at >= 0 else cursor
    passage_of = []
    for s, seg in zip(starts, attr.segments):
        middle = s + len(seg.strip()) // 2 + (len(seg) - len(seg.lstrip()))
        passage_of.append(next((i + 1 for i, (a, b) in enumerate(spans) if a <= middle < b), 0))
    scores = np.asarray(attr.segment_scores, dtype=np.float64)
    per_passage = np.array([scores[[j for j, p in enumerate(passage_of) if p == i + 1]].sum()
                            for i in range(len(result.passages))])
    return ContextAttribution(list(attr.segments), scores, passage_of, per_passage, attr.target_logprob, method,
                              measured(f"captum {method} via explorer.hallucination.attribution", engine.name))
