"""The stored prompting table agrees with its own per-item verdicts, and the tab can draw it."""
import pytest

from explorer.prompting import stored
from explorer.prompting.stats import accuracy_interval


def test_stored_rows_recompute_from_their_items():
    table = stored.load_stored()
    assert table is not None and table.provenance.kind == "stored" and "bench_prompting.py" in table.provenance.source
    for row in table.rows:
        acc, low, high = accuracy_interval(row["correct"])
        assert row.get("accuracy", row.get("acc")) == pytest.approx(acc)
        assert row["interval"] == pytest.approx([low, high]) and row["n"] == len(row["correct"])
        assert row["command"].startswith("python bench/bench_prompting.py") and "torch" in row["versions"]


def test_the_stored_figure_has_a_cell_per_row():
    from components.tabs.prompting import figures

    table = stored.load_stored()
    model = table.rows[0]["model"]
    fig = figures.stored_figure(table, model)
    cells = [v for row in fig.data[0].z for v in row if v is not None]
    assert len(cells) == len(table.for_model(model))
