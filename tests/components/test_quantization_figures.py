"""Quantisation figures render from a real (tiny-model) result without re-running the model."""
from components.tabs.quantization import figures as fig
from explorer import quantization
from explorer.quantization.error import error_map, int8_outliers, matrix_error
from explorer.quantization.methods import get_variant


def test_figures_from_result(tiny_engine):
    result = quantization.run("Hello", engine=tiny_engine, methods=["int8", "nf4"], max_new_tokens=3)
    rows = fig.summary_rows(result)
    assert [r[0] for r in rows] == ["reference", "int8", "nf4"] and rows[0][2] == 1.0
    kl = fig.kl_figure(result)
    assert [t.name for t in kl.data] == ["int8", "nf4"]
    assert len(kl.data[0].y) == len(result.sequence_ids) - 1
    html = fig.text_diff_html(result)
    assert html.count("<b>") == 3
    dist = fig.distribution_figure(result, 2)
    assert len(dist.data) == 3 and list(dist.data[0].y) == sorted(dist.data[0].y, reverse=True)
    bits = fig.bits_table_rows(result)
    assert bits[0][2:4] == [28.0, 280.0] and bits[2][2:4] == [7.0, 70.0]  # the handbook's fp32 / INT8 rows
    assert len(bits) == 6 + 3
    nf4 = get_variant(tiny_engine, "nf4").engine.model
    err = matrix_error(tiny_engine.model, nf4, "model.layers.0.self_attn.q_proj")
    assert int(err.hist_counts.sum()) == 64 * 64
    assert fig.error_histogram(err).data and fig.error_scatter(err).data
    assert fig.error_heatmap(error_map(tiny_engine.model, nf4), "t").data[0].z.shape == (2, 7)
    oc = int8_outliers(tiny_engine, result.sequence_ids.tolist(), 0.5)
    assert fig.outlier_heatmap(oc).data[0].z.shape == (2, 7)


def test_passage_table_and_figure():
    data = {"n_tokens": 5, "methods": {
        "reference": {"kld_mean": 0.0, "kld_p99": 0.0, "kld_max": 0.0, "same_top_pct": 100.0, "rms_dp_pct": 0.0,
                      "ppl": 10.0, "ppl_ratio": 1.0, "weight_bytes": 2**21, "kld": [0.0] * 4},
        "nf4": {"kld_mean": 0.2, "kld_p99": 0.9, "kld_max": 1.0, "same_top_pct": 75.0, "rms_dp_pct": 9.0,
                "ppl": 12.0, "ppl_ratio": 1.2, "weight_bytes": 2**20, "kld": [0.1, 0.3, 0.2, 0.2]},
        "fp4": {"error": "no kernel"}}}
    rows = fig.passage_rows(data)
    assert rows[1][0] == "nf4" and rows[1][4] == 75.0 and rows[2][-1] == "no kernel"
    f = fig.passage_figure(data, smooth=2)
    assert [t.name for t in f.data] == ["nf4"]
    assert [round(v, 6) for v in f.data[0].y] == [0.2, 0.25, 0.2]
