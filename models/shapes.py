"""Shapes of well-known models, for what-if calculators (KV cache size, weight memory).

Each entry copies the numbers from the model's published ``config.json`` on the Hugging Face Hub
(the URL is in the comment above it) and the parameter count from its model card. Only the fields
that size the KV cache and the weights are kept: layers, query heads, KV heads, head dim, hidden
size, vocabulary, context length (``max_position_embeddings``) and parameters.

Attention kind follows from the heads (Ainslie et al. 2023, "GQA", arXiv:2305.13245;
Shazeer 2019, "Fast Transformer Decoding: One Write-Head is All You Need", arXiv:1911.02150):
``kv_heads == query heads`` is multi-head attention (MHA), ``kv_heads == 1`` multi-query (MQA),
anything in between grouped-query (GQA).

Sliding-window attention (Beltagy et al. 2020, "Longformer", arXiv:2004.05150; Jiang et al. 2023,
"Mistral 7B", arXiv:2310.06825; Gemma Team 2025, "Gemma 3 Technical Report", arXiv:2503.19786) limits
some layers to the last ``sliding_window`` positions. ``sliding_window`` and ``local_layers`` record it;
:func:`layer_windows` reads the per-layer pattern from a ``transformers`` config (``layer_types``) and
:func:`shape_from_config` builds a shape from a loaded model's config instead of assuming Llama.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelShape:
    """The size-relevant shape of one model.

    Attributes:
        name: display name.
        hub_id: the Hub repository whose ``config.json`` the numbers come from.
        num_layers: decoder layers (``num_hidden_layers`` / ``n_layer``).
        num_heads: query heads per layer.
        num_kv_heads: key/value heads per layer (``num_key_value_heads``; equal to ``num_heads`` for MHA).
        head_dim: dimension of one head (``head_dim`` or ``hidden_size / num_heads``).
        hidden_size: model width ``d_model``.
        vocab_size: tokens in the vocabulary.
        context_length: positions the model was configured for (tokens).
        num_params: parameters (total, including embeddings; for mixture-of-experts, all experts).
        note: caveat shown beside the figures (sliding windows, experts), empty if none.
        sliding_window: tokens a local (sliding-window) layer attends to; 0 when every layer is global.
        local_layers: how many of the ``num_layers`` layers use the sliding window (the rest are global).
    """

    name: str
    hub_id: str
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    context_length: int
    num_params: int
    note: str = ""
    sliding_window: int = 0
    local_layers: int = 0

    @property
    def attention_kind(self) -> str:
        """``"MHA"``, ``"GQA"`` or ``"MQA"`` from the head counts."""
        if self.num_kv_heads == self.num_heads:
            return "MHA"
        return "MQA" if self.num_kv_heads == 1 else "GQA"


_SHAPES = [
    # https://huggingface.co/openai-community/gpt2/blob/main/config.json (n_layer 12, n_head 12, n_embd 768, n_ctx 1024)
    ModelShape("GPT-2 (124M)", "openai-community/gpt2", 12, 12, 12, 64, 768, 50257, 1024, 124_439_808),
    # https://huggingface.co/openai-community/gpt2-xl/blob/main/config.json (n_layer 48, n_head 25, n_embd 1600)
    ModelShape("GPT-2 XL (1.5B)", "openai-community/gpt2-xl", 48, 25, 25, 64, 1600, 50257, 1024, 1_557_611_200),
    # https://huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json
    ModelShape("Llama-2 7B", "meta-llama/Llama-2-7b-hf", 32, 32, 32, 128, 4096, 32000, 4096, 6_738_415_616),
    # https://huggingface.co/meta-llama/Llama-2-13b-hf/blob/main/config.json
    ModelShape("Llama-2 13B", "meta-llama/Llama-2-13b-hf", 40, 40, 40, 128, 5120, 32000, 4096, 13_015_864_320),
    # https://huggingface.co/meta-llama/Llama-2-70b-hf/blob/main/config.json (num_key_value_heads 8)
    ModelShape("Llama-2 70B", "meta-llama/Llama-2-70b-hf", 80, 64, 8, 128, 8192, 32000, 4096, 68_976_648_192),
    # https://huggingface.co/meta-llama/Meta-Llama-3-8B/blob/main/config.json
    ModelShape("Llama-3 8B", "meta-llama/Meta-Llama-3-8B", 32, 32, 8, 128, 4096, 128256, 8192, 8_030_261_248),
    # https://huggingface.co/meta-llama/Meta-Llama-3-70B/blob/main/config.json
    ModelShape("Llama-3 70B", "meta-llama/Meta-Llama-3-70B", 80, 64, 8, 128, 8192, 128256, 8192, 70_553_706_496),
    # https://huggingface.co/meta-llama/Llama-3.1-405B/blob/main/config.json
    ModelShape("Llama-3.1 405B", "meta-llama/Llama-3.1-405B", 126, 128, 8, 128, 16384, 128256, 131072,
               405_853_388_800),
    # https://huggingface.co/mistralai/Mistral-7B-v0.1/blob/main/config.json (sliding_window 4096)
    ModelShape("Mistral 7B", "mistralai/Mistral-7B-v0.1", 32, 32, 8, 128, 4096, 32000, 32768, 7_241_732_096,
               note="v0.1 uses a 4,096-token sliding window on every layer, which caps its cache per sequence",
               sliding_window=4096, local_layers=32),
    # https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json (8 experts, 2 active)
    ModelShape("Mixtral 8x7B", "mistralai/Mixtral-8x7B-v0.1", 32, 32, 8, 128, 4096, 32000, 32768, 46_702_792_704,
               note="mixture of experts: all 46.7B parameters are held in memory, about 12.9B are active per token"),
    # https://huggingface.co/google/gemma-2b/blob/main/config.json (num_key_value_heads 1, head_dim 256)
    ModelShape("Gemma 2B", "google/gemma-2b", 18, 8, 1, 256, 2048, 256000, 8192, 2_506_172_416),
    # https://huggingface.co/google/gemma-7b/blob/main/config.json (head_dim 256)
    ModelShape("Gemma 7B", "google/gemma-7b", 28, 16, 16, 256, 3072, 256000, 8192, 8_537_680_896),
    # https://huggingface.co/google/gemma-2-9b/blob/main/config.json (sliding_window 4096 on every other layer)
    ModelShape("Gemma-2 9B", "google/gemma-2-9b", 42, 16, 8, 256, 3584, 256000, 8192, 9_241_705_984,
               note="half the layers use a 4,096-token sliding window, so beyond 4K those layers stop growing",
               sliding_window=4096, local_layers=21),
    # https://huggingface.co/google/gemma-3-270m/blob/main/config.json (layer_types: 5 sliding per 1 full,
    # sliding_window 512; the embedded model)
    ModelShape("Gemma 3 270M", "google/gemma-3-270m", 18, 4, 1, 256, 640, 262144, 32768, 268_098_176,
               note="15 of 18 layers use a 512-token sliding window: past 512 tokens only the 3 global layers grow",
               sliding_window=512, local_layers=15),
    # https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json
    ModelShape("Qwen2.5 0.5B", "Qwen/Qwen2.5-0.5B", 24, 14, 2, 64, 896, 151936, 32768, 494_032_768),
    # https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json
    ModelShape("Qwen2.5 7B", "Qwen/Qwen2.5-7B", 28, 28, 4, 128, 3584, 152064, 131072, 7_615_616_512),
    # https://huggingface.co/Qwen/Qwen2.5-72B/blob/main/config.json
    ModelShape("Qwen2.5 72B", "Qwen/Qwen2.5-72B", 80, 64, 8, 128, 8192, 152064, 131072, 72_706_203_648),
    # https://huggingface.co/tiiuae/falcon-7b/blob/main/config.json (multi_query true: one KV head)
    ModelShape("Falcon 7B", "tiiuae/falcon-7b", 32, 71, 1, 64, 4544, 65024, 2048, 6_921_720_704),
    # https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct/blob/main/config.json (the embedded model)
    ModelShape("SmolLM2 135M", "HuggingFaceTB/SmolLM2-135M-Instruct", 30, 9, 3, 64, 576, 49152, 8192, 134_515_008),
    # https://huggingface.co/HuggingFaceTB/SmolLM2-1.7B-Instruct/blob/main/config.json
    ModelShape("SmolLM2 1.7B", "HuggingFaceTB/SmolLM2-1.7B-Instruct", 24, 32, 32, 64, 2048, 49152, 8192,
               1_711_376_384),
]

MODEL_SHAPES: dict[str, ModelShape] = {shape.name: shape for shape in _SHAPES}


def get_shape(name: str) -> ModelShape:
    """Return the :class:`ModelShape` called ``name``.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if name in MODEL_SHAPES:
        return MODEL_SHAPES[name]
    raise ValueError(f"Unknown model shape {name!r}. Known shapes: {', '.join(MODEL_SHAPES)}.")


def layer_windows(config) -> tuple[int, ...]:
    """Per layer, the sliding window it attends within (tokens), or 0 for a global (full-attention) layer.

    Reads ``config.layer_types`` (``"sliding_attention"`` / ``"full_attention"``, as transformers writes it
    for Gemma 2/3, Mistral, Qwen2 ...) and ``config.sliding_window``; a config without ``layer_types`` but
    with a ``sliding_window`` (older Mistral) is sliding everywhere; otherwise every layer is global.

    Returns:
        tuple of ``num_hidden_layers`` ints.
    """
    config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    n_layers = int(config.num_hidden_layers)
    window = int(getattr(config, "sliding_window", None) or 0)
    types = getattr(config, "layer_types", None)
    if not window:
        return (0,) * n_layers
    if types is None:
        return (window,) * n_layers
    return tuple(window if kind == "sliding_attention" else 0 for kind in types[:n_layers])


def shape_from_config(name: str, hub_id: str, config, num_params: int, note: str = "") -> ModelShape:
    """A :class:`ModelShape` read from a ``transformers`` config (heads, KV heads, ``head_dim``, windows).

    ``head_dim`` comes from the config when it sets one (Gemma: 256, not hidden / heads = 160), else
    ``hidden_size // num_attention_heads``; ``num_key_value_heads`` defaults to the query heads (MHA).
    """
    config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    heads = int(config.num_attention_heads)
    windows = layer_windows(config)
    local = [w for w in windows if w]
    return ModelShape(name, hub_id, int(config.num_hidden_layers), heads,
                      int(getattr(config, "num_key_value_heads", None) or heads),
                      int(getattr(config, "head_dim", None) or config.hidden_size // heads), int(config.hidden_size),
                      int(config.vocab_size), int(getattr(config, "max_position_embeddings", 0) or 0), int(num_params),
                      note, max(local) if local else 0, len(local))
