"""The tiny pretraining model: transformers' ``LlamaForCausalLM`` from a ``LlamaConfig`` with random weights.

Settings are validated and capped here (:func:`settings_from_dict`); the loss is next-token cross-entropy
computed from the logits (:func:`lm_loss`, tested equal to transformers' own ``labels=`` loss); samples are
drawn with a private ``torch.Generator`` (:func:`sample_text`), never the global RNG.

Parameter counts follow Kaplan et al. 2020 / Hoffmann et al. 2022 (Chinchilla): N counts the non-embedding
parameters; the (tied) embedding matrix ``vocab x d_model`` is stated beside it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from explorer.core.config import get_limits

SETTING_KEYS = ("steps", "seed", "layers", "d_model", "heads", "seq_len", "batch_size", "lr", "warmup",
                "weight_decay", "clip", "dropout")


@dataclass(frozen=True)
class PretrainSettings:
    """One pretraining run's hyperparameters (the ``/pretrain`` settings keys).

    Attributes:
        steps: optimiser steps. seed: seeds the weights, the batch order and the samples (private generators).
        layers, d_model, heads: decoder layers, hidden size, attention heads (``d_model % heads == 0``).
        seq_len: tokens per training sequence. batch_size: sequences per step.
        lr: peak learning rate of AdamW (linear warmup over ``warmup`` steps, then cosine decay to 10 %).
        weight_decay: AdamW decoupled weight decay on matrices (not on norms). clip: gradient-norm clipping
            threshold (0 = off). dropout: attention and residual dropout probability.
        eval_every: steps between validation losses. sample_every: steps between sample generations.
    """

    steps: int = 60
    seed: int = 0
    layers: int = 2
    d_model: int = 64
    heads: int = 4
    seq_len: int = 64
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 10
    weight_decay: float = 0.1
    clip: float = 1.0
    dropout: float = 0.0
    eval_every: int = 10
    sample_every: int = 20

    def as_dict(self) -> dict:
        """The settings as a plain dict."""
        return dataclasses.asdict(self)


def _caps() -> dict:
    limits = get_limits()
    return {"steps": limits.max_pretrain_steps, "layers": limits.max_pretrain_layers,
            "d_model": limits.max_pretrain_d_model, "heads": 16, "seq_len": limits.max_pretrain_seq_len,
            "batch_size": limits.max_pretrain_batch_size, "warmup": limits.max_pretrain_steps}


def settings_from_dict(values: dict | None, base: PretrainSettings | None = None) -> tuple[PretrainSettings, list[str]]:
    """Validated settings from ``values`` (missing keys keep ``base``, default :class:`PretrainSettings`) and
    the notices of values that were capped.

    Raises:
        ValueError: an unknown key, a non-number, a size below 1, heads not dividing d_model, a learning rate
            that is not finite or <= 0, weight decay / clip < 0, dropout outside [0, 1).
    """
    base = base or PretrainSettings()
    values = dict(values or {})
    unknown = sorted(set(values) - set(SETTING_KEYS) - {"eval_every", "sample_every"})
    if unknown:
        raise ValueError(f"settings: unknown key(s) {unknown}; allowed: {list(SETTING_KEYS)}")
    out, notices, caps = base.as_dict(), [], _caps()
    for key, value in values.items():
        if value is None:
            continue
        kind = type(out[key])
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number (got {value!r})") from None
        if kind is int:
            if not math.isfinite(number) or number != int(number):
                raise ValueError(f"{key} must be a whole number (got {value!r})")
            number = int(number)
        out[key] = number
    for key in ("steps", "layers", "d_model", "heads", "seq_len", "batch_size", "eval_every", "sample_every"):
        if out[key] < 1:
            raise ValueError(f"{key} must be at least 1 (got {out[key]})")
    for key, cap in caps.items():
        if out[key] > cap:
            notices.append(f"{key} {out[key]} is over the cap ({cap}); capped to {cap}.")
            out[key] = cap
    if out["warmup"] < 0:
        raise ValueError(f"warmup must be >= 0 (got {out['warmup']})")
    if out["d_model"] % out["heads"]:
        raise ValueError(f"heads ({out['heads']}) must divide d_model ({out['d_model']})")
    if (out["d_model"] // out["heads"]) % 2:
        raise ValueError(f"d_model / heads = {out['d_model'] // out['heads']} must be even (RoPE rotates pairs)")
    if not math.isfinite(out["lr"]) or out["lr"] <= 0:
        raise ValueError(f"lr must be a finite number > 0 (got {out['lr']})")
    for key in ("weight_decay", "clip"):
        if not math.isfinite(out[key]) or out[key] < 0:
            raise ValueError(f"{key} must be a finite number >= 0 (got {out[key]})")
    if not 0 <= out["dropout"] < 1:
        raise ValueError(f"dropout must be in [0, 1) (got {out['dropout']})")
    return PretrainSettings(**out), notices


def llama_config(s: PretrainSettings, vocab_size: int):
    """The ``LlamaConfig`` of settings ``s``: MLP width 4·d_model, tied embeddings, RoPE, RMSNorm."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=s.d_model, intermediate_size=4 * s.d_model,
                       num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.heads,
                       max_position_embeddings=max(s.seq_len, 256), attention_dropout=s.dropout,
                       tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0,
                       initializer_range=0.02)


def build_model(s: PretrainSettings, vocab_size: int):
    """A ``LlamaForCausalLM`` with random weights drawn from a private generator seeded by ``s.seed`` (float32,
    CPU, sdpa attention). With ``s.dropout > 0`` a residual dropout follows each attention and MLP block
    (Llama itself has only attention dropout)."""
    import torch
    from transformers import LlamaForCausalLM

    devices = []
    with torch.random.fork_rng(devices=devices):  # weights from the seed, global RNG state restored after
        torch.manual_seed(s.seed)
        model = LlamaForCausalLM(llama_config(s, vocab_size))
    # tie explicitly: transformers ties in post_init, but a shared model loading in another thread at the same
    # moment can leave a freshly built model untied (seen in the app at page load)
    model.lm_head.weight = model.model.embed_tokens.weight
    if s.dropout > 0:
        for layer in model.model.layers:
            for block in (layer.self_attn, layer.mlp):
                block.register_forward_hook(_residual_dropout(s.dropout))
    return model


def _residual_dropout(p: float):
    import torch.nn.functional as F

    def hook(module, args, output):
        if not module.training:
            return output
        if isinstance(output, tuple):
            return (F.dropout(output[0], p, True),) + tuple(output[1:])
        return F.dropout(output, p, True)
    return hook


def count_parameters(model) -> tuple[int, int]:
    """``(non_embedding N, embedding)`` parameter counts; the tied output matrix is counted once."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    return total - embedding, embedding


def lm_loss(logits, input_ids):
    """Mean next-token cross-entropy (nats/token): logits ``(batch, seq, vocab)`` at position t scored on the
    token at t+1, ``input_ids (batch, seq)``; the formula of transformers' ``ForCausalLMLoss``."""
    import torch.nn.functional as F

    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), input_ids[:, 1:].reshape(-1))


def sample_text(model, prompt_ids: list[int], n_tokens: int, generator, temperature: float = 1.0) -> list[int]:
    """Up to ``n_tokens`` sampled after ``prompt_ids`` (with the KV cache; stops at the model's position limit),
    drawn from the softmax at ``temperature`` with ``generator`` (a private ``torch.Generator``); returns the new
    ids."""
    import torch

    room = model.config.max_position_embeddings - len(prompt_ids)
    new: list[int] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([prompt_ids], dtype=torch.long), use_cache=True)
            while len(new) < min(n_tokens, room):
                logits = out.logits[0, -1].float() / temperature
                nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
                new.append(int(nxt))
                out = model(input_ids=nxt.view(1, 1), past_key_values=out.past_key_values, use_cache=True)
    finally:
        model.train(was_training)
    return new
