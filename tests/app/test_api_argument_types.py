"""Every public JSON API refuses arguments of the wrong type with a message naming the argument (issue 13.4)."""
from __future__ import annotations

import pytest
from gradio_client.exceptions import AppError

MODEL = "smollm2-135m-instruct"
BAD_TEXTS = [["a", "list"], {"a": "dict"}, 42]

# (api_name, argument name, args builder putting the bad value in that argument's place)
CASES = [
    ("/attention", "text", lambda bad: (bad, MODEL, None, None)),
    ("/decode", "text", lambda bad: (bad, MODEL, [{"strategy": "greedy"}], 4)),
    ("/probe", "question", lambda bad: (bad, MODEL, ["sequence"], None, 1)),
    ("/kv_cache", "text", lambda bad: (bad, MODEL, 4)),
    ("/quantize", "text", lambda bad: (bad, MODEL, ["reference"])),
    ("/attribute", "question", lambda bad: (bad, MODEL, "feature_ablation", "word", None)),
    ("/lora_generate", "prompt", lambda bad: ("no-such-run", bad)),
    ("/lora_generate", "run_id", lambda bad: (bad, "Hello")),
    ("/tokenize", "text", lambda bad: (bad, None)),
]


@pytest.mark.parametrize("bad", BAD_TEXTS, ids=["list", "dict", "number"])
@pytest.mark.parametrize("api_name,argument,build", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_a_non_string_text_names_the_argument(client, api_name, argument, build, bad):
    with pytest.raises(AppError) as info:
        client.predict(*build(bad), api_name=api_name)
    message = str(info.value)
    assert f"{argument} must be a string" in message, message
    assert "Something went wrong" not in message


@pytest.mark.parametrize("bad", ["a string", {"prompt": "x"}, 7], ids=["string", "dict", "number"])
def test_lora_train_dataset_must_be_a_list(client, bad):
    with pytest.raises(AppError, match="dataset must be a list") as info:
        client.predict(bad, None, api_name="/lora_train")
    assert "Something went wrong" not in str(info.value)


def test_lora_train_settings_must_be_a_dict(client):
    with pytest.raises(AppError, match="settings must be a dict"):
        client.predict([{"prompt": "Hi", "completion": "Hello"}], ["not", "a", "dict"], api_name="/lora_train")


def test_probe_refuses_a_negative_sample_count(client):
    with pytest.raises(AppError, match="n_samples must be at least 1"):
        client.predict("What is the capital of France?", MODEL, ["sequence"], None, -3, api_name="/probe")


@pytest.mark.parametrize("api_name,args,argument", [
    ("/decode", ("Hi", MODEL, [{"strategy": "greedy"}], "four"), "max_new_tokens"),
    ("/kv_cache", ("Hi", MODEL, "four"), "max_new_tokens"),
    ("/attention", ("Hi", MODEL, "one", None), "layer"),
    ("/decode", ("Hi", MODEL, "greedy please", 4), "strategies"),
    ("/quantize", ("Hi", MODEL, 5), "methods"),
    ("/probe", ("Hi?", MODEL, 5, None, 1), "probes"),
    ("/probe", ("Hi?", MODEL, ["sequence"], 5, 1), "context"),
    ("/attribute", ("Hi?", MODEL, 5, "word", None), "method"),
])
def test_other_arguments_are_named(client, api_name, args, argument):
    with pytest.raises(AppError) as info:
        client.predict(*args, api_name=api_name)
    assert argument in str(info.value) and "Something went wrong" not in str(info.value), str(info.value)
