"""Contract for every hallucination probe in the registry (explorer.hallucination.PROBES): adding a probe adds it here.

Each probe runs on a tiny random model, returns a finite score (or declares it has none), a summary line and a
figure kind that the tab knows how to draw; its AUROC-table scores are finite too.
"""
from __future__ import annotations

import math

import pytest

from explorer.hallucination import PROBES, Probe

NAMES = list(PROBES)
QUESTION = "What is the capital of France?"
CONTEXT = "Paris is the capital and largest city of France."


@pytest.fixture(scope="module")
def answering_engine():
    """The tiny random Llama with an untied output layer: a tied one repeats the prompt's last token (a newline
    here), which would give an empty answer and nothing for the logit lens or attribution to follow."""
    import torch

    from tests.conftest import make_tiny_engine

    engine = make_tiny_engine(seed=1)
    shape = engine.model.lm_head.weight.shape
    engine.model.lm_head.weight = torch.nn.Parameter(
        torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 0.02, requires_grad=False)
    return engine


@pytest.fixture(scope="module")
def result(answering_engine):
    from explorer import hallucination as H

    return H.run(QUESTION, probes=NAMES, context=CONTEXT, n_samples=2, seed=0, engine=answering_engine)


@pytest.mark.parametrize("name", NAMES)
def test_probe_describes_itself(name):
    from components.tabs.hallucination.figures import FIGURES

    probe = PROBES[name]
    assert isinstance(probe, Probe) and probe.label and probe.explanation and probe.score_name
    assert probe.figure in FIGURES, f"probe {name!r} has figure kind {probe.figure!r}, which figures.py does not draw"
    assert callable(probe.summary)


@pytest.mark.parametrize("name", NAMES)
def test_probe_runs_with_finite_scores_summary_and_figure(result, name):
    from explorer.hallucination import summary_lines
    from components.tabs.hallucination.figures import probe_figure

    assert result.answer.answer_ids.size > 0
    out = result.probes[name]
    assert "error" not in out and "skipped" not in out, out
    if PROBES[name].score_name == "none":
        assert out["score"] is None
    else:
        assert out["score"] is not None and math.isfinite(out["score"])
    for label, key in PROBES[name].auroc_scores:
        assert out.get(key) is not None and math.isfinite(out[key]), f"{label}: {out.get(key)}"
    line = next(line for line in summary_lines(result) if PROBES[name].label in line)
    assert len(line) > len(PROBES[name].label) + 8
    figure = probe_figure(result, name)
    assert figure is not None and len(figure.data) > 0


def test_auroc_table_reads_the_registry():
    from explorer.hallucination.evaluation import SCORES

    assert SCORES == {label: (name, key) for name, p in PROBES.items() for label, key in p.auroc_scores}
