"""Every position's prediction: the log-probability, rank and top-k of each actual next token.

Cross-entropy ``L = -(1/N) sum_i log P(x_i | x_<i)`` over the ``N`` predicted tokens (every token but the
first), perplexity ``exp(L)``, and bits per byte ``sum_i -log P(x_i | x_<i) / (ln 2 x UTF-8 bytes)`` (the
tokenizer-independent form used to compare models with different vocabularies, e.g. Gao et al. 2020, "The
Pile"). Long texts are scored in chunks that continue one KV cache, so each chunk is one short locked forward
pass and at most ``chunk x vocab`` fp32 logits exist at a time (Gemma's 262k vocabulary is 1 MiB per position).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int, check_text, require_causal
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))

LOGITS_BUDGET_BYTES = 64 * 2**20  # fp32 logits alive at once while scoring
MAX_TOP_K = 50


@dataclass(frozen=True)
class ScoreResult:
    """Per-token predictions of one text.

    Attributes:
        model: model name.
        ids: token ids, ``(n_tokens,)`` int64 (the first one is never predicted).
        token_texts: each token as text (``decode([id])``), ``n_tokens`` strings.
        token_bytes: UTF-8 bytes of the text each token covers, ``(n_tokens,)`` int64 (0 for special tokens).
        logprob: natural-log probability of token ``i + 1`` given tokens ``0..i``, ``(n_tokens - 1,)`` float64.
        rank: rank of that token among the model's choices (1 = top choice), ``(n_tokens - 1,)`` int64.
        top_ids: the ``top_k`` most likely ids at each predicting position, ``(n_tokens - 1, top_k)`` int64.
        top_p: their probabilities, ``(n_tokens - 1, top_k)`` float64.
        top_texts: ``{id: text}`` for every id in ``top_ids``.
        reference_loss: transformers' own loss (``labels=ids``, nats) over the first ``reference_tokens`` tokens,
            the check shown beside the cross-entropy; ``None`` when not asked for.
        notices: what was capped or windowed.
        provenance: where the numbers come from.
    """

    model: str
    ids: np.ndarray
    token_texts: tuple[str, ...]
    token_bytes: np.ndarray
    logprob: np.ndarray
    rank: np.ndarray
    top_ids: np.ndarray
    top_p: np.ndarray
    top_texts: dict = field(default_factory=dict)
    reference_loss: float | None = None
    reference_tokens: int = 0
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("engine forward"))

    @property
    def n_predicted(self) -> int:
        """Tokens predicted (``n_tokens - 1``)."""
        return int(self.logprob.shape[0])

    @property
    def surprisal(self) -> np.ndarray:
        """``-logprob`` in nats, ``(n_tokens - 1,)``; sums to ``n_predicted x cross_entropy``."""
        return -self.logprob

    @property
    def total_nll(self) -> float:
        """Sum of the surprisals (nats)."""
        return float(self.surprisal.sum())

    @property
    def cross_entropy(self) -> float:
        """Mean surprisal (nats per predicted token)."""
        return self.total_nll / self.n_predicted

    @property
    def perplexity(self) -> float:
        """``exp(cross_entropy)``: the effective number of equally likely choices per token."""
        return math.exp(self.cross_entropy)

    @property
    def predicted_bytes(self) -> int:
        """UTF-8 bytes covered by the predicted tokens (all but the first)."""
        return int(self.token_bytes[1:].sum())

    @property
    def bits_per_byte(self) -> float:
        """``total_nll / (ln 2 x predicted_bytes)``; comparable across tokenizers. NaN when no bytes."""
        return self.total_nll / (math.log(2) * self.predicted_bytes) if self.predicted_bytes else float("nan")

    def to_api(self) -> dict:
        """JSON form of ``/perplexity`` (see the README)."""
        tokens = []
        for i, (tid, text) in enumerate(zip(self.ids.tolist(), self.token_texts)):
            if i == 0:
                tokens.append({"id": tid, "text": text, "logprob": None, "rank": None, "top": []})
                continue
            top = [{"id": int(a), "text": self.top_texts.get(int(a), ""), "p": float(p)}
                   for a, p in zip(self.top_ids[i - 1], self.top_p[i - 1])]
            tokens.append({"id": tid, "text": text, "logprob": float(self.logprob[i - 1]),
                           "rank": int(self.rank[i - 1]), "top": top})
        return {"model": self.model, "tokens": tokens, "n_predicted": self.n_predicted,
                "cross_entropy": self.cross_entropy, "perplexity": self.perplexity,
                "bits_per_byte": self.bits_per_byte, "reference_loss": self.reference_loss,
                "reference_tokens": self.reference_tokens, "notices": list(self.notices),
                "provenance": self.provenance.to_api()}


def chunk_tokens(engine: Engine) -> int:
    """Positions scored per forward pass so that the chunk's fp32 logits stay under ``LOGITS_BUDGET_BYTES``."""
    vocab = int(engine.model.config.vocab_size)
    return int(max(16, min(1024, LOGITS_BUDGET_BYTES // (4 * vocab))))


def token_byte_counts(tokenizer, text: str, ids: list[int]) -> np.ndarray:
    """UTF-8 bytes each token covers, ``(len(ids),)``, summing to the bytes of the text they cover.

    Uses the fast tokenizer's offsets: token ``i`` owns ``text[previous_end:end_i]`` (a character split over
    several byte-level tokens is counted once, on its first token); special tokens own 0 bytes.
    """
    enc = tokenizer(text, return_offsets_mapping=True)
    offsets = enc["offset_mapping"][: len(ids)]
    counts, prev = [], 0
    for start, end in offsets:
        if end <= prev:
            counts.append(0)
            continue
        counts.append(len(text[prev:end].encode("utf-8")))
        prev = end
    return np.asarray(counts + [0] * (len(ids) - len(counts)), dtype=np.int64)


def encode_window(engine: Engine, text: str, cap: int, name: str = "max_score_tokens") -> tuple[list[int], list[str]]:
    """Token ids of plain ``text`` (no chat template); over ``cap`` tokens, the first ``cap`` with a notice.

    Raises:
        ValueError: the text is not a string, is empty, or is a single token (no next-token pair).
    """
    check_text(text)
    ids = list(engine.tokenizer(text)["input_ids"])
    notices = []
    cap = min(cap, engine.context_length())
    if len(ids) > cap:
        notices.append(f"The text is {len(ids):,} tokens; scored the first {cap:,} (the window set by {name} and "
                       f"the model's context of {engine.context_length():,}).")
        ids = ids[:cap]
    if len(ids) < 2:
        raise ValueError("The text is one token long: there is no next-token pair to score. Type at least two tokens.")
    return ids, notices


def iter_score(engine: Engine, ids: list[int], top_k: int = 10, stop=None) -> Iterator:
    """Score every next token of ``ids`` in chunks; yields :class:`Progress`, then
    ``(logprob (n-1,), rank (n-1,), top_ids (n-1, k), top_p (n-1, k))`` numpy arrays.

    Each chunk is one ``engine.forward`` continuing the same ``DynamicCache``; only the gathered values
    leave the chunk. ``stop`` (a ``StopFlag``) is checked between chunks.
    """
    import torch
    from transformers import DynamicCache

    n = len(ids)
    chunk = chunk_tokens(engine)
    cache = DynamicCache(config=engine.model.config)
    parts = []
    targets_all = torch.as_tensor(ids, dtype=torch.long)
    for start in range(0, n - 1, chunk):
        if stop is not None:
            stop.check()
        end = min(start + chunk, n - 1)
        out = engine.forward(ids[start:end], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logits = out.logits[0].float().cpu()
        targets = targets_all[start + 1:end + 1].unsqueeze(1)
        logp = torch.log_softmax(logits, dim=-1)
        actual = logits.gather(1, targets)
        rank = (logits > actual).sum(dim=1) + 1
        top_lp, top_i = logp.topk(top_k, dim=-1)
        parts.append((logp.gather(1, targets)[:, 0].double().numpy(), rank.numpy(), top_i.numpy(),
                      top_lp.double().exp().numpy()))
        del out, logits, logp
        yield Progress(end / (n - 1), f"scored {end:,} of {n - 1:,} tokens")
    yield tuple(np.concatenate([p[j] for p in parts]) for j in range(4))


def iter_run(text: str, model: str | None = None, top_k: int = 10, engine: Engine | None = None,
             cap: int | None = None, stop=None, cap_name: str = "max_score_tokens",
             check_loss: bool = True) -> Iterator:
    """Score ``text`` on ``model``; yields :class:`Progress` items, then a :class:`ScoreResult`.

    Over ``cap`` tokens (default ``max_score_tokens``, named ``cap_name`` in the notice) the first window is scored.
    ``check_loss`` adds one pass with ``labels=`` over the first chunk (transformers' own loss, for the check).

    Raises:
        ValueError: bad text, one token, an encoder model, ``top_k`` not an integer >= 1 (capped at 50).
    """
    engine = engine or get_engine(model)
    require_causal(engine, "Next-token scoring")
    notices: list[str] = []
    top_k = check_int(top_k, "top_k", minimum=1, cap=min(MAX_TOP_K, int(engine.model.config.vocab_size)),
                      notices=notices)
    ids, window_notices = encode_window(engine, text, cap or get_limits().max_score_tokens, cap_name)
    notices += window_notices
    arrays = None
    for item in iter_score(engine, ids, top_k, stop=stop):
        if isinstance(item, Progress):
            yield item
        else:
            arrays = item
    reference, m = None, 0
    if check_loss:
        m = min(len(ids), chunk_tokens(engine))
        reference = float(engine.forward(ids[:m], labels=engine.as_input(ids[:m])).loss)
    tok = engine.tokenizer
    top_texts = {tid: tok.decode([tid]) for tid in np.unique(arrays[2]).tolist()}
    result = ScoreResult(model=engine.name, ids=np.asarray(ids, dtype=np.int64),
                         token_texts=tuple(tok.decode([i]) for i in ids),
                         token_bytes=token_byte_counts(tok, text, ids), logprob=arrays[0], rank=arrays[1],
                         top_ids=arrays[2], top_p=arrays[3], top_texts=top_texts,
                         reference_loss=reference, reference_tokens=m, notices=tuple(notices),
                         provenance=measured(f"engine forward in chunks of {chunk_tokens(engine)} tokens, "
                                             "log-softmax of the logits", engine.name))
    yield result


def run(text: str, model: str | None = None, top_k: int = 10, engine: Engine | None = None,
        cap: int | None = None, check_loss: bool = True) -> ScoreResult:
    """Blocking :func:`iter_run`."""
    return run_to_end(iter_run(text, model, top_k, engine=engine, cap=cap, check_loss=check_loss))
