"""The "Compare with" plumbing: which second model runs, and the base-model notice."""
import pytest

from components.compare import NONE, compare_choices, label, model_notice, second_model


def test_choices_are_none_then_the_embedded_decoders():
    assert compare_choices() == [NONE, "smollm2-135m-instruct", "gemma-3-270m"]


@pytest.mark.parametrize("model,compare,expected", [
    ("smollm2-135m-instruct", NONE, None),
    ("smollm2-135m-instruct", "", None),
    ("smollm2-135m-instruct", None, None),
    ("smollm2-135m-instruct", "smollm2-135m-instruct", None),
    ("smollm2-135m-instruct", "gemma-3-270m", "gemma-3-270m"),
    ("gemma-3-270m", "smollm2-135m-instruct", "smollm2-135m-instruct"),
])
def test_second_model(model, compare, expected):
    assert second_model(model, compare) == expected


def test_second_model_refuses_encoders_and_nonsense():
    with pytest.raises(ValueError, match="encoder"):
        second_model("smollm2-135m-instruct", "all-minilm-l6-v2")
    with pytest.raises(ValueError, match="Unknown model"):
        second_model("smollm2-135m-instruct", "not a model")


def test_base_model_notice_explains_plain_completion():
    assert model_notice("smollm2-135m-instruct") == ""
    notice = model_notice("smollm2-135m-instruct", "gemma-3-270m")
    assert "gemma-3-270m" in notice and "base" in notice and "chat template" in notice
    assert "instructions" in notice
    assert label("gemma-3-270m") == "gemma-3-270m (base)" and label("smollm2-135m-instruct").endswith("(instruct)")


def _noop(*args, **kwargs):
    return None


def test_tab_handlers_run_the_second_model(smollm2, gemma):
    """Decoding and Hallucination handlers with "Compare with": the second model's columns / answer appear."""
    from components.tabs.decoding import tab as decoding_tab
    from components.tabs.hallucination import tab as hallucination_tab

    rows = [decoding_tab.preset_row(name) for name in decoding_tab.DEFAULT_PRESETS][:1]
    html = decoding_tab._compare_run("The capital of France is", "smollm2-135m-instruct", "gemma-3-270m", rows, 3,
                                     progress=_noop)
    assert "gemma-3-270m (base)" in html and "base" in html
    assert "Pick a second model" in decoding_tab._compare_run("x", "smollm2-135m-instruct", NONE, rows, 3,
                                                              progress=_noop)
    outputs = list(hallucination_tab.run_probes("What is the capital of France?", "smollm2-135m-instruct",
                                                ["sequence"], 2, 0, None, "probability", "gemma-3-270m",
                                                progress=_noop))
    summary = outputs[-1][1]
    assert summary.count("**Answer:**") == 2 and "Compare with gemma-3-270m (base)" in summary
