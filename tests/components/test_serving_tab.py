"""Serving tab figures and text from plain dicts (no model)."""
from components.tabs.serving import figures as figs
from components.tabs.serving.tab import comparison_summary

DATA = {"model": "smollm2-135m-instruct", "max_new_tokens": [4, 24, 8], "prompt_tokens": [30, 35, 31],
        "same_tokens": True, "handbook": "5-10x", "speedup_continuous_over_static": 1.5,
        "speedup_continuous_over_one_at_a_time": 3.0,
        "methods": [{"method": "one_at_a_time", "seconds": 6.0, "tokens": 36, "tokens_per_s": 6.0,
                     "latency_ms": [500.0, 3000.0, 6000.0]},
                    {"method": "static", "seconds": 3.0, "tokens": 36, "tokens_per_s": 12.0,
                     "latency_ms": [3000.0, 3000.0, 3000.0]},
                    {"method": "continuous", "seconds": 2.0, "tokens": 36, "tokens_per_s": 18.0,
                     "latency_ms": [400.0, 2000.0, 900.0]}]}


def test_comparison_figure_has_throughput_bars_and_latency_points():
    fig = figs.comparison_figure(DATA)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [b.y[0] for b in bars] == [6.0, 12.0, 18.0]
    points = [t for t in fig.data if t.type == "scatter"]
    assert list(points[2].y) == [400.0, 2000.0, 900.0] and list(points[2].x) == [4, 24, 8]


def test_summary_quotes_the_speedups_and_the_handbook():
    text = comparison_summary(DATA, "stored")
    assert "1.5x" in text and "3.0x" in text and "5-10x" in text and "18.0 tokens/s" in text


def test_live_figure_from_polled_stats():
    history = [{"t": 0.0, "running": 1, "waiting": 2, "tokens_per_s": 3.0, "batch_sizes": [1, 3]},
               {"t": 2.0, "running": 0, "waiting": 0, "tokens_per_s": 0.0, "batch_sizes": []}]
    fig = figs.live_figure(history)
    assert list(fig.data[0].y) == [1, 0] and list(fig.data[3].y) == [2.0, 0.0]
