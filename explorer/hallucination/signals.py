"""Probes that look inside or ask again: the logit lens, self-evaluation P(True), and reliance on a context.

- Logit lens (nostalgebraist 2020, "interpreting GPT: the logit lens"): the final norm and output layer
  applied to every layer's hidden state, giving a layers x positions grid of top tokens; the layer where
  each answer token first becomes the top prediction says how early the model "knew" it.
- P(True) (Kadavath et al. 2022, "Language models (mostly) know what they know"): the model is shown the
  question and its own answer and asked whether the answer is true; P(True) is the probability of "True"
  against "False" at the first answer token.
- Context reliance: the pointwise mutual information between the context and the grounded answer,
  ``mean_t [log p(y_t | context, question, y_<t) - log p(y_t | question, y_<t)]`` (nats per token), as in
  context-aware decoding (Shi et al. 2023).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.core.readout import unembed
from explorer.hallucination.answer import Answer, prompt_ids

P_TRUE_FORMAT = ("Question: {question}\nProposed answer: {answer}\n"
                 "Is the proposed answer true or false? Reply with one word: True or False.")
TRUE_WORDS = ("True", " True", "true", "TRUE")
FALSE_WORDS = ("False", " False", "false", "FALSE")


@dataclass(frozen=True)
class LogitLens:
    """Top tokens of every layer at the positions that predict the answer.

    Attributes:
        layers: ``np.ndarray`` (num_layers + 1,) layer index; 0 = embeddings, last = the model's output.
        positions: list of P position labels (the token read at each position).
        targets: list of P answer tokens predicted at those positions.
        top_ids: ``np.ndarray`` (num_layers + 1, P) top-1 token id per layer and position.
        top_pieces: nested list (num_layers + 1, P) of decoded top-1 tokens.
        top_probs: ``np.ndarray`` (num_layers + 1, P) probability of the top-1 token.
        target_probs: ``np.ndarray`` (num_layers + 1, P) probability given to the answer token.
        first_layer: ``np.ndarray`` (P,) int, first layer whose top-1 is the answer token (-1 if none).
        last_logits_top: ``np.ndarray`` (P,) the model's own argmax at each position (for checking).
    """

    layers: np.ndarray
    positions: list
    targets: list
    top_ids: np.ndarray
    top_pieces: list
    top_probs: np.ndarray
    target_probs: np.ndarray
    first_layer: np.ndarray
    last_logits_top: np.ndarray

    @property
    def num_layers(self) -> int:
        """Transformer layers of the model (rows minus the embedding row)."""
        return int(self.layers.size - 1)

    def mean_first_layer_fraction(self) -> float:
        """Mean over answer tokens of (first layer / num_layers), in [0, 1]; ``nan`` for an empty answer."""
        if self.first_layer.size == 0:
            return float("nan")
        first = np.where(self.first_layer < 0, self.num_layers, self.first_layer)
        return float(np.mean(first / self.num_layers))


def logit_lens(engine, answer: Answer) -> LogitLens:
    """Read every layer's hidden state out through :func:`explorer.core.readout.unembed` (final norm, output
    layer, soft-capping where the config has it; nostalgebraist 2020). The last row equals the model's logits.

    Returns:
        :class:`LogitLens` over the positions from the last prompt token to the last-but-one answer token.
    Raises:
        ValueError: empty answer or unsupported architecture.
    """
    import torch

    if answer.answer_ids.size == 0:
        raise ValueError("The model gave an empty answer, so there is nothing for the logit lens to follow.")
    ids = np.concatenate([answer.prompt_ids, answer.answer_ids])
    start = answer.prompt_ids.size - 1
    pos = list(range(start, ids.size - 1))
    targets = answer.answer_ids.tolist()
    out = engine.forward(ids, output_hidden_states=True, use_cache=False, logits_to_keep=len(pos) + 1)
    hidden = out.hidden_states
    own_top = out.logits[0, :-1].argmax(-1).cpu().numpy()
    with engine.session():
        logp = torch.log_softmax(torch.stack([unembed(engine, h[0, pos], layer) for layer, h in enumerate(hidden)]),
                                 dim=-1)  # (num_layers + 1, P, vocab)
        top = logp.max(-1)
        tgt = torch.tensor(targets, device=logp.device).view(1, -1, 1).expand(logp.shape[0], -1, 1)
        rows_ids, rows_p = top.indices.cpu().numpy(), top.values.exp().cpu().numpy()
        rows_target = logp.gather(2, tgt).squeeze(2).exp().cpu().numpy()
    top_ids = rows_ids
    hits = top_ids == np.array(targets)[None, :]
    first = np.where(hits.any(0), hits.argmax(0), -1)
    tok = engine.tokenizer
    return LogitLens(layers=np.arange(len(hidden)), positions=[tok.decode([int(ids[p])]) for p in pos],
                     targets=[tok.decode([t]) for t in targets], top_ids=top_ids,
                     top_pieces=[[tok.decode([int(t)]) for t in row] for row in top_ids],
                     top_probs=rows_p, target_probs=rows_target, first_layer=first,
                     last_logits_top=own_top)


def _word_ids(tokenizer, words: tuple[str, ...]) -> list[int]:
    """First token id of each word variant (deduplicated)."""
    ids = []
    for w in words:
        enc = tokenizer(w, add_special_tokens=False)["input_ids"]
        if enc and enc[0] not in ids:
            ids.append(enc[0])
    return ids


def p_true(engine, question: str, answer_text: str) -> dict:
    """Self-evaluation: probability the model assigns to "True" for its own answer (Kadavath et al. 2022).

    Returns a dict: ``p_true`` (in [0, 1], P(True) / (P(True) + P(False))), ``mass`` (P(True) + P(False),
    how much of the distribution went to either word), ``prompt`` (the text asked).
    Raises:
        ValueError: empty question or prompt too long.
    """
    import torch

    text = P_TRUE_FORMAT.replace("{question}", question).replace("{answer}", answer_text or "(no answer)")
    ids = engine.chat_ids(text)
    true_ids, false_ids = _word_ids(engine.tokenizer, TRUE_WORDS), _word_ids(engine.tokenizer, FALSE_WORDS)
    logits = engine.forward(ids, use_cache=False, logits_to_keep=1).logits[0, -1]
    probs = torch.softmax(logits.float(), dim=-1)
    pt, pf = float(probs[true_ids].sum()), float(probs[false_ids].sum())
    return {"p_true": pt / (pt + pf) if pt + pf > 0 else 0.5, "mass": pt + pf, "prompt": text}


def answer_logprobs(engine, prompt: list[int] | np.ndarray, answer_ids: list[int] | np.ndarray) -> np.ndarray:
    """Teacher-forced log-probability of each answer token after ``prompt``.

    Returns:
        ``np.ndarray`` (n_answer,) natural-log probabilities.
    """
    import torch

    prompt, answer_ids = list(map(int, prompt)), list(map(int, answer_ids))
    if not answer_ids:
        return np.zeros(0)
    ids = prompt + answer_ids
    logits = engine.forward(ids, use_cache=False, logits_to_keep=len(answer_ids) + 1).logits[0]
    logp = torch.log_softmax(logits[:-1].float(), dim=-1)
    return logp.gather(1, torch.tensor(answer_ids, device=logp.device).unsqueeze(1)).squeeze(1).cpu().numpy()


def context_reliance(engine, grounded: Answer, question: str) -> dict:
    """How much the grounded answer depends on the context (pointwise mutual information, Shi et al. 2023).

    Returns a dict: ``pmi_per_token`` (nats per token, mean over answer tokens of log p(y|ctx) - log p(y|no ctx)),
    ``token_pmi`` (list, nats), ``logprob_with`` / ``logprob_without`` (nats, sums).
    """
    with_ctx = grounded.logprob
    without = answer_logprobs(engine, prompt_ids(engine, question), grounded.answer_ids)
    diff = with_ctx - without
    return {"pmi_per_token": float(diff.mean()) if diff.size else 0.0, "token_pmi": diff.round(6).tolist(),
            "logprob_with": float(with_ctx.sum()), "logprob_without": float(without.sum())}
