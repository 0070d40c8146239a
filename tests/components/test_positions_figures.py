"""Positions figures and table helpers from real (tiny-model) results."""
from __future__ import annotations

import pytest

from components.tabs.positions import figures
from components.tabs.positions.tab import parse_ints, rope_summary
from explorer.positions import cost, extension, rope


def test_figures_carry_the_measured_numbers(tiny_engine):
    r = rope.run("Shift me along the line.", engine=tiny_engine, positions=[30, 5], offset=100)
    angles = figures.angles_figure(r)
    assert len(angles.data) == 1 and angles.data[0].z.shape[0] == len(r.inv_freq)
    shift = figures.shift_figure(r)
    assert list(shift.data[1].y) == list(r.rope.shifted[:, r.head])
    assert "largest relative change" in rope_summary(r)
    growth = figures.growth_figure(r)
    assert len(growth.data[0].x) == len(r.growth_offsets) - 1
    ext = extension.run([0, 9000], [{"type": "none"}, {"type": "linear", "factor": 2}], engine=tiny_engine)
    fig = figures.extension_figure(ext)
    assert [t.name for t in fig.data] == ["none", "linear x2"]
    assert list(fig.data[1].y) == [row.perplexity for row in ext.rows[2:]]
    c = cost.run([16, 32], engine=tiny_engine, repeats=1)
    cfig = figures.cost_figure(c)
    assert list(cfig.data[0].y) == [c.row(16, "eager").ms, c.row(32, "eager").ms]
    table = cost.ratio_table(c)
    assert table.shape == (2, 7) and table[1][3] == c.row(32, "eager").peak_bytes


def test_parse_ints():
    assert parse_ints("128, 256 1_024", "lengths") == [128, 256, 1024]
    with pytest.raises(ValueError, match="lengths"):
        parse_ints("128, long", "lengths")
