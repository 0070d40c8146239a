"""One position of a :class:`~explorer.inspect.analysis.TokenAnalysis`: the token through every lens.

Reading a position never runs the model: :func:`iter_run` takes the cached analysis (computed once per text,
model and chat-template choice) and slices it. Conventions, matching the lenses' own APIs:

- ``attention``: the row of this token as a query, mean over the heads of each layer (``/attention``'s patterns
  averaged over heads), plus the strongest heads (largest weight on one key other than the first-token sink);
- ``kv_bytes``: what this token adds to the KV cache, ``formula_bytes(p + 1) - formula_bytes(p)`` with
  ``2 x layers x kv_heads x head_dim x bytes`` per token (``/kv_cache``'s ``bytes_per_token_formula``); a
  sliding-window layer stops growing past its window (``explorer/kv_cache/windowed.py``);
- ``prediction``: the reference's next-token distribution at this position (its top-k is ``/perplexity``'s
  ``top`` of the following token), the surprisal of the token that does follow, and this token's own
  log-probability and rank (``/perplexity``'s entry for this token);
- ``logit_lens``: the top-k per layer at this position and the probability each layer gives the final top-1;
- ``quantization``: KL(reference || int8 / NF4) and same top-1 at this position (``/quantize``'s per-position
  ``kld`` and ``same_top``);
- ``confidence``: for an answer token, the hallucination lens's token confidence and the answer's attribution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from explorer.core.progress import Progress
from explorer.core.provenance import Provenance, formula
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))
from explorer.inspect.analysis import TokenAnalysis, analysis

DECIMALS = 6


@dataclass(frozen=True)
class InspectResult:
    """One token through every lens (JSON-ready dicts, see :func:`to_api` for their fields).

    Attributes:
        model: model name; position: the token's index (0-based) in the inspected sequence; chat_template: as asked.
        n_tokens: tokens in the sequence.
        token, attention, kv_bytes, prediction, logit_lens, quantization: one dict per lens.
        confidence: the answer token's confidence, or ``None`` (``confidence_reason`` says why).
        from_cache: the analysis was served from the result cache (not computed for this request).
        provenance: the analysis's; kind ``cached`` when served from the cache.
        ids: the inspected sequence's token ids (what a branch from this position continues after).
    """

    model: str
    position: int
    chat_template: bool
    n_tokens: int
    token: dict
    attention: dict
    kv_bytes: dict
    prediction: dict
    logit_lens: dict
    quantization: dict
    confidence: dict | None
    confidence_reason: str
    from_cache: bool
    provenance: Provenance
    ids: tuple[int, ...] = ()

    def to_api(self) -> dict:
        """The ``/inspect`` JSON: ``{"token", "attention", "kv_bytes", "prediction", "logit_lens", "quantization",
        "confidence", "confidence_reason", "position", "n_tokens", "model", "chat_template", "provenance"}``.

        ``token``: ``{"position", "id", "text", "bytes_hex", "n_bytes", "kind"}``; ``attention``: ``{"keys",
        "mean_over_heads": layers x (position + 1), "strongest_heads": [{"layer", "head", "key", "key_text",
        "weight"}]}``; ``kv_bytes``: ``{"added_bytes", "cache_bytes_after", "bytes_per_token_formula", "formula",
        "measured_cache_bytes", "measured_tokens", "provenance"}`` (bytes); ``prediction``: ``{"top": [{"id", "text",
        "p"}], "next_token": {"id", "text", "logprob", "p", "surprisal_nats", "surprisal_bits", "rank"} or null,
        "this_token": {"logprob", "surprisal_nats", "surprisal_bits", "rank", "top"} or null}``; ``logit_lens``:
        ``{"final_token", "layers": [{"layer", "top", "final_token_p"}], "first_layer"}``; ``quantization``:
        ``{"int8" | "nf4": {"kld" (nats), "same_top", "top1", "weight_bytes", "error"}}``; ``confidence``: ``{"prob",
        "entropy", "rank", "band", "alternatives", "attribution", ...}`` or null.
        """
        return {"model": self.model, "position": self.position, "n_tokens": self.n_tokens,
                "chat_template": self.chat_template, "token": self.token, "attention": self.attention,
                "kv_bytes": self.kv_bytes, "prediction": self.prediction, "logit_lens": self.logit_lens,
                "quantization": self.quantization, "confidence": self.confidence,
                "confidence_reason": self.confidence_reason or None, "provenance": self.provenance.to_api()}


def _r(value) -> float:
    return round(float(value), DECIMALS)


def _candidates(a: TokenAnalysis, ids, probs) -> list[dict]:
    return [{"id": int(i), "text": a.token_text.get(int(i), ""), "p": float(p)} for i, p in zip(ids, probs)]


def check_position(a: TokenAnalysis, position) -> int:
    """The position as an int inside the sequence and not a chat-template token.

    Raises:
        ValueError: not an integer, out of range, or a token of the chat template (markup, worked examples).
    """
    from explorer.core.validation import check_int

    p = check_int(position, "position")
    if not 0 <= p < a.n:
        raise ValueError(f"position {p} is out of range: this text has {a.n:,} tokens on {a.model} "
                         f"(positions 0 to {a.n - 1:,}).")
    if a.kinds[p] == "template":
        spans = _spans(a.kinds)
        where = "; ".join(f"{kind} at positions {lo} to {hi}" for kind, lo, hi in spans if kind != "template")
        raise ValueError(f"position {p} ({a.texts[p]!r}) is a token of the chat template (the model's markup and the "
                         f"worked examples around your question), not of your text or the answer. Pick one of: "
                         f"{where or 'no token of yours'}.")
    return p


def _spans(kinds) -> list[tuple[str, int, int]]:
    spans: list[tuple[str, int, int]] = []
    for i, kind in enumerate(kinds):
        if spans and spans[-1][0] == kind and spans[-1][2] == i - 1:
            spans[-1] = (kind, spans[-1][1], i)
        else:
            spans.append((kind, i, i))
    return spans


def _token(a: TokenAnalysis, p: int) -> dict:
    return {"position": p, "id": int(a.ids[p]), "text": a.texts[p], "bytes_hex": a.pieces_hex[p],
            "n_bytes": None if a.pieces_hex[p] is None else len(a.pieces_hex[p]) // 2, "kind": a.kinds[p]}


def _attention(a: TokenAnalysis, p: int) -> dict:
    heads = [{"layer": int(layer), "head": int(head), "key": int(key), "key_text": a.texts[int(key)],
              "weight": _r(weight)} for layer, head, key, weight in a.strong_heads[p].tolist()]
    return {"keys": list(a.texts[:p + 1]),
            "mean_over_heads": [[_r(v) for v in a.attention_rows[layer, p, :p + 1]] for layer in range(a.num_layers)],
            "strongest_heads": heads, "num_heads": a.num_heads,
            "note": "row of this token as the query, mean over the heads of each layer (rows sum to 1); strongest "
                    "heads: largest weight on one key other than the first-token sink"}


def _kv(a: TokenAnalysis, p: int) -> dict:
    shape = a.kv_shape
    after, before = shape.formula_bytes(p + 1), shape.formula_bytes(p)
    return {"added_bytes": int(after - before), "cache_bytes_after": int(after),
            "bytes_per_token_formula": int(shape.bytes_per_token),
            "formula": f"2 x {shape.num_layers} layers x {shape.num_kv_heads} KV heads x {shape.head_dim} head dim x "
                       f"{shape.bytes_per_element} bytes ({shape.dtype})"
                       + ("; a sliding-window layer holds at most window - 1 tokens" if any(shape.windows) else ""),
            "measured_cache_bytes": int(a.kv_measured_bytes), "measured_tokens": a.n,
            "provenance": formula("KV byte formula from the config (Pope et al. 2022); the whole sequence's cache "
                                  "measured beside it", model=a.model).to_api()}


def _prediction(a: TokenAnalysis, p: int) -> dict:
    nxt = None
    if p + 1 < a.n:
        lp = float(a.next_logprob[p])
        nxt = {"id": int(a.ids[p + 1]), "text": a.texts[p + 1], "logprob": lp, "p": math.exp(lp),
               "surprisal_nats": -lp, "surprisal_bits": -lp / math.log(2), "rank": int(a.next_rank[p])}
    this = None
    if p > 0:
        lp = float(a.next_logprob[p - 1])
        this = {"logprob": lp, "surprisal_nats": -lp, "surprisal_bits": -lp / math.log(2),
                "rank": int(a.next_rank[p - 1]), "top": _candidates(a, a.top_ids[p - 1], a.top_p[p - 1])}
    return {"top": _candidates(a, a.top_ids[p], a.top_p[p]), "next_token": nxt, "this_token": this}


def _logit_lens(a: TokenAnalysis, p: int) -> dict:
    final = int(a.top_ids[p, 0])
    layers = [{"layer": layer, "top": _candidates(a, a.lens_top_ids[layer, p], a.lens_top_p[layer, p]),
               "final_token_p": float(a.lens_final_p[layer, p])} for layer in range(a.lens_top_ids.shape[0])]
    hits = np.flatnonzero(a.lens_top_ids[:, p, 0] == final)
    return {"final_token": {"id": final, "text": a.token_text.get(final, "")}, "layers": layers,
            "first_layer": int(hits[0]) if hits.size else None,
            "note": "layer 0 = the embeddings, the last layer = the model's output; the final norm and output layer "
                    "read every hidden state (logit lens, nostalgebraist 2020)"}


def _quantization(a: TokenAnalysis, p: int) -> dict:
    out = {}
    for name, q in a.quant.items():
        if "error" in q:
            out[name] = {"error": q["error"]}
            continue
        top1 = int(q["top1"][p])
        out[name] = {"kld": float(q["kld"][p]), "same_top": bool(q["same_top"][p]),
                     "top1": {"id": top1, "text": a.token_text.get(top1, "")}, "weight_bytes": q["weight_bytes"],
                     "error": None}
    return out


def _confidence(a: TokenAnalysis, p: int) -> tuple[dict | None, str]:
    if a.kinds[p] != "answer":
        reason = a.confidence_note if not a.chat_template else (
            f"position {p} is a token of the question, not of the answer (answer positions {a.answer_start} to "
            f"{a.n - 1})" if a.answer_start < a.n else a.confidence_note)
        return None, reason
    if a.confidence is None:
        return None, a.confidence_note
    i, c = p - a.answer_start, a.confidence
    return ({"answer_index": i, "prob": c["probs"][i], "entropy": c["entropies"][i], "rank": c["ranks"][i],
             "band": c["bands"][i], "alternatives": c["alternatives"][i], "min_prob": c["min_prob"],
             "max_surprisal": c["max_surprisal"], "attribution": a.attribution}, a.confidence_note)


def read(a: TokenAnalysis, position, from_cache: bool = False) -> InspectResult:
    """Slice one position out of an analysis (no model pass).

    Raises:
        ValueError: see :func:`check_position`.
    """
    p = check_position(a, position)
    confidence, reason = _confidence(a, p)
    provenance = a.provenance.as_cached() if from_cache else a.provenance
    return InspectResult(model=a.model, position=p, chat_template=a.chat_template, n_tokens=a.n, token=_token(a, p),
                         attention=_attention(a, p), kv_bytes=_kv(a, p), prediction=_prediction(a, p),
                         logit_lens=_logit_lens(a, p), quantization=_quantization(a, p), confidence=confidence,
                         confidence_reason=reason, from_cache=from_cache, provenance=provenance,
                         ids=tuple(int(i) for i in a.ids))


def iter_run(text: str, model: str | None = None, position: int = 0, chat_template: bool = False,
             engine=None, cache=None) -> Iterator[Progress | InspectResult]:
    """The lens contract: :class:`Progress` items, then the :class:`InspectResult` of ``position``.

    The analysis of ``(text, model, chat_template)`` is computed once and kept in the result cache; later
    positions are read from it.

    Raises:
        ValueError: empty text, an encoder, a text past the attention cap, a bad position or a chat-template token.
    """
    from explorer.core.validation import check_text

    check_text(text, "text")
    yield Progress(0.0, "analysing the text once (reference, int8 and NF4 passes)")
    a, cached = analysis(text, model, bool(chat_template), engine=engine, cache=cache)
    yield read(a, position, from_cache=cached)


def run(text: str, model: str | None = None, position: int = 0, chat_template: bool = False, engine=None,
        cache=None) -> InspectResult:
    """Blocking :func:`iter_run`."""
    from explorer.core.progress import run_to_end

    return run_to_end(iter_run(text, model, position, chat_template, engine, cache))


__all__ = ["InspectResult", "check_position", "iter_run", "read", "run", "to_api"]
