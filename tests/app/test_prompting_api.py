"""The /prompting and /benchmark JSON APIs through gradio_client on the app launched in-process."""
import pytest

MODEL = "smollm2-135m-instruct"


def test_prompting_api_scores_items(client):
    out = client.predict("units", MODEL, "zero_shot", 0, 1, 2, None, api_name="/prompting")
    assert {"accuracy", "interval", "items", "tokens", "notices"} <= set(out)
    assert len(out["items"]) == 2 and all({"prompt", "output", "answer", "correct"} <= set(i) for i in out["items"])
    assert out["accuracy"] == sum(i["correct"] for i in out["items"]) / 2
    assert out["interval"][0] <= out["accuracy"] <= out["interval"][1]
    assert out["chat_template"] is True and "<|im_start|>" in out["items"][0]["prompt"]


@pytest.mark.parametrize("args, message", [
    (("poetry", MODEL, "zero_shot", 0, 1, 2, None), "task must be one of"),
    (("units", MODEL, "guessing", 0, 1, 2, None), "pattern must be one of"),
    (("units", MODEL, "few_shot", 50, 1, 2, None), "k must be between"),
    (("units", MODEL, "zero_shot", 0, 1, 400, None), "more items than"),
])
def test_prompting_api_bad_input(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/prompting")


def test_benchmark_api_and_a_foreign_adapter(client):
    with pytest.raises(Exception, match="adapter: No LoRA run"):
        client.predict("capitals", MODEL, "someone-elses-run", None, api_name="/benchmark")
