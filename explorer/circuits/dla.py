"""Direct logit attribution: which components wrote a token's logit at one position.

The residual stream at the last layer is a sum of what every component added: the embeddings, each layer's
attention output and MLP output (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits").
The logit of token ``t`` is ``W_U[t] · norm(x)``. With the final RMSNorm's scale frozen at its value on this
position (``s = gain / sqrt(mean(x²) + eps)``, elementwise), ``norm`` is linear, so
``logit = Σ_c W_U[t] · (s ⊙ c)`` exactly: each component ``c``'s direct contribution. On Gemma the blocks add
``post_attention_layernorm(attn)`` and ``post_feedforward_layernorm(mlp)``; those are the components, and a
head's share goes through the post-attention norm with its scale frozen too. A head's output is
``W_O[:, h] z_h`` (its slice of the output projection). On soft-capped models the logit is the one before
soft-capping. ``residual`` = logit − Σ contributions (float rounding only).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.circuits.prompts import answer_id, prompt_ids, token_text
from explorer.circuits.sites import head_dim
from explorer.core.engine import Engine, get_engine
from explorer.core.intervene import decoder, save, trace
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int


@dataclass(frozen=True)
class DLAResult:
    """Direct logit attribution of one token at one position.

    Attributes:
        model: model name. position: the position (0-based). token: the token, quoted. token_id: its id.
        tokens: the prompt's readable tokens.
        names: component names (``embed``, ``L0.attn``, ``L0.mlp``, ...), in residual order.
        contributions: ``(len(names),)`` float64, logits; they sum to ``logit`` up to ``residual``.
        head_names, head_contributions: per head (``L0H0`` ...), logits; each layer's heads sum to its attn.
        logit: the token's logit at ``position`` (before any soft-capping), from the model's own final norm.
        residual: ``logit - Σ contributions``.
        notices: what was assumed. provenance: measured.
    """

    model: str
    position: int
    token: str
    token_id: int
    tokens: tuple[str, ...]
    names: tuple[str, ...]
    contributions: np.ndarray
    head_names: tuple[str, ...]
    head_contributions: np.ndarray
    logit: float
    residual: float
    notices: tuple[str, ...] = ()
    provenance: Provenance | None = field(default=None)

    def to_api(self, decimals: int = 6) -> dict:
        """The ``/dla`` JSON (see :func:`dla_to_api`)."""
        return dla_to_api(self, decimals)


def norm_gain(norm_module, width: int):
    """The elementwise gain of an RMSNorm module (``weight`` for Llama, ``1 + weight`` for Gemma), read by
    applying it to a vector of ones: ``norm(1) = gain / sqrt(1 + eps)``. Returns ``(width,)`` float32."""
    import torch

    eps = float(getattr(norm_module, "variance_epsilon", getattr(norm_module, "eps", 1e-6)))
    ones = torch.ones(width, dtype=torch.float32, device=norm_module.weight.device)
    return norm_module(ones).float() * (1.0 + eps) ** 0.5, eps


def frozen_scale(x, gain, eps: float):
    """``gain / sqrt(mean(x²) + eps)``: the RMSNorm of ``x`` as an elementwise factor. ``x`` ``(d,)`` float32."""
    return gain * (x.float().pow(2).mean() + eps).rsqrt()


def iter_dla(text: str, position: int | None = None, token=None, model: str | None = None,
             chat_template: bool = False, engine: Engine | None = None) -> Iterator[Progress | DLAResult]:
    """Direct logit attribution of ``token`` at ``position`` of ``text``.

    Args:
        text: the prompt.
        position: 0-based position (default: the last).
        token: a string of one token, or an id (default: the model's top prediction at ``position``).
        model: model name; ignored when ``engine`` is given.
        chat_template: wrap the prompt in the chat template.
    Raises:
        ValueError: empty prompt, position out of range (negative included), a token that is not one token or
            outside the vocabulary, an encoder model.
    """
    import torch

    engine = engine or get_engine(model)
    ids = prompt_ids(engine, text, "text", chat_template)
    if position is None or position == "":
        position = len(ids) - 1
    position = check_int(position, "position", minimum=0)
    if position >= len(ids):
        raise ValueError(f"position {position} is out of range: the prompt has positions 0 to {len(ids) - 1}.")
    wanted = None if token is None or token == "" else answer_id(engine, token, "token")
    config = engine.config
    layers, num_heads, d_head = int(config.num_hidden_layers), int(config.num_attention_heads), head_dim(config)
    sandwich = hasattr(engine.model.model.layers[0], "post_feedforward_layernorm")
    yield Progress(0.0, "one traced pass")

    def body(wrapped, store):
        dec = decoder(wrapped)
        store["embed"] = save(dec.embed_tokens.output[0, position])
        for l in range(layers):
            layer = dec.layers[l]
            store[f"z{l}"] = save(layer.self_attn.o_proj.input[0, position])
            store[f"a{l}"] = save(layer.self_attn.output[0][0, position])
            if sandwich:
                store[f"A{l}"] = save(layer.post_attention_layernorm.output[0, position])
            store[f"m{l}"] = save(layer.mlp.output[0, position])
            if sandwich:
                store[f"M{l}"] = save(layer.post_feedforward_layernorm.output[0, position])
        store["final"] = save(dec.norm.input[0, position])
        store["normed"] = save(dec.norm.output[0, position])

    store = trace(engine, ids, body, logits_to_keep=1)
    unembed = engine.model.get_output_embeddings().weight
    with engine.session():
        normed = store["normed"].float()
        tid = int(wanted if wanted is not None else (normed @ unembed.float().T).argmax())
        w_u = unembed[tid].float()
        final_gain, final_eps = norm_gain(engine.model.model.norm, int(config.hidden_size))
        scale = frozen_scale(store["final"], final_gain, final_eps)
        names, parts, head_names, head_parts = ["embed"], [store["embed"].float()], [], []
        for l in range(layers):
            layer = engine.model.model.layers[l]
            z = store[f"z{l}"].float().reshape(num_heads, d_head)
            w_o = layer.self_attn.o_proj.weight.float().reshape(-1, num_heads, d_head)
            heads = torch.einsum("dhk,hk->hd", w_o, z)  # (H, d_model): each head's share of the attention output
            if sandwich:
                gain, eps = norm_gain(layer.post_attention_layernorm, int(config.hidden_size))
                heads = heads * frozen_scale(store[f"a{l}"], gain, eps)
                names += [f"L{l}.attn", f"L{l}.mlp"]
                parts += [store[f"A{l}"].float(), store[f"M{l}"].float()]
            else:
                names += [f"L{l}.attn", f"L{l}.mlp"]
                parts += [store[f"a{l}"].float(), store[f"m{l}"].float()]
            head_names += [f"L{l}H{h}" for h in range(num_heads)]
            head_parts.append(heads)
        contributions = (torch.stack(parts) * scale) @ w_u
        head_contributions = (torch.cat(head_parts) * scale) @ w_u
        logit = float(normed @ w_u)
    contributions = contributions.double().cpu().numpy()
    notices = [] if wanted is not None else [f"token: the model's top prediction at position {position}."]
    if getattr(config, "final_logit_softcapping", None):
        notices.append(f"Logits before soft-capping at {config.final_logit_softcapping}.")
    from explorer.attention.capture import token_label

    yield DLAResult(
        model=engine.name, position=position, token=token_text(engine, tid), token_id=tid,
        tokens=tuple(token_label(engine.tokenizer, t) for t in ids), names=tuple(names), contributions=contributions,
        head_names=tuple(head_names), head_contributions=head_contributions.double().cpu().numpy(), logit=logit,
        residual=float(logit - contributions.sum()), notices=tuple(notices),
        provenance=measured("direct logit attribution: nnsight trace on a shadow tree, final norm scale frozen",
                            model=engine.name))


def run_dla(*args, **kwargs) -> DLAResult:
    """:func:`iter_dla` drained."""
    return run_to_end(iter_dla(*args, **kwargs))


def dla_to_api(result: DLAResult, decimals: int = 6) -> dict:
    """The ``/dla`` JSON: ``{"components": [{"name", "contribution"}], "heads": [{"name", "contribution"}],
    "logit", "residual", "position", "token", "token_id", "tokens", "notices", "model", "provenance"}``."""
    return {"components": [{"name": n, "contribution": round(float(v), decimals)}
                           for n, v in zip(result.names, result.contributions)],
            "heads": [{"name": n, "contribution": round(float(v), decimals)}
                      for n, v in zip(result.head_names, result.head_contributions)],
            "logit": round(result.logit, decimals), "residual": float(result.residual), "position": result.position,
            "token": result.token, "token_id": result.token_id, "tokens": list(result.tokens),
            "notices": list(result.notices), "model": result.model,
            "provenance": result.provenance.to_api() if result.provenance else None}
