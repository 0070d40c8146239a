"""Which parts of the question drove the answer: captum attribution over the user's words.

The target is the log-probability of the answer, ``sum_t log p(y_t | prompt, y_<t)`` (nats). Only the
tokens of the user's question are attributed; the chat template, its special tokens and the worked
examples stay fixed (they are never replaced and get exactly zero). The question is tokenised once, as the
model reads it, and its tokens are grouped into words by the Tokens lens (the same space-marker and grapheme
inference); nothing passes through ``str.format``, so questions containing ``{`` or ``}`` are handled.
Special-token text typed in the question (``<|im_end|>``) follows the Tokens tab's toggle: parsed, it is the
real special token and, like the template's, gets no credit; kept as plain text, its pieces are attributed.

Methods (registry :data:`METHODS`, captum imported lazily):
- ``feature_ablation``: captum ``FeatureAblation`` (Zeiler & Fergus 2014 occlusion): replace one segment's
  tokens with a neutral token and measure the drop of the target; one forward pass per segment.
- ``integrated_gradients``: captum ``IntegratedGradients`` on the prompt's ``inputs_embeds`` (Sundararajan
  et al. 2017): integrate gradients from a baseline where the question's tokens are the neutral token's
  embedding. Fixed tokens equal their baseline, so their attribution is exactly zero; segment scores sum
  token scores. Attributing the embeddings passed in (instead of captum's ``LayerIntegratedGradients``,
  which hooks the shared embedding layer for the whole ``attribute()`` call) leaves no hook on the shared
  model, and every forward pass takes the model's lock on its own (:meth:`Engine.forward`).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from explorer.core.provenance import Provenance, measured

from explorer.hallucination.answer import Answer, check_question, prompt_messages, user_message

UNITS = ("word", "sentence", "token")
NEUTRAL_TOKEN = " "
IG_STEPS = 8


@dataclass(frozen=True)
class Attribution:
    """Attribution of the answer's log-probability to parts of the question.

    Attributes:
        method: key of :data:`METHODS`; unit: ``"word"``, ``"sentence"`` or ``"token"``.
        answer: the answer text attributed.
        target_logprob: log-probability of the answer given the full prompt, nats.
        segments: list of S text segments of the question.
        segment_scores: ``np.ndarray`` (S,) attribution per segment, nats (positive = supports the answer).
        tokens: list of T decoded tokens of the whole prompt.
        token_scores: ``np.ndarray`` (T,) attribution per prompt token (0 for fixed tokens).
        attributed: ``np.ndarray`` (T,) bool, True for the question's tokens.
        elapsed_ms: wall time, ms.
        provenance: measured (captum method named in its source).
    """

    method: str
    unit: str
    answer: str
    target_logprob: float
    segments: list
    segment_scores: np.ndarray
    tokens: list
    token_scores: np.ndarray
    attributed: np.ndarray
    elapsed_ms: float
    provenance: Provenance = field(default_factory=lambda: measured("captum attribution"))

    def to_api(self) -> dict:
        """JSON shape of ``/attribute``: method, unit, answer, target_logprob (nats), segments, scores (nats),
        tokens, token_scores, attributed, elapsed_ms, provenance."""
        return {"provenance": self.provenance.to_api(), "method": self.method, "unit": self.unit, "answer": self.answer,
                "target_logprob": self.target_logprob, "segments": list(self.segments),
                "scores": self.segment_scores.round(6).tolist(), "tokens": list(self.tokens),
                "token_scores": self.token_scores.round(6).tolist(), "attributed": self.attributed.tolist(),
                "elapsed_ms": round(self.elapsed_ms, 1)}


def split_segments(text: str, unit: str) -> list[str]:
    """Split ``text`` into consecutive pieces that join back to ``text`` exactly.

    ``word``: a word with the spaces before it; ``sentence``: up to and including ``.``, ``?``, ``!`` or a newline.
    Raises:
        ValueError: unknown unit.
    """
    if unit == "word":
        return re.findall(r"\s*\S+|\s+$", text)
    if unit == "sentence":
        return [s for s in re.findall(r"[^.?!\n]*(?:[.?!\n]+|$)", text) if s]
    raise ValueError(f"Unknown unit {unit!r}; choose from {', '.join(UNITS)}.")


def prompt_parts(engine, question: str, parse_special: bool = True) -> tuple[list[int], list[list[int]], list[int],
                                                                             list[str]]:
    """``(prefix ids, per-word ids, suffix ids, word texts)`` of the prompt; only the words are attributed.

    ``parse_special``: special-token text typed in the question becomes the special token (True) or stays
    plain text (False, transformers' ``split_special_tokens``); the template's own markup is always parsed.
    """
    tok = engine.tokenizer
    content = user_message(question)
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template(prompt_messages(question), add_generation_prompt=True, tokenize=False)
    else:
        text = content
    cut = text.rfind(content)
    prefix, suffix = text[:cut], text[cut + len(content):]
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
    seg_ids, words = _word_ids(tok, content, parse_special)
    return enc(prefix), seg_ids, enc(suffix), words


_prompt_parts = prompt_parts  # the name tests used before it became public


def _word_ids(tok, content: str, parse_special: bool) -> tuple[list[list[int]], list[str]]:
    """The question's token ids (encoded once, as the model reads it), split by word.

    Tokens come from the Tokens lens (:func:`explorer.tokens.tokenize.encode_tokens`), which infers the space
    marker (``Ġ`` byte-level, ``▁`` SentencePiece) and groups pieces of one grapheme cluster (byte-fallback
    ``<0xE2><0x99><0xA9>``, an emoji family); a token belongs to the word holding its first character, and
    pieces of one character stay in one word. A word left without tokens (a token spanned it) joins the previous.
    """
    from explorer.tokens.backends import HFBackend
    from explorer.tokens.tokenize import encode_tokens

    words = split_segments(content, "word")
    if not content:
        return [], []
    word_of_char = [i for i, w in enumerate(words) for _ in w]
    out: list[list[int]] = [[] for _ in words]
    last, group_word = 0, {}
    for token in encode_tokens(HFBackend("model", tok, uncap=False), content, parse_special):
        where = group_word.get(token.group, word_of_char[min(token.start, len(content) - 1)])
        last = max(last, where)
        group_word[token.group] = last
        out[last].append(token.id)
    merged_ids, merged_words, pending = [], [], ""
    for ids, word in zip(out, words):  # a word without tokens (the previous word's token spans it) joins that word
        if not ids:
            if merged_words:
                merged_words[-1] += word
            else:
                pending += word
            continue
        merged_ids.append(ids)
        merged_words.append(pending + word)
        pending = ""
    return merged_ids, merged_words


def _groups(segment_ids: list[list[int]], segments: list[str], unit: str) -> tuple[list[int], list[str]]:
    """Feature id of every question token and the text of each feature for ``unit``."""
    if unit == "word":
        return [i for i, ids in enumerate(segment_ids) for _ in ids], list(segments)
    if unit == "token":
        flat = [t for ids in segment_ids for t in ids]
        return list(range(len(flat))), None
    # sentence: merge words until one ends a sentence
    mask, texts, current = [], [], ""
    for ids, word in zip(segment_ids, segments):
        mask += [len(texts)] * len(ids)
        current += word
        if re.search(r"[.?!\n]\s*$", word):
            texts.append(current)
            current = ""
    if current:
        texts.append(current)
    return mask, texts


def _target_fn(engine, answer_ids: list[int]):
    """``forward(prompt_ids (B, T)) -> (B,)`` log-probability of ``answer_ids`` after each prompt (nats).

    Each call is one locked forward pass (:meth:`Engine.forward`).
    """
    import torch

    answer = torch.tensor(answer_ids, dtype=torch.long, device=engine.device)

    def forward(prompt: "torch.Tensor") -> "torch.Tensor":
        batch = prompt.shape[0]
        ids = torch.cat([prompt.long().to(engine.device), answer.expand(batch, -1)], dim=1)
        keep = answer.numel() + 1  # logits only where the answer is predicted
        logits = engine.forward(ids, use_cache=False, logits_to_keep=keep).logits[:, :-1].float()
        return _answer_logprob(logits, answer)

    return forward


def _answer_logprob(logits, answer) -> "torch.Tensor":
    """Sum over answer positions of ``log softmax(logits)[answer token]``: ``(B, n, vocab), (n,) -> (B,)``."""
    import torch

    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(2, answer.expand(logits.shape[0], -1).unsqueeze(2)).squeeze(2).sum(1)


def _embeddings(engine, ids):
    """Input embeddings of ``ids`` ``(B, T)`` -> ``(B, T, hidden)``, detached (a lookup under the lock)."""
    import torch

    with engine.session(grad=True), torch.no_grad():
        return engine.model.get_input_embeddings()(ids.to(engine.device)).detach()


def _embeds_target_fn(engine, answer_ids: list[int]):
    """``forward(prompt_embeds (B, T, hidden)) -> (B,)`` log-probability of ``answer_ids`` (nats), differentiable
    in the embeddings; each call is one locked forward pass with autograd on."""
    import torch

    answer = torch.tensor(answer_ids, dtype=torch.long, device=engine.device)
    answer_embeds = _embeddings(engine, answer.unsqueeze(0))

    def forward(embeds: "torch.Tensor") -> "torch.Tensor":
        batch = embeds.shape[0]
        full = torch.cat([embeds, answer_embeds.expand(batch, -1, -1).to(embeds.dtype)], dim=1)
        logits = engine.forward(None, grad=True, inputs_embeds=full, use_cache=False,
                                logits_to_keep=answer.numel() + 1).logits[:, :-1].float()
        return _answer_logprob(logits, answer)

    return forward


def _feature_ablation(engine, answer_ids, ids, mask, baseline_ids):
    from captum.attr import FeatureAblation

    attr = FeatureAblation(_target_fn(engine, answer_ids)).attribute(ids, baselines=baseline_ids, feature_mask=mask,
                                                                     perturbations_per_eval=4)
    return attr[0].detach().float().cpu().numpy()


def _integrated_gradients(engine, answer_ids, ids, mask, baseline_ids):
    from captum.attr import IntegratedGradients

    inputs, baselines = _embeddings(engine, ids), _embeddings(engine, baseline_ids)
    attr = IntegratedGradients(_embeds_target_fn(engine, answer_ids)).attribute(
        inputs, baselines=baselines, n_steps=IG_STEPS, internal_batch_size=4)
    return attr[0].sum(-1).detach().float().cpu().numpy()


METHODS = {"feature_ablation": _feature_ablation, "integrated_gradients": _integrated_gradients}
COST_IN_FORWARDS = {"feature_ablation": lambda n_features: n_features + 1,
                    "integrated_gradients": lambda n_features: 3 * IG_STEPS}


def attribute(engine, question: str, answer: Answer | None = None, method: str = "feature_ablation",
              unit: str = "word", target: str | None = None, max_seconds: float | None = None,
              parse_special: bool = True) -> Attribution:
    """Attribute the answer's log-probability to the question's words, sentences or tokens.

    Args:
        answer: the greedy :class:`Answer` (generated when neither it nor ``target`` is given).
        target: an answer text to attribute instead of the model's own.
        max_seconds: refuse (``ValueError``) when the estimated cost is above this many seconds.
        parse_special: special-token text typed in the question is parsed as special tokens (the Tokens tab's
            toggle); real special tokens are never credited (fixed, score 0, ``attributed`` False).
    Returns:
        :class:`Attribution`; ``tokens`` covers the full prompt, ``segments`` only the question.
    Raises:
        ValueError: empty question, unknown method or unit, empty answer, or a run estimated above the time cap.
    """
    import torch

    question = check_question(question)
    if method not in METHODS:
        raise ValueError(f"Unknown attribution method {method!r}; choose from {', '.join(METHODS)}.")
    if unit not in UNITS:
        raise ValueError(f"Unknown unit {unit!r}; choose from {', '.join(UNITS)}.")
    tok = engine.tokenizer
    if target is not None and target.strip():
        answer_ids, answer_text = tok(target.strip(), add_special_tokens=False)["input_ids"], target.strip()
    else:
        if answer is None:
            from explorer.hallucination.answer import generate_answer

            answer = generate_answer(engine, question)
        answer_ids, answer_text = answer.answer_ids.tolist(), answer.text
    if not answer_ids:
        raise ValueError("The answer is empty, so there is nothing to attribute; give a target answer.")
    start = time.perf_counter()
    prefix, seg_ids, suffix, words = prompt_parts(engine, question, parse_special)
    engine.check_length(len(prefix) + sum(map(len, seg_ids)) + len(suffix) + len(answer_ids))
    group, texts = _groups(seg_ids, words, unit)
    flat = [t for ids in seg_ids for t in ids]
    full = prefix + flat + suffix
    qpos = slice(len(prefix), len(prefix) + len(flat))
    ids = torch.tensor([full], device=engine.device)
    t0 = time.perf_counter()
    target_logprob = float(_target_fn(engine, answer_ids)(ids)[0])
    one_forward_s = time.perf_counter() - t0
    n_features = max(group) + 1 if group else 0
    estimate_s = one_forward_s * COST_IN_FORWARDS[method](n_features)
    if max_seconds and estimate_s > max_seconds:
        raise ValueError(f"Attribution by {method} would take about {estimate_s:.0f} s, above the "
                         f"{max_seconds:.0f} s cap; use sentence segments or a shorter question.")
    neutral = tok(NEUTRAL_TOKEN, add_special_tokens=False)["input_ids"][0]
    credited = np.array([t not in set(tok.all_special_ids) for t in flat], dtype=bool)  # special: no credit
    keep = torch.from_numpy(credited).to(ids.device)
    baseline = ids.clone()
    baseline[0, qpos] = torch.where(keep, torch.full_like(ids[0, qpos], neutral), ids[0, qpos])
    # Fixed tokens share one extra feature id; their baseline equals the input, so ablating it changes nothing.
    mask = torch.full_like(ids, n_features)
    mask[0, qpos] = torch.where(keep, torch.tensor(group, dtype=torch.long, device=ids.device), n_features)
    token_scores = METHODS[method](engine, answer_ids, ids, mask, baseline)
    token_scores = np.asarray(token_scores, dtype=np.float64).reshape(-1)
    attributed = np.zeros(len(full), dtype=bool)
    attributed[qpos] = credited
    token_scores[~attributed] = 0.0
    q_scores = token_scores[qpos]
    in_group = (np.array(group)[:, None] == np.arange(n_features)[None, :]) & credited[:, None]
    if method == "feature_ablation":  # every credited token of a segment carries the segment's score
        seg_scores = np.array([q_scores[in_group[:, g]][0] if in_group[:, g].any() else 0.0 for g in range(n_features)])
    else:
        seg_scores = np.array([q_scores[in_group[:, g]].sum() for g in range(n_features)])
    if texts is None:
        texts = [tok.decode([t]) for t in flat]
    return Attribution(method=method, unit=unit, answer=answer_text, target_logprob=target_logprob,
                       segments=texts, segment_scores=seg_scores, tokens=[tok.decode([t]) for t in full],
                       token_scores=token_scores, attributed=attributed,
                       elapsed_ms=(time.perf_counter() - start) * 1000,
                       provenance=measured(f"captum {method} over {unit}s, {len(answer_ids)} answer tokens",
                                           model=engine.name))
