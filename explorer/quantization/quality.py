"""How far a quantised model's predictions move from the reference's, per token.

Follows llama.cpp's ``perplexity --kl-divergence`` report (tools/perplexity): for every scored token,
the KL divergence from the reference's next-token distribution to the method's (computed from fp32
log-softmax), whether the top-1 token is the same, the change Δp in the probability of the correct
next token (reported as its root mean square), and the perplexity ``exp(mean(-log p(correct)))``
with its ratio to the reference's.

Long texts are scored in non-overlapping windows of ``window`` tokens, as llama.cpp does with its
``n_ctx`` chunks; every token but the first of each window is scored.
"""
from __future__ import annotations

from explorer.core.config import data_path

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

PASSAGE_PATH = Path(data_path("quantization", "reference_passage.txt"))
PRECOMPUTED_PATH = Path(data_path("quantization", "quality_smollm2.json"))


@dataclass(frozen=True)
class TokenComparison:
    """Per-position comparison of one method with the reference on the same token ids.

    Attributes (numpy arrays of shape ``(n_scored,)``; position ``i`` predicts token ``i + 1``):
        kld: KL(reference || method) of the next-token distributions (nats).
        same_top: True where both models rank the same token first.
        p_ref: reference probability of the correct next token.
        p_method: method probability of the correct next token.
        logp_method: method log-probability of the correct next token (nats).
        logp_ref: reference log-probability of the correct next token (nats).
    """

    kld: np.ndarray
    same_top: np.ndarray
    p_ref: np.ndarray
    p_method: np.ndarray
    logp_method: np.ndarray
    logp_ref: np.ndarray


@dataclass(frozen=True)
class QualityStats:
    """Summary of a :class:`TokenComparison`, as in llama.cpp's KL-divergence report.

    Attributes:
        n_tokens: scored tokens.
        kld_mean, kld_median, kld_p99, kld_max: KL(reference || method) statistics (nats).
        same_top_pct: % of positions with the same top-1 token.
        rms_dp_pct: root mean square of Δp = p_method - p_ref of the correct token, in % points.
        ppl: the method's perplexity on the scored tokens; ppl_ref: the reference's.
        ppl_ratio: ppl / ppl_ref.
    """

    n_tokens: int
    kld_mean: float
    kld_median: float
    kld_p99: float
    kld_max: float
    same_top_pct: float
    rms_dp_pct: float
    ppl: float
    ppl_ref: float
    ppl_ratio: float

    def as_dict(self) -> dict:
        """Plain floats for JSON."""
        return {k: (int(v) if k == "n_tokens" else float(v)) for k, v in self.__dict__.items()}


def compare_logits(ref_logits, logits, targets) -> TokenComparison:
    """Compare two models' logits on the same positions.

    Args:
        ref_logits, logits: tensors of shape ``(pos, vocab)`` (any float dtype; upcast to fp32).
        targets: tensor ``(pos,)`` of the correct next-token ids.
    Returns:
        A :class:`TokenComparison` with arrays of shape ``(pos,)``.
    Formula: ``KL(P||Q) = sum_v P(v) (log P(v) - log Q(v))`` with P the reference (llama.cpp's direction).
    """
    import torch

    ref_lp = torch.log_softmax(ref_logits.float(), dim=-1)
    lp = torch.log_softmax(logits.float(), dim=-1)
    kld = (ref_lp.exp() * (ref_lp - lp)).sum(-1)
    same = ref_lp.argmax(-1) == lp.argmax(-1)
    idx = targets.long().view(-1, 1)
    logp_ref = ref_lp.gather(1, idx).squeeze(1)
    logp = lp.gather(1, idx).squeeze(1)
    return TokenComparison(kld=kld.cpu().numpy(), same_top=same.cpu().numpy(), p_ref=logp_ref.exp().cpu().numpy(),
                           p_method=logp.exp().cpu().numpy(), logp_method=logp.cpu().numpy(),
                           logp_ref=logp_ref.cpu().numpy())


def summarize(cmp: TokenComparison) -> QualityStats:
    """Summary statistics of a comparison (see :class:`QualityStats`).

    Raises:
        ValueError: nothing was scored (the text is a single token).
    """
    n = int(cmp.kld.size)
    if n == 0:
        raise ValueError("The text is too short to score: it needs at least two tokens.")
    ppl = float(np.exp(-np.mean(cmp.logp_method, dtype=np.float64)))
    ppl_ref = float(np.exp(-np.mean(cmp.logp_ref, dtype=np.float64)))
    dp = cmp.p_method.astype(np.float64) - cmp.p_ref
    return QualityStats(n_tokens=n, kld_mean=float(np.mean(cmp.kld, dtype=np.float64)),
                        kld_median=float(np.median(cmp.kld)), kld_p99=float(np.percentile(cmp.kld, 99)),
                        kld_max=float(np.max(cmp.kld)), same_top_pct=100.0 * float(np.mean(cmp.same_top)),
                        rms_dp_pct=100.0 * float(np.sqrt(np.mean(dp * dp))), ppl=ppl, ppl_ref=ppl_ref,
                        ppl_ratio=ppl / ppl_ref if ppl_ref else float("inf"))


def concat(parts: list[TokenComparison]) -> TokenComparison:
    """Join per-window comparisons into one, in order."""
    return TokenComparison(*(np.concatenate([getattr(p, f) for p in parts])
                             for f in TokenComparison.__dataclass_fields__))


def forward_logits(engine, ids: list[int]):
    """Logits ``(pos, vocab)`` of one ``Engine.forward`` pass of ``ids`` on ``engine`` (fp32, on CPU)."""
    return engine.forward(ids, use_cache=False).logits[0].float().cpu()


def score_text(reference_engine, variant_engines: dict[str, object], ids: list[int], window: int = 512,
               progress: Callable[[float, str], None] | None = None) -> dict[str, TokenComparison]:
    """Score ``ids`` with the reference and every variant, window by window.

    Args:
        reference_engine: the shared reference :class:`explorer.core.engine.Engine`.
        variant_engines: method name -> engine (the reference's own entry may be included).
        ids: token ids of the text, length ``n``.
        window: tokens per window (llama.cpp's ``n_ctx``); each window is scored from its second token.
        progress: optional ``(fraction, message)`` callback.
    Returns:
        method name -> :class:`TokenComparison` over ``n - ceil(n / window)`` scored positions.
    Raises:
        ValueError: fewer than two tokens, or a window under 2 tokens.
    """
    import torch

    if len(ids) < 2:
        raise ValueError("The text is too short to score: it needs at least two tokens.")
    if window < 2:
        raise ValueError("The scoring window must be at least 2 tokens.")
    starts = [s for s in range(0, len(ids), window) if len(ids[s:s + window]) >= 2]
    parts: dict[str, list[TokenComparison]] = {name: [] for name in variant_engines}
    steps = len(starts) * (1 + len(variant_engines))
    done = 0
    for start in starts:
        chunk = ids[start:start + window]
        targets = torch.tensor(chunk[1:])
        ref = forward_logits(reference_engine, chunk)[:-1]
        done += 1
        for name, engine in variant_engines.items():
            if progress:
                progress(done / steps, f"scoring {name}: tokens {start}-{start + len(chunk)} of {len(ids)}")
            logits = ref if engine is reference_engine else forward_logits(engine, chunk)[:-1]
            parts[name].append(compare_logits(ref, logits, targets))
            done += 1
    return {name: concat(p) for name, p in parts.items()}


def reference_passage() -> str:
    """The project's reference passage (about 2,000 SmolLM2 tokens of plain English prose)."""
    return PASSAGE_PATH.read_text(encoding="utf-8")


def _repo_relative(path) -> str:
    """``path`` relative to the repository (``data/...``) when it lies inside it, else as given."""
    import os

    from explorer.core.config import REPO_ROOT

    rel = os.path.relpath(str(path), REPO_ROOT)
    return str(path) if rel.startswith("..") else rel


def load_precomputed(path: Path | None = None) -> dict | None:
    """The quality table written by ``bench/bench_quantization.py``, or ``None`` if absent.

    Shape: ``{"model", "device", "window", "n_tokens", "methods": {name: {stats..., "kld": [per position]}},
    "provenance": {"kind": "stored", ...}}`` (the provenance is added on reading: the file and its command).
    """
    import json

    from explorer.core.provenance import stored

    path = path or PRECOMPUTED_PATH
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["provenance"] = stored(_repo_relative(path), "python bench/bench_quantization.py --write",
                                when=path.stat().st_mtime, model=str(data.get("model", ""))).to_api()
    return data
