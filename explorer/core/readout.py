"""Read-outs: a hidden state turned into next-token logits the way the model's own last layer does it.

:func:`unembed` is the one logit lens (nostalgebraist 2020, "interpreting GPT: the logit lens"): the final
norm, the output head (``lm_head``, tied to the embeddings in SmolLM2 and Gemma 3) and, where the config has
one, the final-logit soft-capping ``cap * tanh(logits / cap)`` that Gemma 2 applies in its forward
(``final_logit_softcapping``, Gemma Team 2024; ``None`` in Gemma 3's config, so nothing changes there).
Every lens that reads a layer's prediction (hallucination's logit lens, the inspector's) calls it, so two
lenses can never disagree on what a layer "predicts".

``transformers`` returns ``num_layers + 1`` hidden states (``output_hidden_states=True``): index 0 is the
embedding output and the last one has already passed the final norm. So the norm is applied to every index
but the last, and the last index read out equals the model's own logits.
"""
from __future__ import annotations

from typing import Any


def final_norm_and_head(model) -> tuple[Any, Any]:
    """The model's final norm and output layer (``model.model.norm`` and ``lm_head`` for Llama/Gemma).

    Raises:
        ValueError: the architecture exposes neither (the message says the logit lens needs them).
    """
    base = getattr(model, "model", None) or getattr(model, "transformer", None)
    norm = getattr(base, "norm", None) or getattr(base, "ln_f", None)
    head = model.get_output_embeddings()
    if norm is None or head is None:
        raise ValueError("The logit lens needs a model with a final norm and an output layer (Llama-like).")
    return norm, head


def softcap_of(config) -> float | None:
    """The config's ``final_logit_softcapping`` (text config for multimodal ones), or None when it has none."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    cap = getattr(text, "final_logit_softcapping", None)
    return float(cap) if cap else None


def unembed(engine, hidden, layer: int, model=None):
    """Logits that the hidden state ``hidden`` of ``layer`` predicts, as the model's last layer would read it.

    Args:
        engine: the :class:`explorer.core.engine.Engine` whose model's weights read the state.
        hidden: ``torch.Tensor`` ``(..., d_model)``, a slice of ``output.hidden_states[layer]``.
        layer: index into ``hidden_states`` (0 = embeddings … ``num_layers`` = after the final norm);
            negative counts from the end (-1 is the last). The final norm is applied unless it is the last.
        model: the module tree that produced ``hidden`` (default: the engine's shared model).
    Returns:
        ``torch.Tensor`` ``(..., vocab)`` float32 logits on ``hidden``'s device, soft-capped where the config
        says so (for the last layer these equal the model's own logits).
    Raises:
        ValueError: ``layer`` outside ``-(num_layers + 1) … num_layers``, or an architecture without a final
            norm and output head.
    """
    import torch

    model = model or engine.model
    num_layers = int(model.config.get_text_config().num_hidden_layers)
    if not -(num_layers + 1) <= int(layer) <= num_layers:
        raise ValueError(f"layer must be in 0 … {num_layers} (hidden_states index), got {layer}")
    last = int(layer) % (num_layers + 1) == num_layers
    norm, head = final_norm_and_head(model)
    cap = softcap_of(model.config)
    with engine.session():  # the final norm and output layer are shared weights: one short locked pass
        logits = head(hidden if last else norm(hidden)).float()
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
