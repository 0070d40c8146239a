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
