"""Perplexity by domain: the built-in texts (texts.py) scored on one model, per token and per byte.

Perplexity per token is not comparable across tokenizers (a 49k and a 262k vocabulary split the same text
into different numbers of tokens); bits per byte, ``total NLL / (ln 2 x UTF-8 bytes)``, is (Gao et al. 2020,
"The Pile", section 5). The interval is a percentile bootstrap over consecutive windows of ``window_tokens``
predicted tokens (``scipy.stats.bootstrap``, paired resampling of each window's NLL, token count and bytes), so
it reflects how much the figure varies across the text's parts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.core.engine import Engine, get_engine
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import require_causal
from explorer.next_token import scoring, stored
from explorer.next_token.texts import DOMAIN_NAMES, domain_text

WINDOW_TOKENS = 32
N_RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0


@dataclass(frozen=True)
class DomainRow:
    """One domain's figures.

    Attributes:
        name: domain ("Python code").
        tokens: predicted tokens; ``bytes``: their UTF-8 bytes; ``bytes_per_token``: bytes / tokens.
        cross_entropy: nats per token; ``perplexity``: ``exp(cross_entropy)``, with ``ppl_low``/``ppl_high``.
        bits_per_byte: with ``bpb_low``/``bpb_high`` (the bootstrap interval at ``confidence``).
    """

    name: str
    tokens: int
    bytes: int
    bytes_per_token: float
    cross_entropy: float
    perplexity: float
    ppl_low: float
    ppl_high: float
    bits_per_byte: float
    bpb_low: float
    bpb_high: float

    def to_api(self) -> dict:
        """JSON form (all fields)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class DomainTable:
    """Every domain on one model.

    Attributes:
        model: model name; ``rows``: one :class:`DomainRow` per domain; ``window_tokens``, ``n_resamples``,
        ``confidence``: the bootstrap settings; ``provenance``: measured now or stored by the bench.
    """

    model: str
    rows: tuple[DomainRow, ...]
    window_tokens: int = WINDOW_TOKENS
    n_resamples: int = N_RESAMPLES
    confidence: float = CONFIDENCE
    provenance: Provenance = field(default_factory=lambda: measured("engine forward"))

    def row(self, name: str) -> DomainRow:
        """The row of domain ``name``.

        Raises:
            KeyError: no such domain in this table.
        """
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_api(self) -> dict:
        """JSON form."""
        return {"model": self.model, "rows": [r.to_api() for r in self.rows], "window_tokens": self.window_tokens,
                "n_resamples": self.n_resamples, "confidence": self.confidence,
                "provenance": self.provenance.to_api()}


def window_sums(nll: np.ndarray, nbytes: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-window sums of NLL (nats), token counts and bytes over consecutive windows of ``window`` tokens
    (the last, shorter window is merged into the one before it so no window is tiny)."""
    n = len(nll)
    edges = list(range(0, n, window)) + [n]
    if len(edges) > 2 and edges[-1] - edges[-2] < window // 2:
        edges.pop(-2)
    s = [(float(nll[a:b].sum()), b - a, int(nbytes[a:b].sum())) for a, b in zip(edges[:-1], edges[1:])]
    return tuple(np.asarray(col, dtype=np.float64) for col in zip(*s))


def bootstrap_interval(nll_w, count_w, bytes_w, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                       seed: int = SEED) -> tuple[float, float, float, float]:
    """Percentile bootstrap of perplexity and bits per byte over windows: ``(ppl_low, ppl_high, bpb_low, bpb_high)``.

    Uses ``scipy.stats.bootstrap`` with paired resampling; with fewer than 2 windows the interval is the point.
    """
    from scipy.stats import bootstrap

    ppl = math.exp(nll_w.sum() / count_w.sum())
    bpb = nll_w.sum() / (math.log(2) * bytes_w.sum()) if bytes_w.sum() else float("nan")
    if len(nll_w) < 2:
        return ppl, ppl, bpb, bpb
    kwargs = dict(paired=True, vectorized=True, n_resamples=n_resamples, confidence_level=confidence,
                  method="percentile", rng=np.random.default_rng(seed))
    ci_ppl = bootstrap((nll_w, count_w), lambda a, b, axis=-1: np.exp(a.sum(axis) / b.sum(axis)), **kwargs)
    ci_bpb = bootstrap((nll_w, bytes_w), lambda a, b, axis=-1: a.sum(axis) / (math.log(2) * b.sum(axis)), **kwargs)
    return (float(ci_ppl.confidence_interval.low), float(ci_ppl.confidence_interval.high),
            float(ci_bpb.confidence_interval.low), float(ci_bpb.confidence_interval.high))


def row_from_score(name: str, result: scoring.ScoreResult, window: int = WINDOW_TOKENS) -> DomainRow:
    """A :class:`DomainRow` from a scored text."""
    nbytes = result.token_bytes[1:]
    nll_w, count_w, bytes_w = window_sums(result.surprisal, nbytes, window)
    lo, hi, blo, bhi = bootstrap_interval(nll_w, count_w, bytes_w)
    return DomainRow(name=name, tokens=result.n_predicted, bytes=result.predicted_bytes,
                     bytes_per_token=result.predicted_bytes / result.n_predicted,
                     cross_entropy=result.cross_entropy, perplexity=result.perplexity, ppl_low=lo, ppl_high=hi,
                     bits_per_byte=result.bits_per_byte, bpb_low=blo, bpb_high=bhi)


def iter_run(model: str | None = None, engine: Engine | None = None, names=DOMAIN_NAMES, stop=None) -> Iterator:
    """Score every built-in domain; yields :class:`Progress`, then a :class:`DomainTable`.

    Raises:
        ValueError: an encoder model or an unknown domain name.
    """
    engine = engine or get_engine(model)
    require_causal(engine, "Perplexity by domain")
    rows = []
    for i, name in enumerate(names):
        yield Progress(i / len(names), f"scoring {name}")
        text = domain_text(name, engine.tokenizer)
        result = scoring.run(text, engine=engine, top_k=1, cap=4096, check_loss=False)
        rows.append(row_from_score(name, result))
        if stop is not None:
            stop.check()
    yield DomainTable(engine.name, tuple(rows), provenance=measured(
        f"engine forward over the built-in texts; bootstrap over {WINDOW_TOKENS}-token windows", engine.name))


def run(model: str | None = None, engine: Engine | None = None, names=DOMAIN_NAMES) -> DomainTable:
    """Blocking :func:`iter_run`."""
    return run_to_end(iter_run(model, engine, names))


def save(table: DomainTable, meta: dict) -> str:
    """Write ``table`` with ``meta`` (command, date, versions) to ``data/next_token/domains_<model>.json``."""
    return stored.write("domains", table.model, table.to_api(), meta)


def load_stored(model: str) -> DomainTable | None:
    """The stored bench table for ``model`` (provenance ``stored``), or ``None``."""
    found = stored.read("domains", model)
    if found is None:
        return None
    data, prov = found
    return DomainTable(model, tuple(DomainRow(**r) for r in data["rows"]), data["window_tokens"],
                       data["n_resamples"], data["confidence"], prov)
