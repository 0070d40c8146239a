"""Decoding figures and table helpers render from stored results (tiny model, no re-run)."""
from __future__ import annotations

import numpy as np
import pytest

from components.tabs.decoding.tab import HEADERS, preset_row, rows_to_strategies
from components.tabs.decoding.figures import columns_html, step_figure, temperature_figure
from components.tabs.decoding.views import beam_tree_figure, speculative_figure, speculative_html
from explorer import decoding
from explorer.decoding.speculative import run_speculative


@pytest.fixture(scope="module")
def result(tiny_engine):
    return decoding.run("Tell me a story.", strategies=[
        {"name": "sampling", "temperature": 0.8, "top_k": 30, "top_p": 0.9, "min_p": 0.02, "seed": 1},
        {"name": "beam", "num_beams": 3}], max_new_tokens=5, engine=tiny_engine)


def test_step_and_temperature_figures(result):
    run = result.runs[0]
    fig = step_figure(run, 2, result.vocab_text)
    assert len(fig.data) == 1 + len(run.steps.stage_names) == 5
    assert any(label.startswith("▶") for label in fig.data[0].y) or "outside the top 20" in fig.layout.title.text
    flat = temperature_figure(result.first_logits, 2.0, result.vocab_text)
    sharp = temperature_figure(result.first_logits, 0.0, result.vocab_text)
    assert max(sharp.data[1].x) == 1.0 and "entropy 0.00" in sharp.layout.title.text
    assert max(flat.data[1].x) < max(flat.data[0].x)  # T > 1 flattens the top token


def test_beam_tree_and_columns(result):
    beam = result.runs[1]
    fig = beam_tree_figure(beam, result.vocab_text)
    winner = next(t for t in fig.data if t.name == "returned sequence")
    assert list(winner.y) == beam.beam.winner.tolist()
    page = columns_html(result)
    assert "seed <b>1</b>" in page and page.count("tok-chip") == sum(len(r.token_ids) for r in result.runs)


def test_speculative_views(tiny_engine):
    spec = run_speculative("a b c a b c a b", engine=tiny_engine, max_new_tokens=6, num_draft=3)
    fig = speculative_figure(spec, spec.vocab_text)
    assert np.array_equal(np.asarray(fig.data[0].y), spec.accepted)
    assert speculative_html(spec).count("tok-chip") == len(spec.token_ids)


def test_table_rows():
    rows = [preset_row("Greedy"), preset_row("Recommended sampling (T 0.7, top-p 0.95)"), [""] * len(HEADERS)]
    rows[0][1] = "0.5"  # temperature on a greedy row is dropped with a notice
    strategies, notices = rows_to_strategies(rows)
    assert strategies[0] == {"name": "greedy"} and "temperature" in notices[0]
    assert strategies[1]["temperature"] == "0.7" and int(strategies[1]["seed"]) >= 0
    with pytest.raises(ValueError, match="empty"):
        rows_to_strategies([[""] * len(HEADERS)])


def test_handlers_rerender_from_stored_result(result, monkeypatch):
    from components.tabs.decoding import tab as decoding_tab

    def no_model(*args, **kwargs):
        raise AssertionError("a view change must not run the model")

    monkeypatch.setattr(decoding_tab.decoding, "iter_runs", no_model)
    monkeypatch.setattr(decoding_tab.decoding, "run", no_model)
    fig = decoding_tab._scrub(result, 0, 3)
    assert fig.layout.title.text.startswith("Step 3/")
    slider, fig = decoding_tab._pick_column(result, 0)
    assert slider["maximum"] == result.runs[0].steps.num_steps
    assert "T = 1.5" in decoding_tab._temperature(result, 1.5).layout.title.text
    assert any(t.name == "returned sequence" for t in decoding_tab._beam(result, 1).data)
