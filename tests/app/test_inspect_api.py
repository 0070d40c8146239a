"""The app in-process, driven through gradio_client: /inspect's fields equal what /attention, /kv_cache,
/perplexity, /quantize and /probe report for the same token ids and position; bad input gets clear messages."""
from __future__ import annotations

import pytest

MODEL = "smollm2-135m-instruct"
TEXT = "The capital of France is Paris. Its river is"
POSITION = 4  # " is": the next token is " Paris"


@pytest.fixture(scope="module")
def inspected(client):
    return client.predict(TEXT, MODEL, POSITION, False, api_name="/inspect")


def test_attention_equals_attention_api(client, inspected):
    att = inspected["attention"]
    num_heads = att["num_heads"]
    layer = 5
    patterns = [client.predict(TEXT, MODEL, layer, h, api_name="/attention")["pattern"] for h in range(num_heads)]
    assert att["keys"] == client.predict(TEXT, MODEL, None, None, api_name="/attention")["tokens"][:POSITION + 1]
    mean = [sum(p[POSITION][k] for p in patterns) / num_heads for k in range(POSITION + 1)]
    assert att["mean_over_heads"][layer] == pytest.approx(mean, abs=2e-5)  # /attention rounds to 5 decimals
    for head in att["strongest_heads"]:
        pattern = client.predict(TEXT, MODEL, head["layer"], head["head"], api_name="/attention")["pattern"]
        assert head["weight"] == pytest.approx(pattern[POSITION][head["key"]], abs=2e-5)


def test_prediction_equals_perplexity_api(client, inspected):
    scored = client.predict(TEXT, MODEL, 10, api_name="/perplexity")["tokens"]
    pred = inspected["prediction"]
    assert inspected["token"]["id"] == scored[POSITION]["id"] and inspected["n_tokens"] == len(scored)
    following = scored[POSITION + 1]
    assert [c["id"] for c in pred["top"]] == [c["id"] for c in following["top"]]
    assert [c["p"] for c in pred["top"]] == pytest.approx([c["p"] for c in following["top"]], rel=1e-4)
    assert pred["next_token"]["id"] == following["id"] and pred["next_token"]["rank"] == following["rank"]
    assert pred["next_token"]["logprob"] == pytest.approx(following["logprob"], abs=1e-4)
    assert pred["this_token"]["logprob"] == pytest.approx(scored[POSITION]["logprob"], abs=1e-4)
    assert pred["this_token"]["rank"] == scored[POSITION]["rank"]
    assert inspected["logit_lens"]["final_token"]["id"] == following["top"][0]["id"]
    assert inspected["logit_lens"]["layers"][-1]["top"][0]["id"] == following["top"][0]["id"]


def test_kv_bytes_equal_kv_cache_api(client, inspected):
    kv = client.predict(TEXT, MODEL, 2, api_name="/kv_cache")
    prefill, decode = kv["steps"][0], kv["steps"][1]
    mine = inspected["kv_bytes"]
    assert mine["bytes_per_token_formula"] == kv["bytes_per_token_formula"]
    assert mine["added_bytes"] == decode["measured_bytes"] - prefill["measured_bytes"]  # one token added, measured
    assert mine["cache_bytes_after"] == prefill["measured_bytes"] // prefill["tokens"] * (POSITION + 1)
    assert mine["measured_cache_bytes"] == kv["bytes_per_token_formula"] * inspected["n_tokens"]


def test_quantization_equals_quantize_api(client, inspected):
    out = client.predict(TEXT, MODEL, ["int8", "nf4"], False, api_name="/quantize")
    assert out["positions"]["ids"][POSITION] == inspected["token"]["id"]
    for name in ("int8", "nf4"):
        theirs, mine = out["methods"][name], inspected["quantization"][name]
        assert theirs["error"] is None and mine["error"] is None
        assert mine["kld"] == pytest.approx(theirs["kld"][POSITION], rel=1e-3, abs=2e-6)
        assert mine["same_top"] == theirs["same_top"][POSITION]
        assert mine["weight_bytes"] == theirs["weight_bytes"]


def test_answer_confidence_equals_probe_api(client):
    from explorer.inspect import analysis

    question = "What is the capital of France?"
    a, _ = analysis(question, MODEL, chat_template=True)  # the same result cache the app reads
    assert a.answer_start < a.n, "the model gave an empty answer"
    probe = client.predict(question, MODEL, ["token_confidence", "attribution"], None, 5, api_name="/probe")
    conf = probe["probes"]["token_confidence"]
    for i in range(a.n - a.answer_start):
        out = client.predict(question, MODEL, a.answer_start + i, True, api_name="/inspect")
        assert out["token"]["kind"] == "answer" and out["token"]["text"] == conf["tokens"][i]
        c = out["confidence"]
        assert (c["prob"], c["rank"], c["band"]) == (conf["probs"][i], conf["ranks"][i], conf["bands"][i])
        assert c["attribution"]["segments"] == probe["probes"]["attribution"]["segments"]
        assert c["attribution"]["scores"] == pytest.approx(probe["probes"]["attribution"]["scores"], abs=1e-4)
    question_pos = a.kinds.index("question")
    out = client.predict(question, MODEL, question_pos, True, api_name="/inspect")
    assert out["confidence"] is None and "not of the answer" in out["confidence_reason"]


@pytest.mark.parametrize("model,position,chat,message", [
    (MODEL, 500, False, "out of range"),
    (MODEL, -1, False, "position"),
    ("all-minilm-l6-v2", 0, False, "encoder"),
    (MODEL, 0, True, "chat template"),
])
def test_bad_input_gets_a_clear_message(client, model, position, chat, message):
    from gradio_client.exceptions import AppError

    text = "What is the capital of France?" if chat else TEXT
    with pytest.raises(AppError, match=message):
        client.predict(text, model, position, chat, api_name="/inspect")
