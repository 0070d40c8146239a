"""The app launched in-process and driven through gradio_client: /quantize."""
import pytest


def test_quantize_api(client):
    out = client.predict("The capital of France is", "smollm2-135m-instruct", ["int8", "nf4"], api_name="/quantize")
    methods = out["methods"]
    assert list(methods) == ["reference", "int8", "nf4"]
    for row in methods.values():
        assert set(row) >= {"weight_bytes", "kld_mean", "kld_p99", "same_top_pct", "ppl", "ppl_ratio", "text"}
        assert row["error"] is None and row["text"].strip()
    ref, int8, nf4 = methods["reference"], methods["int8"], methods["nf4"]
    assert ref["kld_mean"] == 0.0 and ref["same_top_pct"] == 100.0 and ref["ppl_ratio"] == 1.0
    from explorer.core.engine import get_engine

    model = get_engine("smollm2-135m-instruct").model
    size = next(model.parameters()).element_size()
    assert ref["weight_bytes"] == 134_515_008 * size  # tied embedding counted once (538,060,032 bytes in fp32)
    assert nf4["weight_bytes"] < int8["weight_bytes"] < ref["weight_bytes"]
    assert 0.0 < int8["kld_mean"] <= int8["kld_p99"]
    assert nf4["kld_mean"] > int8["kld_mean"]


@pytest.mark.parametrize("methods,message", [(["int3"], "Unknown quantisation"), (["nf4"], "encoder")])
def test_quantize_api_errors_are_clear(client, methods, message):
    from gradio_client.exceptions import AppError

    model = "all-minilm-l6-v2" if message == "encoder" else "smollm2-135m-instruct"
    with pytest.raises(AppError, match=message):
        client.predict("Hello", model, methods, api_name="/quantize")
