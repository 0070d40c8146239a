"""AUROC, bootstrap interval and shuffled control checked on hand-made examples, and the stored bench table."""
from __future__ import annotations

import numpy as np
import pytest

from explorer.hallucination.evaluation import (SCORES, auroc, auroc_table, bootstrap_interval, load_entities,
                                         load_questions, load_results, roc_points, scores_from_probes,
                                         shuffled_control)


def test_auroc_hand_made():
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: pairs won 3 of 4
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auroc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert auroc([0, 0, 1, 1], [4, 3, 2, 1]) == 0.0
    assert auroc([0, 1, 1], [0.5, 0.5, 0.5]) == 0.5  # ties count half
    assert auroc([0, 1, 1], [0.2, None, 0.9]) == 1.0  # missing scores dropped
    assert np.isnan(auroc([1, 1], [0.1, 0.2]))
    fpr, tpr = roc_points([0, 0, 1, 1], [1, 2, 3, 4])
    assert fpr[0] == 0 and tpr[-1] == 1


def test_auroc_equals_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 80)
    scores = np.round(rng.normal(size=80) + labels * 0.5, 1)  # rounded: many ties
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_bootstrap_and_shuffled_control():
    rng = np.random.default_rng(1)
    labels = np.array([0] * 150 + [1] * 150)
    scores = np.concatenate([rng.normal(0, 1, 150), rng.normal(1, 1, 150)])
    value = auroc(labels, scores)
    low, high = bootstrap_interval(labels, scores, n_boot=300)
    assert low < value < high and 0.7 < value < 0.85 and high - low < 0.15
    assert shuffled_control(labels, scores) == pytest.approx(0.5, abs=0.02)


def test_labelled_set_size_and_shape():
    questions, entities = load_questions(), load_entities()
    assert len(questions) >= 200 and all(q["answers"] for q in questions)
    assert len({q["id"] for q in questions}) == len(questions)
    assert sum(e["real"] for e in entities) == 50 and sum(not e["real"] for e in entities) == 50


def test_scores_from_probes_orientation():
    probes = {"semantic_entropy": {"semantic_entropy": 0.7, "greedy_agreement": 0.25}, "p_true": {"score": 0.1}}
    scores = scores_from_probes(probes)
    assert set(scores) == set(SCORES)
    assert scores["samples: 1 - greedy agreement"] == 0.75 and scores["P(True): 1 - P(True)"] == 0.1
    assert scores["sequence: perplexity"] is None


def test_stored_bench_table_recomputes_without_the_model():
    records = [r for r in load_results() if r["set"] == "questions"]
    if len(records) < 20:
        pytest.skip("fewer than 20 stored bench results; run bench/bench_hallucination.py collect")
    rows = auroc_table(records, "questions", n_boot=100)
    assert {r.score for r in rows} <= set(SCORES) and rows
    for row in rows:
        assert row.n <= len(records) and row.n_positive == sum(
            1 for r in records if not r["correct"] and r["scores"].get(row.score) is not None)
        assert 0 <= row.auroc <= 1 and row.low <= row.auroc <= row.high
