"""Loss by position: how much each extra token of context helps, over a long built-in document.

The surprisal of token ``i`` given ``x_<i`` is averaged in log-spaced position bins (1, 2-3, 4-7, ...), the
view used for in-context learning curves (Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
figure 20; Olsson et al. 2022, "In-context Learning and Induction Heads"). "More context stops helping" is the
first bin whose mean loss is within ``tolerance`` nats of every later bin's minimum.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import require_causal
from explorer.next_token import scoring
from explorer.next_token.texts import LONG_DOCUMENT

TOLERANCE_NATS = 0.1


@dataclass(frozen=True)
class PositionLoss:
    """Surprisal of every token of the document by its position.

    Attributes:
        nll: surprisal (nats) of the token at positions ``1..n-1``, ``(n - 1,)``.
        edges: log-spaced bin edges over positions, ``(n_bins + 1,)`` ints (bin ``b`` is ``[edges[b], edges[b+1])``).
        bin_mean: mean surprisal per bin (nats), ``(n_bins,)``.
        plateau: first position from which more context helps by less than ``tolerance`` nats.
        tolerance: nats.
    """

    model: str
    nll: np.ndarray
    edges: np.ndarray
    bin_mean: np.ndarray
    plateau: int
    tolerance: float = TOLERANCE_NATS
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("engine forward"))

    def summary(self) -> str:
        """One sentence for the UI."""
        first, last = float(self.bin_mean[0]), float(self.bin_mean[-1])
        return (f"Over {len(self.nll) + 1:,} tokens the mean loss falls from {first:.2f} nats at position "
                f"{self.edges[0]} to {last:.2f} nats at positions {self.edges[-2]:,}-{self.edges[-1] - 1:,}; "
                f"after about position {self.plateau:,} more context helps by less than {self.tolerance} nats.")

    def to_api(self) -> dict:
        """JSON form."""
        return {"model": self.model, "nll": self.nll.tolist(), "edges": self.edges.tolist(),
                "bin_mean": self.bin_mean.tolist(), "plateau": self.plateau, "tolerance": self.tolerance,
                "summary": self.summary(), "notices": list(self.notices), "provenance": self.provenance.to_api()}


def log_bins(n_predicted: int) -> np.ndarray:
    """Edges 1, 2, 4, 8, ... over positions ``1..n_predicted`` (the last edge is ``n_predicted + 1``; a last bin
    under half the width of the one before is merged into it)."""
    edges = [1]
    while edges[-1] * 2 <= n_predicted:
        edges.append(edges[-1] * 2)
    edges.append(n_predicted + 1)
    if len(edges) > 3 and edges[-1] - edges[-2] < (edges[-2] - edges[-3]) // 2:
        edges.pop(-2)  # a short last bin is merged into the one before, so its mean is not noise
    return np.asarray(edges, dtype=np.int64)


def plateau_position(edges: np.ndarray, bin_mean: np.ndarray, tolerance: float = TOLERANCE_NATS) -> int:
    """First bin start whose mean is within ``tolerance`` of the lowest later bin mean."""
    for b in range(len(bin_mean) - 1):
        if bin_mean[b] - bin_mean[b + 1:].min() < tolerance:
            return int(edges[b])
    return int(edges[len(bin_mean) - 1])


def iter_run(model: str | None = None, engine: Engine | None = None, text: str = LONG_DOCUMENT,
             max_tokens: int | None = None, stop=None) -> Iterator:
    """Score ``text`` (default: the built-in document) and bin the loss by position; yields :class:`Progress`,
    then a :class:`PositionLoss`. Over ``max_tokens`` (``max_position_tokens``) the first window is scored.

    Raises:
        ValueError: an encoder model, a text of one token.
    """
    engine = engine or get_engine(model)
    require_causal(engine, "Loss by position")
    cap = max_tokens or get_limits().max_position_tokens
    result = None
    for item in scoring.iter_run(text, engine=engine, top_k=1, cap=cap, stop=stop,
                                     cap_name="max_position_tokens", check_loss=False):
        if isinstance(item, Progress):
            yield item
        else:
            result = item
    nll = result.surprisal
    edges = log_bins(len(nll))
    # position p (1-based in the text) is nll[p - 1]
    bin_mean = np.asarray([nll[a - 1:b - 1].mean() for a, b in zip(edges[:-1], edges[1:])])
    yield PositionLoss(engine.name, nll, edges, bin_mean, plateau_position(edges, bin_mean), notices=result.notices,
                       provenance=measured("engine forward over the built-in document", engine.name))


def run(model: str | None = None, engine: Engine | None = None, text: str = LONG_DOCUMENT,
        max_tokens: int | None = None) -> PositionLoss:
    """Blocking :func:`iter_run`."""
    return run_to_end(iter_run(model, engine, text, max_tokens))
