"""The app launched in-process and driven through gradio_client: /tokenize."""
import pytest


def test_tokenize_default_five(client):
    out = client.predict("hello world", None, api_name="/tokenize")
    names = [t["name"] for t in out["tokenizers"]]
    assert names == ["smollm2-135m-instruct", "gemma-3-270m", "cl100k_base", "o200k_base", "all-minilm-l6-v2"]
    by_name = {t["name"]: t for t in out["tokenizers"]}
    assert [t["id"] for t in by_name["cl100k_base"]["tokens"]] == [15339, 1917]
    assert [t["id"] for t in by_name["smollm2-135m-instruct"]["tokens"]] == [28120, 905]
    assert by_name["smollm2-135m-instruct"]["vocab_size"] == 49152
    first = by_name["cl100k_base"]["tokens"][1]
    assert (first["text"], first["start"], first["end"], first["bytes_hex"]) == (" world", 5, 11, "20776f726c64")


def test_tokenize_offsets_are_python_indices(client):
    text = "naïve 🙂 日本"
    out = client.predict(text, ["o200k_base"], api_name="/tokenize")
    tokens = out["tokenizers"][0]["tokens"]
    assert out["tokenizers"][0]["count"] == len(tokens)
    assert tokens[-1]["end"] == len(text)
    assert "".join(text[t["start"]:t["end"]] for t in tokens if not t["start"] < 0).replace(" ", "") != ""


@pytest.mark.parametrize("text,tokenizers,message", [
    ("a\x00b", None, "NUL"),
    ("x", ["unknown-tokenizer"], "Available offline"),
    ("x", ["someone/some-model"], "not reachable"),
])
def test_tokenize_errors_are_clear(client, text, tokenizers, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(text, tokenizers, api_name="/tokenize")


def test_public_api_names(client):
    """Every lens's documented endpoint is reachable by name."""
    from components.registry import tab_specs

    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    specs = tab_specs()
    assert {"tokenize", "attention", "kv_cache", "decode", "quantize", "lora_train", "lora_generate", "probe",
            "attribute"} <= {name for spec in specs for name in spec.api_names}
    for spec in specs:
        for name in spec.api_names:
            assert f"/{name}" in endpoints, f"/{name} missing for tab {spec.key}"
