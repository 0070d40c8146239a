"""The tab's handlers on the real model: one run fills every output; the error views read cached copies."""
import pytest


def _quiet(*args, **kwargs):
    return None


def test_run_handler_and_where_the_error_is(smollm2):
    from components.tabs.quantization import tab as tab

    out = tab._run("Say hi.", "smollm2-135m-instruct", ["int8", "nf4"], 4, 6.0, 64, True, "auto", progress=_quiet)
    result, status, rows, main, diff, position, dist, memory, bits, layer, rows_prov, bits_prov = out
    assert rows_prov is result.provenance and rows_prov.kind == "measured"  # the tables' badges
    assert bits_prov.kind == "formula" and "parameters × bits / 8" in bits_prov.source
    assert main.layout.meta["provenance"]["kind"] == "measured"
    assert [m.name for m in result.methods] == ["reference", "int8", "nf4"]
    assert "Q4_1" in tab.INTRO and "smollm2-135m-instruct" in status
    assert [r[0] for r in rows] == ["reference", "int8", "nf4"]
    assert position["maximum"] == len(result.sequence_ids) - 1 and layer["maximum"] == 29
    assert len(main.data) == 2 and diff.count("<b>") == 3
    hist, scatter, heat, outliers = tab._where(result, "smollm2-135m-instruct", "nf4", 3, "mlp.down_proj",
                                               6.0, 64, True, "auto", progress=_quiet)
    assert "model.layers.3.mlp.down_proj" in hist.layout.title.text
    assert heat.data[0].z.shape == (30, 7) and int(outliers.data[0].z.sum()) > 0
    assert {f.layout.meta["provenance"]["kind"] for f in (hist, scatter, heat, outliers)} == {"measured"}


def test_stored_passage_table_loads():
    from components.tabs.quantization.figures import passage_rows
    from explorer.quantization.quality import load_precomputed

    data = load_precomputed()
    if data is None:
        pytest.fail("data/quantization/quality_smollm2.json is missing; run bench/bench_quantization.py --write")
    names = [r[0] for r in passage_rows(data)]
    assert names[0] == "reference" and {"int8", "nf4"} <= set(names)
    assert data["n_tokens"] > 1900 and data["methods"]["reference"]["kld_mean"] == 0.0
    assert len(data["methods"]["nf4"]["kld"]) == data["methods"]["nf4"]["n_tokens"]


def test_where_without_a_run_is_a_readable_error():
    import gradio as gr

    from components.tabs.quantization import tab as tab

    with pytest.raises(gr.Error, match="Run the comparison first"):
        tab._where(None, "smollm2-135m-instruct", "nf4", 0, "self_attn.q_proj", 6.0, 64, True, "auto",
                   progress=_quiet)
