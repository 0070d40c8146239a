"""The answer a hallucination probe looks at: the short-answer prompt, the greedy answer and its token statistics.

Every probe starts from the same greedy answer to a question asked in one fixed short-answer format
(three worked examples in the chat template, so a small model answers with a name or number), and
from the model's full next-token distribution at each answer token.

Token-level signals follow Manakul et al. 2023 (SelfCheckGPT: max token surprisal, mean entropy) and the
sequence-level ones follow Malinin & Gales 2021 (sequence log-probability, length-normalised perplexity,
mean predictive entropy).
"""
from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass

import numpy as np

# Worked examples shown before every question (question, answer); they fix the short-answer format.
FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("What is the capital of Italy?", "Rome"),
    ("Who wrote Hamlet?", "William Shakespeare"),
    ("How many days are in a week?", "Seven"),
)
CONTEXT_FORMAT = "Use this passage to answer.\nPassage: {context}\n\nQuestion: {question}"
TOP_ALTERNATIVES = 5
RANK_BANDS: tuple[tuple[int, str], ...] = ((10, "top-10"), (100, "top-100"), (1000, "top-1,000"))


@dataclass(frozen=True)
class Answer:
    """The greedy answer to one prompt with the model's distribution at each answer token.

    Attributes:
        question: the question as asked (``str``).
        context: the passage given with it, or ``None``.
        prompt_ids: ``np.ndarray`` (prompt_len,) int64, the full chat-template prompt.
        answer_ids: ``np.ndarray`` (n,) int64, the answer tokens (end-of-turn and anything after a newline cut).
        text: decoded answer (``str``).
        pieces: list of n decoded token strings.
        logprob: ``np.ndarray`` (n,) natural-log probability of each chosen token (temperature 1, no filtering).
        entropy: ``np.ndarray`` (n,) entropy of the next-token distribution, nats.
        rank: ``np.ndarray`` (n,) int, 1-based rank of the chosen token among the vocabulary.
        top_ids / top_probs: ``np.ndarray`` (n, 5) the most likely tokens and their probabilities.
        top_pieces: list of n lists of 5 decoded alternatives.
        elapsed_ms: wall time of the generation, ms.
        stopped_by_time: True when the time cap cut the generation short.
    """

    question: str
    context: str | None
    prompt_ids: np.ndarray
    answer_ids: np.ndarray
    text: str
    pieces: list
    logprob: np.ndarray
    entropy: np.ndarray
    rank: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    top_pieces: list
    elapsed_ms: float
    stopped_by_time: bool = False

    @property
    def prob(self) -> np.ndarray:
        """Probability of each answer token, shape (n,)."""
        return np.exp(self.logprob)


def check_question(question: str) -> str:
    """Strip ``question``; raise ``ValueError`` with a friendly message when it is empty."""
    question = (question or "").strip()
    if not question:
        raise ValueError("Type a question first (for example: 'What is the capital of Australia?').")
    return question


def user_message(question: str, context: str | None = None) -> str:
    """The user turn for ``question`` (with the passage in front of it when ``context`` is given)."""
    if context:
        return CONTEXT_FORMAT.replace("{context}", context).replace("{question}", question)
    return question


def prompt_messages(question: str, context: str | None = None) -> list[dict]:
    """Chat messages: the worked examples, then the question (and context)."""
    messages = []
    for q, a in FEW_SHOT:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": user_message(question, context)})
    return messages


def prompt_ids(engine, question: str, context: str | None = None) -> list[int]:
    """Token ids of the short-answer prompt, ending where the assistant's answer starts.

    Raises:
        ValueError: empty question, or a prompt above the token caps.
    """
    question = check_question(question)
    tok = engine.tokenizer
    if getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template(prompt_messages(question, context), add_generation_prompt=True,
                                      tokenize=True, return_dict=True)["input_ids"]
    else:
        shots = "".join(f"Question: {q}\nAnswer: {a}\n" for q, a in FEW_SHOT)
        ids = tok(f"{shots}Question: {user_message(question, context)}\nAnswer:")["input_ids"]
    ids = list(ids)
    engine.check_length(len(ids))
    return ids


def stop_ids(engine) -> list[int]:
    """Token ids that end an answer: the tokenizer's end-of-sequence and the chat end-of-turn."""
    tok = engine.tokenizer
    ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    for special in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
        tid = tok.convert_tokens_to_ids(special)
        if isinstance(tid, int) and tid != tok.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(ids)


def _cut(engine, ids: list[int]) -> int:
    """Number of leading tokens that form the answer: stop at end-of-turn or at a newline."""
    stops = set(stop_ids(engine))
    for i, tid in enumerate(ids):
        if tid in stops or "\n" in engine.tokenizer.decode([tid]):
            return i
    return len(ids)


def token_stats(logits, chosen: list[int]):
    """Per-token statistics of a distribution.

    Args:
        logits: ``torch.Tensor`` (n, vocab) raw next-token logits.
        chosen: the n chosen token ids.
    Returns:
        ``(logprob (n,), entropy (n,) nats, rank (n,) 1-based, top_ids (n, 5), top_probs (n, 5))`` as numpy.
    """
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    idx = torch.tensor(chosen, dtype=torch.long).unsqueeze(1)
    chosen_lp = logp.gather(1, idx)
    entropy = -(logp.exp() * logp).sum(-1)
    rank = (logp > chosen_lp).sum(-1) + 1
    top = logp.topk(TOP_ALTERNATIVES, dim=-1)
    return (chosen_lp.squeeze(1).numpy().astype(np.float64), entropy.numpy().astype(np.float64),
            rank.numpy().astype(np.int64), top.indices.numpy(), top.values.exp().numpy())


def generate_answer(engine, question: str, context: str | None = None, max_new_tokens: int = 16,
                    max_seconds: float | None = None) -> Answer:
    """Greedy answer to ``question`` with the raw distribution at every answer token.

    Steps the model with :meth:`Engine.steps` (one locked forward pass per token, greedy) and stops at an
    end-of-turn token, a newline or ``max_new_tokens``. The statistics come from the raw logits
    (temperature 1, no top-k/top-p), so they describe the model itself.

    Raises:
        ValueError: empty question or prompt too long.
    """
    import torch

    ids = prompt_ids(engine, question, context)
    start = time.perf_counter()
    new, logits, stopped_by_time = [], [], False
    for step in engine.steps(ids, max_new_tokens, eos_ids=set(stop_ids(engine)), share=True):
        new.append(step.token)
        logits.append(step.logits)
        if step.finished or "\n" in engine.tokenizer.decode([step.token]):
            break
        if max_seconds and time.perf_counter() - start > max_seconds and len(new) < max_new_tokens:
            stopped_by_time = True
            break
    elapsed_ms = (time.perf_counter() - start) * 1000
    n = _cut(engine, new)
    new = new[:n]
    if new:
        logprob, entropy, rank, top_ids, top_probs = token_stats(torch.stack(logits[:n]), new)
    else:
        logprob = entropy = np.zeros(0)
        rank = np.zeros(0, dtype=np.int64)
        top_ids, top_probs = np.zeros((0, TOP_ALTERNATIVES), dtype=np.int64), np.zeros((0, TOP_ALTERNATIVES))
    tok = engine.tokenizer
    return Answer(question=check_question(question), context=context, prompt_ids=np.array(ids, dtype=np.int64),
                  answer_ids=np.array(new, dtype=np.int64), text=tok.decode(new, skip_special_tokens=True).strip(),
                  pieces=[tok.decode([t]) for t in new], logprob=logprob, entropy=entropy, rank=rank,
                  top_ids=top_ids, top_probs=top_probs,
                  top_pieces=[[tok.decode([int(t)]) for t in row] for row in top_ids],
                  elapsed_ms=elapsed_ms, stopped_by_time=stopped_by_time)


def rank_band(rank: int) -> str:
    """``"top-10"``, ``"top-100"``, ``"top-1,000"`` or ``"beyond"`` for a 1-based rank."""
    for limit, name in RANK_BANDS:
        if rank <= limit:
            return name
    return "beyond"


def sequence_scores(answer: Answer) -> dict:
    """Sequence uncertainty of an answer (Malinin & Gales 2021).

    Returns a dict: ``sequence_logprob`` (nats, sum of token log-probs), ``sequence_prob`` (its exp),
    ``perplexity`` (exp of minus the mean token log-prob), ``mean_entropy`` (nats), ``n_tokens``.
    An empty answer gets perplexity and entropy ``nan``.
    """
    n = int(answer.logprob.size)
    total = float(answer.logprob.sum()) if n else 0.0
    return {"sequence_logprob": total, "sequence_prob": float(np.exp(total)),
            "perplexity": float(np.exp(-total / n)) if n else float("nan"),
            "mean_entropy": float(answer.entropy.mean()) if n else float("nan"), "n_tokens": n}


def token_scores(answer: Answer) -> dict:
    """Token confidence of an answer: per-token lists plus the weakest token (Manakul et al. 2023).

    Returns a dict with ``tokens``, ``probs``, ``entropies`` (nats), ``ranks``, ``bands`` (top-10/100/1,000/beyond),
    ``alternatives`` (top-5 pieces and probabilities per token), ``min_prob`` and ``max_surprisal``
    (nats, ``-log min_prob``; ``nan`` for an empty answer).
    """
    n = int(answer.logprob.size)
    return {
        "tokens": list(answer.pieces), "probs": answer.prob.round(6).tolist(),
        "entropies": answer.entropy.round(6).tolist(), "ranks": answer.rank.tolist(),
        "bands": [rank_band(int(r)) for r in answer.rank],
        "alternatives": [[[p, float(round(q, 6))] for p, q in zip(pieces, probs)]
                         for pieces, probs in zip(answer.top_pieces, answer.top_probs)],
        "min_prob": float(answer.prob.min()) if n else float("nan"),
        "max_surprisal": float(-answer.logprob.min()) if n else float("nan"),
    }


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise(text: str) -> str:
    """Lowercase, strip accents and punctuation, drop English articles, collapse spaces (SQuAD-style)."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[^\w\s.]", " ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def matches(answer: str, accepted: list[str]) -> bool:
    """True when any accepted answer, normalised, occurs as whole words in the normalised ``answer``."""
    target = f" {normalise(answer)} "
    return any(f" {normalise(a)} " in target for a in accepted if normalise(a))
