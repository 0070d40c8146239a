"""Active and total parameters of real mixture-of-experts models, computed from their published configs.

Numbers copied from each model's ``config.json`` on the Hugging Face Hub (URL beside it). The count is the
formula below, checked in the tests against transformers' ``MixtralForCausalLM`` built on the ``meta`` device
(no memory) from the same config:

per layer: attention ``d (h·hd) + 2 d (kv·hd) + (h·hd) d`` + router ``d E`` + ``E`` experts of ``3 d f`` (gate,
up, down) + two RMSNorm gains ``2 d``; plus the embedding ``V d``, the output matrix ``V d`` (untied) and the
final norm ``d``. A token uses ``top_k`` of the ``E`` experts, so active = total - ``L (E - top_k) 3 d f``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MoeShape:
    """The numbers of a MoE config that size it (names as in ``MixtralConfig``)."""

    name: str
    source: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    num_local_experts: int
    num_experts_per_tok: int
    tie_word_embeddings: bool = False


MOE_SHAPES = (
    MoeShape("Mixtral 8x22B", "https://huggingface.co/mistralai/Mixtral-8x22B-v0.1/blob/main/config.json",
             6144, 16384, 56, 48, 8, 128, 32768, 8, 2),
    MoeShape("Mixtral 8x7B", "https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json",
             4096, 14336, 32, 32, 8, 128, 32000, 8, 2),
)


def moe_counts(shape: MoeShape) -> dict:
    """``{"name", "source", "total_params", "active_params", "experts", "top_k", "formula"}`` of ``shape`` by the
    module formula (all parameters, embeddings included)."""
    d, f, layers = shape.hidden_size, shape.intermediate_size, shape.num_hidden_layers
    q = shape.num_attention_heads * shape.head_dim
    kv = shape.num_key_value_heads * shape.head_dim
    attention = d * q + 2 * d * kv + q * d
    expert = 3 * d * f
    per_layer = attention + d * shape.num_local_experts + shape.num_local_experts * expert + 2 * d
    embeddings = shape.vocab_size * d * (1 if shape.tie_word_embeddings else 2)
    total = layers * per_layer + embeddings + d
    active = total - layers * (shape.num_local_experts - shape.num_experts_per_tok) * expert
    return {"name": shape.name, "source": shape.source, "total_params": total, "active_params": active,
            "experts": shape.num_local_experts, "top_k": shape.num_experts_per_tok,
            "formula": f"{layers} layers x ({shape.num_local_experts} experts of 3·{d}·{f}) + attention, router, "
                       f"norms, embeddings; a token uses {shape.num_experts_per_tok} experts"}


def mixtral_config(shape: MoeShape):
    """A ``transformers.MixtralConfig`` with ``shape``'s numbers (for counting on the ``meta`` device)."""
    from transformers import MixtralConfig

    return MixtralConfig(vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
                         intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_hidden_layers,
                         num_attention_heads=shape.num_attention_heads, num_key_value_heads=shape.num_key_value_heads,
                         head_dim=shape.head_dim, num_local_experts=shape.num_local_experts,
                         num_experts_per_tok=shape.num_experts_per_tok, tie_word_embeddings=shape.tie_word_embeddings)
