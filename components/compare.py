"""The "Compare with" picker and the plumbing every tab uses to show a second model beside the first.

The JSON APIs keep one ``model`` argument (a script compares by calling twice); only the page has a
second picker, ``ctx.compare_model``. A tab that shows the comparison adds ``ctx.compare_model`` to its
handler's inputs (only when it is not ``None``, so a tab also builds without it), calls :func:`second_model`
to learn whether (and which) second model to run, and draws the second result with its own figure functions,
labelled with :func:`label`. :func:`model_notice` says when a model is a pretrained base model (no chat
template: plain completion), and :func:`wire_notice` keeps that notice under the pickers up to date.
"""
from __future__ import annotations

import gradio as gr

from models.registry import EMBEDDED, causal_names, resolve

NONE = "(none)"


def compare_choices() -> list[str]:
    """The picker's choices: no comparison, then the embedded decoder models."""
    return [NONE] + causal_names()


def build_picker() -> gr.Dropdown:
    """The "Compare with" dropdown placed beside the model picker (``elem_id="compare-model"``)."""
    return gr.Dropdown(label="Compare with", choices=compare_choices(), value=NONE, scale=1,
                       elem_id="compare-model", allow_custom_value=True,
                       info="A second model run on the same prompt where the contrast teaches something.")


def second_model(model: str | None, compare: str | None) -> str | None:
    """The model to run beside ``model``, or ``None`` when no comparison is asked for (or it is the same model).

    Raises:
        ValueError: ``compare`` is neither an embedded model nor a valid Hub id (message from the registry).
    """
    compare = (compare or "").strip()
    if not compare or compare == NONE:
        return None
    spec = resolve(compare)
    if model and resolve(model).name == spec.name:
        return None
    if spec.kind != "causal-lm":
        raise ValueError(f"Compare with: {spec.name} is an encoder; pick a decoder such as {', '.join(causal_names())}.")
    return spec.name


def is_base_model(model: str | None) -> bool:
    """True for a pretrained base model (no instruction tuning and no chat template), e.g. ``gemma-3-270m``."""
    try:
        return bool(resolve(model or "").base_model)
    except ValueError:
        return False


def model_notice(model: str | None, compare: str | None = None) -> str:
    """Markdown shown under the pickers: why a base model gets plain text instead of a chat template."""
    names = [name for name in (model, compare) if name and name != NONE and is_base_model(name)]
    if not names:
        return ""
    listed = " and ".join(f"**{name}**" for name in dict.fromkeys(names))
    return (f"ℹ {listed} is a pretrained **base** model: it has no chat template, so every tab feeds it the prompt as "
            "plain text to continue. A base model completes text (Gemma 3 270M continues \"The capital of France is\" "
            "with \" the capital of the country of France. It is the largest city...\") but "
            "was never tuned to follow instructions or answer questions, so chat-style prompts get a continuation, "
            "not an answer.")


def label(model: str) -> str:
    """A short label for a model in titles: its name plus "(base)" or "(instruct)" for embedded decoders."""
    spec = EMBEDDED.get(model)
    if spec is None or spec.kind != "causal-lm":
        return model
    return f"{model} ({'base' if spec.base_model else 'instruct'})"


def wire_notice(ctx, notice: gr.Markdown) -> None:
    """Update ``notice`` whenever either picker changes (and when the page loads)."""
    inputs = [ctx.model, ctx.compare_model]
    for picker in inputs:
        picker.change(model_notice, inputs, notice, api_visibility="private", show_progress="hidden")
