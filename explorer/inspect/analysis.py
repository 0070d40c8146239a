"""The inspector's per-text work, done once per (text, model, chat template) and then read per position.

:func:`iter_analyse` runs, through the engine (one locked pass each):

1. the **reference pass**: ``Engine.forward`` with eager attention, ``output_attentions`` and
   ``output_hidden_states``, into a ``DynamicCache`` whose bytes are measured. Kept: per layer the head-mean
   attention rows ``(layers, n, n)`` (float32), the strongest heads of every row, and the logit lens
   (the final norm and output layer applied to every layer's hidden state; nostalgebraist 2020) reduced to
   its top-k per layer and position, never the full distributions;
2. the **reference logits** (``forward_logits``: the pass ``/quantize`` scores with): per position the top-k
   next tokens, and the log-probability and rank of the token that actually follows (as ``/perplexity``);
3. the **int8 and NF4 copies' passes** (:func:`explorer.quantization.get_variant`, cached copies; the NF4 copy
   is the one shared with QLoRA) over what ``/quantize`` scores (the text, then the reference's greedy
   continuation; LLM.int8() chooses its 16-bit columns from the whole pass, so int8 is not position-local):
   KL(reference || copy) and same top-1 per position, with
   :func:`explorer.quantization.quality.compare_logits` (llama.cpp's ``--kl-divergence`` statistics);
4. with ``chat_template=True``: the hallucination lens's greedy answer to the text asked as a question (its
   short-answer chat prompt, :func:`explorer.hallucination.answer.generate_answer`), whose tokens are appended,
   with their confidence (:func:`~explorer.hallucination.answer.token_scores`) and the answer's attribution
   (captum feature ablation over the question's words, :func:`explorer.hallucination.attribute`).

:func:`analysis` caches the result in the process-wide result cache (``explorer/serving/cache.py``), keyed by
the inputs and this package's code version, so a click on another position never runs the model again.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured

TOP_K = 10  # next-token candidates kept per position (the /perplexity default)
LENS_TOP_K = 5  # logit-lens candidates kept per layer and position
STRONG_HEADS = 5  # heads listed per row
QUANT_METHODS = ("int8", "nf4")
QUANTIZE_NEW_TOKENS = 24  # /quantize's greedy continuation (tokens), scored with the text
LENS_CHUNK_BYTES = 32 * 2**20  # fp32 logits alive at once while reading the logit lens


@dataclass(frozen=True)
class TokenAnalysis:
    """Everything the inspector shows for one text, for every position at once.

    Attributes (``n`` tokens, ``L`` layers, ``H`` query heads):
        model: model name; chat_template: whether the text was asked as a question (hallucination prompt + answer).
        ids: ``(n,)`` int64 token ids; texts: each token decoded; pieces_hex: the bytes each token stands for, hex
            (``None`` where the tokenizer's pieces are not bytes).
        kinds: per position ``"text"`` (plain text), ``"question"`` (the user's words), ``"template"`` (chat
            markup and worked examples) or ``"answer"``.
        attention_rows: ``(L, n, n)`` float32, each row the mean over heads of that layer (rows sum to 1).
        strong_heads: ``(n, S, 4)`` float32 rows ``(layer, head, key, weight)``: per query position the ``S`` heads
            with the largest weight on one key other than the first-token sink (the sink itself for position 0).
        num_heads: query heads per layer.
        top_ids, top_p: ``(n, k)`` the reference's most likely next tokens at each position and their probabilities.
        next_logprob, next_rank: ``(n - 1,)`` log-probability (nats) and 1-based rank of the token that follows.
        lens_top_ids, lens_top_p: ``(L + 1, n, k5)`` the logit lens's top tokens per layer (row 0 = embeddings,
            row L = the model's output) and their probabilities; lens_final_p: ``(L + 1, n)`` the probability each
            layer gives the model's final top-1 token.
        quant: method -> ``{"kld": (n,) nats, "same_top": (n,) bool, "top1": (n,) ids, "weight_bytes"}`` or
            ``{"error": why}``.
        kv_shape: the :class:`explorer.kv_cache.CacheShape` of the KV byte formula (``bytes_per_token``,
            ``formula_bytes(tokens)``, sliding windows included); kv_measured_bytes: bytes of the reference pass's ``DynamicCache`` after all ``n`` tokens (measured).
        answer_start: first answer position (``n`` when there is no answer); confidence: the hallucination lens's
            token confidence (``token_scores``) or ``None``; attribution: ``/attribute``'s JSON of the answer or
            ``None``; confidence_note: why confidence or attribution is missing.
        token_text: ``{id: text}`` for every id shown.
        provenance: measured on the model (and its quantised copies).
    """

    model: str
    chat_template: bool
    ids: np.ndarray
    texts: tuple[str, ...]
    pieces_hex: tuple[str | None, ...]
    kinds: tuple[str, ...]
    attention_rows: np.ndarray
    strong_heads: np.ndarray
    num_heads: int
    top_ids: np.ndarray
    top_p: np.ndarray
    next_logprob: np.ndarray
    next_rank: np.ndarray
    lens_top_ids: np.ndarray
    lens_top_p: np.ndarray
    lens_final_p: np.ndarray
    quant: dict
    kv_shape: object
    kv_measured_bytes: int
    answer_start: int
    confidence: dict | None = None
    attribution: dict | None = None
    confidence_note: str = ""
    token_text: dict = field(default_factory=dict)
    seconds: float = 0.0
    provenance: Provenance | None = None

    @property
    def n(self) -> int:
        """Tokens in the inspected sequence."""
        return int(self.ids.shape[0])

    @property
    def num_layers(self) -> int:
        """Transformer layers."""
        return int(self.attention_rows.shape[0])


def _sequence(engine, text: str, chat_template: bool, limits):
    """``(ids, kinds, answer_start, answer or None)`` of the inspected sequence; checks the attention cap."""
    from explorer.attention import prompt_ids
    from explorer.attention.windows import attention_cap

    cap = attention_cap(engine)
    if not chat_template:
        ids, _ = prompt_ids(engine, text, chat=False, max_tokens=cap)
        return ids, ("text",) * len(ids), len(ids), None
    from explorer.hallucination.answer import generate_answer

    answer = generate_answer(engine, text, max_seconds=limits.max_probe_seconds)
    prompt, new = answer.prompt_ids.tolist(), answer.answer_ids.tolist()
    ids = prompt + new
    if len(ids) > cap:
        raise ValueError(f"text: the question with its chat prompt and answer is {len(ids):,} tokens; the inspector "
                         f"accepts at most {cap:,} (max_attention_tokens). Shorten the question.")
    return ids, _chat_kinds(engine, text, prompt) + ("answer",) * len(new), len(prompt), answer


def _chat_kinds(engine, question: str, prompt: list[int]) -> tuple[str, ...]:
    """``"question"`` for the user's words in the chat prompt, ``"template"`` for everything else (markup, examples).

    Uses the attribution lens's split of the prompt (prefix, the question's words, suffix); if the split does not
    reproduce the prompt's ids, every prompt token is marked ``"question"`` rather than refused wrongly.
    """
    from explorer.hallucination.attribution import prompt_parts

    prefix, words, suffix, _ = prompt_parts(engine, question)
    flat = [i for word in words for i in word]
    if prefix + flat + suffix != prompt:
        return ("question",) * len(prompt)
    return ("template",) * len(prefix) + ("question",) * len(flat) + ("template",) * len(suffix)


def _strong_heads(attn: np.ndarray, count: int) -> np.ndarray:
    """``(n, count, 4)`` rows ``(layer, head, key, weight)`` from ``attn`` ``(L, H, n, n)``: per query the heads whose
    largest weight on one key other than key 0 (the sink) is highest; for query 0 its only key."""
    num_layers, num_heads, n, _ = attn.shape
    if n > 1:
        rest = attn[..., 1:]
        weight, key = rest.max(-1), rest.argmax(-1) + 1  # (L, H, n)
        weight[:, :, 0], key[:, :, 0] = attn[:, :, 0, 0], 0
    else:
        weight, key = attn[..., 0].copy(), np.zeros(attn.shape[:3], dtype=np.int64)
    flat_w = weight.reshape(num_layers * num_heads, n)
    flat_k = key.reshape(num_layers * num_heads, n)
    count = min(count, num_layers * num_heads)
    order = np.argsort(-flat_w, axis=0, kind="stable")[:count]  # (count, n)
    out = np.zeros((n, count, 4), dtype=np.float32)
    for q in range(n):
        for j, index in enumerate(order[:, q]):
            out[q, j] = (index // num_heads, index % num_heads, flat_k[index, q], flat_w[index, q])
    return out


def _logit_lens(engine, hidden, final_top1, k: int):
    """Top-``k`` ids and probabilities per layer and position, and each layer's probability of ``final_top1``.

    ``hidden``: the ``L + 1`` hidden states ``(1, n, d)``; transformers' last one has passed the final norm already,
    so the norm is applied to every other row (:func:`explorer.core.readout.unembed`, also soft-capping). Positions are
    read in chunks so that at most ``LENS_CHUNK_BYTES`` of fp32 logits exist at once.
    """
    import torch

    from explorer.core.readout import unembed

    n, vocab = hidden[0].shape[1], int(engine.config.get_text_config().vocab_size)
    chunk = max(1, LENS_CHUNK_BYTES // (4 * vocab))
    layers = len(hidden)
    top_ids = np.zeros((layers, n, k), dtype=np.int64)
    top_p = np.zeros((layers, n, k), dtype=np.float32)
    final_p = np.zeros((layers, n), dtype=np.float32)
    target = torch.as_tensor(final_top1, dtype=torch.long).view(-1, 1)
    for layer, states in enumerate(hidden):
        with engine.session():  # the final norm and output layer: one short pass over the shared weights
            for start in range(0, n, chunk):
                logits = unembed(engine, states[0, start:start + chunk], layer).cpu()
                logp = torch.log_softmax(logits, dim=-1)
                top = logp.topk(k, dim=-1)
                top_ids[layer, start:start + chunk] = top.indices.numpy()
                top_p[layer, start:start + chunk] = top.values.exp().numpy()
                final_p[layer, start:start + chunk] = logp.gather(1, target[start:start + chunk])[:, 0].exp().numpy()
    return top_ids, top_p, final_p


def _predictions(ref_logits, ids: list[int], k: int):
    """``(top_ids (n, k), top_p (n, k), next_logprob (n - 1,), next_rank (n - 1,))`` from ``(n, vocab)`` logits,
    computed as :func:`explorer.next_token.scoring.iter_score` does (log-softmax of fp32 logits, rank = 1 + the
    number of tokens with a larger logit)."""
    import torch

    logits = ref_logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    top_lp, top_i = logp.topk(k, dim=-1)
    targets = torch.as_tensor(ids[1:], dtype=torch.long).unsqueeze(1)
    actual = logits[:-1].gather(1, targets)
    rank = (logits[:-1] > actual).sum(dim=1) + 1
    return (top_i.numpy(), top_lp.double().exp().numpy(), logp[:-1].gather(1, targets)[:, 0].double().numpy(),
            rank.numpy().astype(np.int64))


def _quantised(engine, ids: list[int], ref_logits, continue_tokens: int) -> dict:
    """Per position KL(reference || copy), same top-1 and the copy's top-1 for each of :data:`QUANT_METHODS`.

    LLM.int8() picks the activation columns it keeps in 16 bit from the whole pass (any value above the
    threshold), so a position's int8 logits depend on the other tokens scored with it. With
    ``continue_tokens > 0`` the copies therefore score what ``/quantize`` scores: the ids followed by the
    reference's greedy continuation of that many tokens (:func:`explorer.quantization.greedy_generate`), and the
    first ``len(ids)`` positions are kept.
    """
    import torch

    from explorer.quantization import greedy_generate
    from explorer.quantization.methods import check_fits, get_variant
    from explorer.quantization.quality import compare_logits, forward_logits

    out: dict = {}
    try:
        check_fits(engine, list(QUANT_METHODS))
    except ValueError as exc:
        return {name: {"error": str(exc)} for name in QUANT_METHODS}
    n, sequence = len(ids), list(ids)
    if continue_tokens > 0:
        sequence += greedy_generate(engine, ids, continue_tokens)[0]
        ref_logits = forward_logits(engine, sequence)
    # compare_logits also reads the correct next token; the last position has none, so its own id stands in
    # (only the KL and the top-1, which do not depend on it, are kept).
    targets = torch.as_tensor(sequence[1:] + sequence[-1:], dtype=torch.long)
    for name in QUANT_METHODS:
        try:
            variant = get_variant(engine, name)
            logits = forward_logits(variant.engine, sequence)
            cmp = compare_logits(ref_logits, logits, targets)
            out[name] = {"kld": cmp.kld[:n].astype(np.float64), "same_top": cmp.same_top[:n].astype(bool),
                         "top1": logits[:n].argmax(-1).numpy().astype(np.int64),
                         "weight_bytes": int(variant.weight_bytes)}
        except Exception as exc:  # noqa: BLE001 - a missing kernel: reported for that method, the rest still shown
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
    return out


def _confidence(engine, text: str, answer, limits) -> tuple[dict | None, dict | None, str]:
    """The hallucination lens's token confidence and the answer's attribution (``/attribute``'s JSON)."""
    from explorer.hallucination import attribute
    from explorer.hallucination.answer import token_scores

    if answer is None:
        return None, None, "Confidence is shown for answer tokens: tick 'chat template' to ask the text as a question."
    if answer.answer_ids.size == 0:
        return None, None, "The model gave an empty answer, so no token has an answer confidence."
    scores, note = token_scores(answer), ""
    try:
        attribution = attribute(engine, text, answer, method="feature_ablation", unit="word",
                                max_seconds=limits.max_probe_seconds).to_api()
    except ValueError as exc:
        attribution, note = None, f"Attribution not computed: {exc}"
    return scores, attribution, note


def iter_analyse(engine, text: str, chat_template: bool = False) -> Iterator[Progress | TokenAnalysis]:
    """Run the inspector's passes once for ``text``; yields :class:`Progress`, then the :class:`TokenAnalysis`.

    Raises:
        ValueError: empty text, an encoder model, a sequence past the attention cap (``max_attention_tokens``).
    """
    from transformers import DynamicCache

    from explorer.core.config import get_limits
    from explorer.core.validation import check_text, require_causal
    from explorer.kv_cache import cache_shape, measure_cache_bytes
    from explorer.quantization.quality import forward_logits
    from explorer.tokens.backends import HFBackend

    check_text(text, "text")
    require_causal(engine, "The token inspector")
    limits, started = get_limits(), time.perf_counter()
    yield Progress(0.0, "answering the question (hallucination lens)" if chat_template else "tokenizing")
    ids, kinds, answer_start, answer = _sequence(engine, text, bool(chat_template), limits)
    yield Progress(0.15, "reference pass: attention, hidden states, KV cache")
    cache = DynamicCache(config=engine.config)
    out = engine.forward(ids, eager=True, output_attentions=True, output_hidden_states=True, use_cache=True,
                         past_key_values=cache, logits_to_keep=1)
    kv_measured = measure_cache_bytes(out.past_key_values if out.past_key_values is not None else cache)
    attn = np.stack([a[0].float().cpu().numpy() for a in out.attentions])  # (L, H, n, n)
    rows = attn.mean(1, dtype=np.float32)
    strong = _strong_heads(attn, STRONG_HEADS)
    num_heads = int(attn.shape[1])
    del attn
    hidden = out.hidden_states
    yield Progress(0.35, "reference logits (the pass /quantize scores with)")
    ref_logits = forward_logits(engine, ids)
    top_ids, top_p, next_logprob, next_rank = _predictions(ref_logits, ids, min(TOP_K, ref_logits.shape[-1]))
    yield Progress(0.45, "logit lens: every layer through the output layer")
    lens_ids, lens_p, lens_final = _logit_lens(engine, hidden, top_ids[:, 0], LENS_TOP_K)
    del out, hidden
    yield Progress(0.6, "int8 and NF4 copies")
    quant = _quantised(engine, ids, ref_logits, 0 if chat_template else QUANTIZE_NEW_TOKENS)
    del ref_logits
    if chat_template:
        yield Progress(0.85, "answer confidence and attribution")
    confidence, attribution, note = _confidence(engine, text, answer, limits)
    shape = cache_shape(engine)
    tok = engine.tokenizer
    backend = HFBackend(engine.name, tok, uncap=False)
    pieces = backend.pieces(ids)
    shown = set(ids) | set(np.unique(top_ids).tolist()) | set(np.unique(lens_ids).tolist())
    shown |= {int(i) for q in quant.values() for i in np.unique(q.get("top1", np.zeros(0, dtype=np.int64)))}
    yield TokenAnalysis(
        model=engine.name, chat_template=bool(chat_template), ids=np.asarray(ids, dtype=np.int64),
        texts=tuple(tok.decode([i]) for i in ids),
        pieces_hex=tuple(p.hex() for p in pieces) if pieces is not None else (None,) * len(ids),
        kinds=tuple(kinds), attention_rows=rows, strong_heads=strong, num_heads=num_heads,
        top_ids=top_ids, top_p=top_p, next_logprob=next_logprob, next_rank=next_rank,
        lens_top_ids=lens_ids, lens_top_p=lens_p, lens_final_p=lens_final, quant=quant,
        kv_shape=shape, kv_measured_bytes=int(kv_measured),
        answer_start=answer_start, confidence=confidence, attribution=attribution, confidence_note=note,
        token_text={int(i): tok.decode([int(i)]) for i in shown}, seconds=time.perf_counter() - started,
        provenance=measured("Engine.forward (eager attention, hidden states, DynamicCache) + forward_logits on the "
                            "reference and its cached int8 / NF4 copies" + (" + the hallucination lens's greedy answer"
                                                                           if chat_template else ""),
                            model=engine.name))


def analyse(engine, text: str, chat_template: bool = False) -> TokenAnalysis:
    """Blocking :func:`iter_analyse`."""
    return run_to_end(iter_analyse(engine, text, chat_template))


def analysis(text: str, model: str | None = None, chat_template: bool = False, engine=None, cache=None,
             refresh: bool = False) -> tuple[TokenAnalysis, bool]:
    """The :class:`TokenAnalysis` of ``text`` on ``model``: computed once, then served from the result cache.

    Identical requests in flight wait for the first (coalescing). An explicit ``engine`` (a test's tiny model)
    is cached only in an explicit ``cache``, never in the shared one under a model name.

    Returns:
        ``(analysis, from_cache)``; a served analysis keeps the provenance of when it was measured.
    Raises:
        ValueError: see :func:`iter_analyse`.
    """
    from explorer.core.engine import get_engine
    from explorer.serving.cache import code_version, make_key, result_cache

    if engine is not None and cache is None:
        return analyse(engine, text, chat_template), False
    engine = engine or get_engine(model)
    cache = cache if cache is not None else result_cache()
    key = make_key("inspect", "analysis", (text, engine.name, bool(chat_template)))
    value, served = cache.call(key, lambda: analyse(engine, text, chat_template), version=code_version("inspect"),
                               refresh=refresh)
    return value, served.how != "computed"
