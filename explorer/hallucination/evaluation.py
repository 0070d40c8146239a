"""How good is each probe on this model: AUROC on the project's labelled set, with intervals and a control.

The labelled set lives in ``data/hallucination/``: ``questions.json`` (short-answer questions with accepted
answers) and ``entities.json`` (real and invented entities asked about with one template). The bench
script (``bench/bench_hallucination.py``) stores one JSON line per item in ``bench_results.jsonl`` (answer,
label, every probe's score), so this module recomputes the table and ROC curves without the model.

- Label (questions): 1 when the greedy answer does not match any accepted answer (normalised), i.e. wrong.
- Label (entities): 1 when the entity is invented.
- AUROC: area under the ROC curve of the score for detecting label 1 (Hanley & McNeil 1982), via
  scikit-learn; 95 % interval by the percentile bootstrap over items (Efron & Tibshirani 1993); the control
  is the same AUROC after shuffling the scores across items (mean over shuffles, expected 0.5).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from explorer.core.config import data_path
from explorer.core.provenance import Provenance, stored
from explorer.hallucination.probes import PROBES

DATA_DIR = data_path("hallucination")
RESULTS_FILE = os.path.join(DATA_DIR, "bench_results.jsonl")

COLLECT_COMMAND = "python bench/bench_hallucination.py collect"

# Score label -> (probe name, key in the probe's dict), read from each probe's own ``auroc_scores`` in the
# registry. Every score is oriented "higher = more likely wrong".
SCORES: dict[str, tuple[str, str]] = {label: (name, key) for name, probe in PROBES.items()
                                      for label, key in probe.auroc_scores}


def load_questions(path: str | None = None) -> list[dict]:
    """The labelled questions: dicts with ``id``, ``question``, ``answers`` (accepted answers)."""
    with open(path or os.path.join(DATA_DIR, "questions.json"), encoding="utf-8") as fh:
        return json.load(fh)["questions"]


def load_entities(path: str | None = None) -> list[dict]:
    """The entities: dicts with ``id``, ``name``, ``kind`` (person/place), ``real`` (bool), ``question``."""
    with open(path or os.path.join(DATA_DIR, "entities.json"), encoding="utf-8") as fh:
        return json.load(fh)["entities"]


def load_results(path: str | None = None) -> list[dict]:
    """Stored bench records (one per item id, the first stored wins; see ``bench/bench_hallucination.py``)."""
    path = path or RESULTS_FILE
    if not os.path.exists(path):
        return []
    records: dict = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by an interrupted run
                records.setdefault(record["id"], record)
    return list(records.values())


def _auroc_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``s`` (R, n) against the labels ``y`` (R, n) via the Mann-Whitney U statistic.

    ``AUROC = (sum of positive ranks - P (P + 1) / 2) / (P N)`` with average ranks for ties (Hanley & McNeil
    1982); ``nan`` for a row with one class only.
    """
    from scipy.stats import rankdata

    ranks = rankdata(s, axis=1)
    pos = y.sum(axis=1).astype(np.float64)
    neg = y.shape[1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (ranks * y).sum(axis=1) - pos * (pos + 1) / 2
        return np.where((pos > 0) & (neg > 0), u / (pos * neg), np.nan)


def auroc(labels, scores) -> float:
    """Area under the ROC curve for detecting ``labels == 1`` with ``scores`` (higher = positive).

    Items with a missing (nan) score are dropped. Returns ``nan`` when only one class remains.
    Equals ``sklearn.metrics.roc_auc_score`` (checked in the tests).
    """
    y, s = _clean(labels, scores)
    if y.size == 0:
        return float("nan")
    return float(_auroc_rows(y[None, :], s[None, :])[0])


def _clean(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray([np.nan if v is None else v for v in scores], dtype=np.float64)
    keep = np.isfinite(s)
    return y[keep], s[keep]


def bootstrap_interval(labels, scores, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap interval of the AUROC (resampling items with replacement).

    Returns:
        ``(low, high)``; ``(nan, nan)`` when a class is missing.
    """
    y, s = _clean(labels, scores)
    if y.size == 0 or y.min() == y.max():
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, y.size, (n_boot, y.size))
    values = _auroc_rows(y[idx], s[idx])
    values = values[np.isfinite(values)]
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def shuffled_control(labels, scores, n_shuffles: int = 200, seed: int = 0) -> float:
    """Mean AUROC after randomly permuting the scores across items: the no-signal control (about 0.5)."""
    y, s = _clean(labels, scores)
    if y.size == 0 or y.min() == y.max():
        return float("nan")
    perms = np.random.default_rng(seed).permuted(np.tile(s, (n_shuffles, 1)), axis=1)
    return float(np.mean(_auroc_rows(np.tile(y, (n_shuffles, 1)), perms)))


def roc_points(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """False-positive and true-positive rates of the ROC curve, each ``np.ndarray`` (n_thresholds,)."""
    from sklearn.metrics import roc_curve

    y, s = _clean(labels, scores)
    if y.size == 0 or y.min() == y.max():
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr


@dataclass(frozen=True)
class AurocRow:
    """One row of the AUROC table.

    Attributes:
        score: the score label (see :data:`SCORES`); task: ``"wrong answer"`` or ``"invented entity"``.
        n: items with a score; n_positive: wrong answers / invented entities among them.
        auroc, low, high: AUROC and its bootstrap 95 % interval; shuffled: the shuffled-score control.
        fpr, tpr: ROC curve points.
    """

    score: str
    task: str
    n: int
    n_positive: int
    auroc: float
    low: float
    high: float
    shuffled: float
    fpr: np.ndarray
    tpr: np.ndarray


def labels_and_scores(records: list[dict], task: str) -> tuple[np.ndarray, dict[str, list]]:
    """Labels and each score's values from stored records for ``task`` (``"questions"`` or ``"entities"``)."""
    chosen = [r for r in records if r.get("set") == task]
    key = "correct" if task == "questions" else "real"
    labels = np.array([0 if r[key] else 1 for r in chosen], dtype=np.int64)
    scores = {name: [r.get("scores", {}).get(name) for r in chosen] for name in SCORES}
    return labels, scores


def auroc_table(records: list[dict], task: str = "questions", n_boot: int = 1000, seed: int = 0) -> list[AurocRow]:
    """AUROC rows for every score in :data:`SCORES` on ``task`` (skipping scores never measured)."""
    labels, scores = labels_and_scores(records, task)
    rows = []
    for name, values in scores.items():
        y, s = _clean(labels, values)
        if y.size == 0:
            continue
        low, high = bootstrap_interval(y, s, n_boot, seed)
        fpr, tpr = roc_points(y, s)
        rows.append(AurocRow(name, "wrong answer" if task == "questions" else "invented entity", int(y.size),
                             int(y.sum()), auroc(y, s), low, high, shuffled_control(y, s, seed=seed), fpr, tpr))
    return rows


@dataclass(frozen=True)
class StoredTable:
    """The AUROC table recomputed from the stored bench results.

    Attributes:
        task: ``"questions"`` or ``"entities"``; rows: one :class:`AurocRow` per score (empty without results).
        provenance: ``stored``: the results file and the command that wrote it, ``when`` = the file's mtime.
    """

    task: str
    rows: list
    provenance: Provenance

    def to_api(self) -> dict:
        """JSON: ``{"task", "rows": [{"score", "task", "n", "n_positive", "auroc", "low", "high", "shuffled"}],
        "provenance"}``."""
        return {"task": self.task, "provenance": self.provenance.to_api(),
                "rows": [{"score": r.score, "task": r.task, "n": r.n, "n_positive": r.n_positive, "auroc": r.auroc,
                          "low": r.low, "high": r.high, "shuffled": r.shuffled} for r in self.rows]}


def stored_table(task: str = "questions", path: str | None = None) -> StoredTable:
    """:func:`auroc_table` of the stored results at ``path`` (default :data:`RESULTS_FILE`) with its provenance."""
    path = path or RESULTS_FILE
    when = os.path.getmtime(path) if os.path.exists(path) else None
    rel = os.path.relpath(path, os.path.dirname(os.path.dirname(DATA_DIR)))
    return StoredTable(task, auroc_table(load_results(path), task), stored(rel, COLLECT_COMMAND, when=when))


def scores_from_probes(probes: dict) -> dict:
    """Flatten a ``/probe`` result's probe dicts into ``{score label: value}`` (``None`` when missing)."""
    out = {}
    for label, (probe, key) in SCORES.items():
        value = (probes.get(probe) or {}).get(key)
        if key == "disagreement" and value is None:  # results stored before the probe reported it
            agreement = (probes.get(probe) or {}).get("greedy_agreement")
            value = None if agreement is None else 1.0 - agreement
        out[label] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    return out
