"""Has the model seen this text? Min-K% Prob (Shi et al. 2023, "Detecting Pretraining Data from Large Language
Models", ICLR 2024).

The score is the mean log-probability of the ``k`` fraction of tokens the model found least likely. A text seen
in training has few very surprising tokens, so its score is higher (closer to 0) than an unseen text's. It is a
heuristic, not proof: common phrasing scores high without being memorised, and the threshold between "seen"
and "unseen" differs by model and text type, so the user's passage is shown beside a famous public-domain
passage (likely seen) and one written for this project (unseen).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from explorer.core.engine import Engine, get_engine
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_float, require_causal
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))
from explorer.next_token import scoring
from explorer.next_token.texts import FAMOUS, FAMOUS_TITLE, FRESH, FRESH_TITLE

CAVEAT = ("Min-K% Prob is a heuristic (Shi et al. 2023): a higher score (closer to 0) suggests the text, or text "
          "very like it, was in the training data, but it proves nothing; the famous and fresh passages show "
          "this model's scale.")


def min_k_score(logprob: np.ndarray, k: float) -> tuple[float, int]:
    """Mean of the ``ceil(k x n)`` lowest log-probabilities (at least one): ``(score in nats, tokens used)``."""
    n = len(logprob)
    used = max(1, int(math.ceil(k * n)))
    return float(np.sort(np.asarray(logprob, dtype=np.float64))[:used].mean()), used


@dataclass(frozen=True)
class MinKEntry:
    """One passage's score: ``title``, ``score`` (nats, mean of the lowest log-probs), ``used`` (tokens in the
    mean), ``tokens`` (predicted tokens), ``perplexity``."""

    title: str
    score: float
    used: int
    tokens: int
    perplexity: float

    def to_api(self) -> dict:
        """JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class MinKResult:
    """The user's passage and the two references.

    Attributes:
        k: fraction of least likely tokens averaged (0 < k <= 1).
        text: the user's :class:`MinKEntry`; ``famous``, ``fresh``: the references.
        notices: windowing notices; provenance: measured.
    """

    model: str
    k: float
    text: MinKEntry
    famous: MinKEntry
    fresh: MinKEntry
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("engine forward"))

    def to_api(self) -> dict:
        """JSON form of ``/min_k``: ``{"score", "k", ...}``."""
        return {"model": self.model, "score": self.text.score, "k": self.k, "used": self.text.used,
                "tokens": self.text.tokens, "references": {"famous": self.famous.to_api(),
                                                           "fresh": self.fresh.to_api()},
                "caveat": CAVEAT, "notices": list(self.notices), "provenance": self.provenance.to_api()}


def _entry(title: str, result: scoring.ScoreResult, k: float) -> MinKEntry:
    score, used = min_k_score(result.logprob, k)
    return MinKEntry(title, score, used, result.n_predicted, result.perplexity)


def run(text: str, model: str | None = None, k: float = 0.2, engine: Engine | None = None) -> MinKResult:
    """Min-K% Prob of ``text`` beside the famous and the fresh passage.

    Raises:
        ValueError: bad text or a single token, ``k`` outside (0, 1], an encoder model.
    """
    k = check_float(k, "k", minimum=0.0, maximum=1.0, strict_minimum=True)
    engine = engine or get_engine(model)
    require_causal(engine, "Min-K% Prob")
    user = scoring.run(text, engine=engine, top_k=1, check_loss=False)
    refs = [scoring.run(t, engine=engine, top_k=1, check_loss=False) for t in (FAMOUS, FRESH)]
    return MinKResult(engine.name, k, _entry("your passage", user, k), _entry(FAMOUS_TITLE, refs[0], k),
                      _entry(FRESH_TITLE, refs[1], k), user.notices,
                      measured("engine forward; mean of the k% lowest token log-probabilities", engine.name))
