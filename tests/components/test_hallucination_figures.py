"""Hallucination figures and tab helpers render the numbers they are given (no model needed)."""
from __future__ import annotations

import numpy as np

from components.tabs.hallucination import figures as figs
from explorer.hallucination.attribution import Attribution
from explorer.hallucination.answer import Answer
from explorer.hallucination.evaluation import auroc_table
from explorer.hallucination.samples import SampleClusters
from explorer.hallucination.signals import LogitLens


def _answer() -> Answer:
    logprob = np.log([0.9, 0.05, 0.0004])
    return Answer(question="Q?", context=None, prompt_ids=np.arange(5), answer_ids=np.array([7, 8, 9]),
                  text="Par is!", pieces=["Par", " is", "!"], logprob=logprob, entropy=np.array([0.3, 2.0, 5.0]),
                  rank=np.array([1, 40, 2000]), top_ids=np.zeros((3, 5), dtype=int), top_probs=np.full((3, 5), 0.1),
                  top_pieces=[["a", "b", "c", "d", "e"]] * 3, elapsed_ms=1.0)


def test_token_confidence_views():
    answer = _answer()
    prob = figs.token_confidence(answer, "probability")
    assert np.allclose(prob.data[0].y, [0.9, 0.05, 0.0004])
    assert "top alternatives" in prob.data[0].hovertext[0]
    rank = figs.token_confidence(answer, "rank")
    assert list(rank.data[0].text) == ["top-10", "top-100", "beyond"]
    assert np.allclose(figs.token_confidence(answer, "entropy").data[0].y, [0.3, 2.0, 5.0])


def test_clusters_lens_and_attribution_figures():
    clusters = SampleClusters(samples=["Paris", "Paris", "Lyon"], cluster_of=np.array([0, 0, 1]),
                              cluster_probs=np.array([2 / 3, 1 / 3]), representatives=["Paris", "Lyon"],
                              semantic_entropy=0.6371, greedy_agreement=2 / 3, similarity=np.eye(3), seed=0,
                              temperature=0.7, top_p=0.95, elapsed_ms=1.0)
    fig = figs.sample_clusters(clusters)
    assert np.allclose(fig.data[0].y, [2 / 3, 1 / 3]) and "0.637" in fig.layout.title.text
    lens = LogitLens(layers=np.arange(3), positions=["a", "b"], targets=["x", "y"], top_ids=np.zeros((3, 2), int),
                     top_pieces=[["q", "q"], ["x", "q"], ["x", "y"]], top_probs=np.full((3, 2), 0.5),
                     target_probs=np.array([[0.1, 0.0], [0.6, 0.1], [0.9, 0.8]]), first_layer=np.array([1, 2]),
                     last_logits_top=np.zeros(2, int))
    heat = figs.logit_lens(lens)
    assert np.allclose(heat.data[0].z, lens.target_probs) and list(heat.data[1].y) == ["L1", "L2"]
    attr = Attribution(method="feature_ablation", unit="word", answer="x", target_logprob=-1.0,
                       segments=["Who", " are", " you?"], segment_scores=np.array([0.5, -0.2, 0.1]),
                       tokens=["<s>", "Who", " are", " you?"], token_scores=np.array([0, 0.5, -0.2, 0.1]),
                       attributed=np.array([False, True, True, True]), elapsed_ms=1.0)
    assert np.allclose(figs.attribution(attr).data[0].y, [0.5, -0.2, 0.1])
    assert "color:#999" in figs.attribution_html(attr)


def test_auroc_frame_and_roc_curves():
    records = [{"id": str(i), "set": "questions", "correct": i % 2 == 0,
                "scores": {"sequence: perplexity": float(i % 2) + i / 100}} for i in range(20)]
    rows = auroc_table(records, "questions", n_boot=50)
    assert [r.score for r in rows] == ["sequence: perplexity"] and rows[0].auroc == 1.0
    frame = figs.auroc_frame(rows)
    assert frame.loc[0, "AUROC"] == 1.0 and frame.loc[0, "n"] == 20 and frame.loc[0, "positives"] == 10
    assert len(figs.roc_curves(rows).data) == 2
