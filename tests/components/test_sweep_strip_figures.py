"""Pure renderers: the sweep heatmaps carry log10 perplexity and the marker shift against the baseline (formula on
hand-made cells), and the commitment strip shows each token's layer ("never" for None) under a MEASURED badge."""
from __future__ import annotations

import math

import numpy as np

from components.commitment import strip_html
from components.tabs.circuits.figures import sweep_figure
from explorer.circuits.commitment import CommitmentResult
from explorer.circuits.sweep import MARKERS, SweepCell, SweepResult
from explorer.core.provenance import measured


def cell(layer, strength, ppl, ratio):
    return SweepCell(layer, strength, (1,), "x", ppl, ratio, False)


def test_sweep_figure_values():
    cells = (cell(2, 0.5, 10.0, 1.5), cell(2, 1.0, 1000.0, 3.0), cell(5, 0.5, None, None), cell(5, 1.0, 4.0, -1.0))
    result = SweepResult("m", "p", (2, 5), (0.5, 1.0), cell(None, 0.0, 5.0, 1.0), cells, "sentiment",
                         MARKERS["sentiment"], 4)
    fig = sweep_figure(result)
    ppl, shift = np.asarray(fig.data[0].z, dtype=float), np.asarray(fig.data[1].z, dtype=float)
    assert ppl[0].tolist() == [1.0, 3.0] and math.isnan(ppl[1, 0]) and ppl[1, 1] == np.log10(4.0)
    assert shift[0].tolist() == [0.5, 2.0] and shift[1, 1] == -2.0
    assert "baseline 5.0" in fig.layout.xaxis.title.text and "+1.00" in fig.layout.xaxis2.title.text


def test_commitment_strip_html():
    result = CommitmentResult("m", 30, (5, 6), ("Hello", " <b>"), (12, None), ((0,), (0,)), ("capped",),
                              measured("test"))
    out = strip_html(result)
    assert "L12" in out and "never" in out and "&lt;b&gt;" in out and "MEASURED" in out and "capped" in out
    assert result.to_api() == {"tokens": [{"text": "Hello", "layer": 12}, {"text": " <b>", "layer": None}],
                               "num_layers": 30, "notices": ["capped"]}
