"""Attention capture: the attention probabilities of every layer and query head in one forward pass.

``run(text, model)`` tokenizes a prompt, switches the shared model to eager attention only for the
capture (SDPA, which returns no weights, stays the default), runs one forward pass with
``output_attentions=True`` under the model's lock, and returns an :class:`AttentionResult` holding

- ``attn``: ``(num_layers, num_heads, q_len, k_len)`` softmax probabilities (rows sum to 1),
- ``kv_head_of_head``: which key/value head each query head reads (grouped-query attention),
- per-head statistics (entropy, attention to the first token, mean attended distance, previous-token share).

Papers followed: Vaswani et al. 2017 ("Attention Is All You Need", scaled dot-product attention);
Ainslie et al. 2023 ("GQA", query heads grouped over shared key/value heads; MQA when there is one);
Clark et al. 2019 ("What Does BERT Look At?", per-head statistics such as entropy and previous-token heads);
Xiao et al. 2023 ("Efficient Streaming Language Models with Attention Sinks", the first-token sink).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

from explorer.attention.stats import head_stats
from explorer.core.config import get_limits
from explorer.attention.windows import attention_cap
from explorer.core.engine import Engine, get_engine
from models.shapes import layer_windows
from explorer.core.progress import Progress
from explorer.core.provenance import Provenance, measured
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))


@dataclass(frozen=True)
class AttentionResult:
    """The attention of one prompt through every layer and query head.

    Attributes:
        model: model name the capture ran on.
        tokens: readable token strings, length ``q_len``.
        token_ids: token ids, length ``q_len``.
        attn: ``np.ndarray`` of shape ``(num_layers, num_heads, q_len, k_len)``; each row is a softmax
            distribution over keys (sums to 1); float32 straight from the capture (float16 after :meth:`compact`).
        kv_head_of_head: ``np.ndarray`` of shape ``(num_heads,)``, int: the key/value head query head ``h`` reads.
        num_kv_heads: number of key/value heads (= num_heads for MHA, 1 for MQA).
        causal: True for decoders (the upper triangle is 0), False for bidirectional encoders.
        stats: name -> ``np.ndarray`` ``(num_layers, num_heads)`` per-head statistics (see ``attention_stats.STATS``).
        truncated_from: original prompt length in tokens when it was cut to the cap, else ``None``.
        layer_windows: per layer, its sliding window in tokens (0 = global attention; all 0 for Llama-style models).
        provenance: measured on the model.
    """

    model: str
    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    attn: np.ndarray
    kv_head_of_head: np.ndarray
    num_kv_heads: int
    causal: bool
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    truncated_from: int | None = None
    layer_windows: tuple[int, ...] = ()
    provenance: Provenance | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(num_layers, num_heads, q_len, k_len)``."""
        return tuple(int(n) for n in self.attn.shape)

    @property
    def num_layers(self) -> int:
        """Number of transformer layers captured."""
        return self.shape[0]

    @property
    def num_heads(self) -> int:
        """Number of query heads per layer."""
        return self.shape[1]

    def pattern(self, layer: int, head: int) -> np.ndarray:
        """One head's probabilities, shape ``(q_len, k_len)``, float32.

        Raises:
            ValueError: ``layer`` or ``head`` out of range.
        """
        check_layer_head(self, layer, head)
        return np.asarray(self.attn[layer, head], dtype=np.float32)

    def compact(self) -> "AttentionResult":
        """A copy whose ``attn`` is float16 (half the memory) for keeping in a UI session."""
        return replace(self, attn=self.attn.astype(np.float16))

    def to_api(self, layer: int | None = None, head: int | None = None, decimals: int = 5) -> dict:
        """The JSON answer of ``/attention``.

        Returns:
            ``{"tokens": [str], "shape": [L, H, Q, K], "kv_head_of_head": [int] (H),
            "head_stats": {name: L×H nested lists}, "pattern": Q×K nested lists for (layer, head) or None,
            "causal": bool, "model": str}``; floats rounded to ``decimals``.
        Raises:
            ValueError: ``layer``/``head`` out of range, or only one of them given.
        """
        check_layer_head(self, layer, head)
        if (layer is None) != (head is None):
            raise ValueError("Give both a layer and a head to get one pattern, or neither for the overview only.")
        pattern = None if layer is None else np.round(self.pattern(int(layer), int(head)), decimals).tolist()
        return {
            "model": self.model,
            "tokens": list(self.tokens),
            "shape": list(self.shape),
            "kv_head_of_head": [int(k) for k in self.kv_head_of_head],
            "causal": bool(self.causal),
            "head_stats": {name: np.round(values, decimals).tolist() for name, values in self.stats.items()},
            "pattern": pattern,
            "provenance": self.provenance.to_api() if self.provenance else None,
        }


def check_layer_head(result: AttentionResult, layer: int | None, head: int | None) -> None:
    """Raise ``ValueError`` with a readable message when ``layer``/``head`` are outside the captured model."""
    if layer is not None and not 0 <= int(layer) < result.num_layers:
        raise ValueError(f"Layer {layer} does not exist: this model has layers 0 to {result.num_layers - 1}.")
    if head is not None and not 0 <= int(head) < result.num_heads:
        raise ValueError(f"Head {head} does not exist: this model has heads 0 to {result.num_heads - 1}.")


def kv_head_mapping(config) -> np.ndarray:
    """Which key/value head each query head reads, from a ``transformers`` config.

    ``transformers`` expands key/value heads with ``repeat_kv``, which repeats each KV head
    ``num_heads // num_kv_heads`` times in a row, so query head ``h`` reads KV head
    ``h // (num_heads // num_kv_heads)`` (Ainslie et al. 2023). SmolLM2 (9 query / 3 KV heads) gives
    ``[0, 0, 0, 1, 1, 1, 2, 2, 2]``; MHA gives ``[0, 1, ..., H-1]``; MQA gives all zeros.

    Returns:
        ``np.ndarray`` shape ``(num_heads,)``, int64.
    Raises:
        ValueError: the config's head counts do not divide.
    """
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    num_heads = int(config.num_attention_heads)
    num_kv = int(getattr(config, "num_key_value_heads", None) or num_heads)
    if num_kv <= 0 or num_heads % num_kv:
        raise ValueError(f"{num_heads} query heads cannot be grouped over {num_kv} key/value heads.")
    return np.arange(num_heads, dtype=np.int64) // (num_heads // num_kv)


def token_label(tokenizer, token_id: int) -> str:
    """A readable string for one token: its decoded text with newlines and tabs made visible."""
    text = tokenizer.decode([int(token_id)])
    if text == "":
        text = str(tokenizer.convert_ids_to_tokens(int(token_id)))
    return text.replace("\n", "⏎").replace("\t", "⇥")


def prompt_ids(engine: Engine, text: str, chat: bool = False, truncate: bool = False,
               max_tokens: int | None = None) -> tuple[list[int], int | None]:
    """Token ids of ``text`` for an attention view, checked against the attention cap.

    Args:
        engine: the model's engine.
        text: the prompt.
        chat: wrap the prompt in the model's chat template (decoders only).
        truncate: cut a prompt longer than the cap to its first tokens instead of raising (the tokenizer's
            own truncation, so an encoder keeps its closing special token).
        max_tokens: the cap (default ``get_limits().max_attention_tokens``, 512 tokens; never more than the
            model's context length).
    Returns:
        ``(ids, truncated_from)``; ``truncated_from`` is the original length when cut, else ``None``.
    Raises:
        ValueError: empty prompt; longer than the cap (unless ``truncate``).
    """
    if not text or not text.strip():
        raise ValueError("Type a prompt first: the attention view needs at least one token.")
    cap = min(int(max_tokens or get_limits().max_attention_tokens), engine.context_length())
    if chat and engine.is_causal:
        ids = engine.chat_ids(text, max_tokens=max(cap, get_limits().max_prompt_tokens))
    else:
        ids = list(engine.tokenizer(text, add_special_tokens=True)["input_ids"])
    if len(ids) <= cap:
        return ids, None
    if not truncate:
        raise ValueError(f"The prompt is {len(ids):,} tokens long; attention views accept at most {cap:,} tokens "
                         f"(max_attention_tokens), because every head stores a {cap}×{cap} pattern. "
                         "Shorten the prompt.")
    if chat and engine.is_causal:
        return ids[:cap], len(ids)
    cut = list(engine.tokenizer(text, add_special_tokens=True, truncation=True, max_length=cap)["input_ids"])
    return cut, len(ids)


def capture(engine: Engine, ids: list[int], last_logits_only: bool = False) -> tuple[np.ndarray, object]:
    """One forward pass with eager attention; returns the probabilities and the model output.

    ``Engine.forward(eager=True)``: eager attention is switched on only inside the model's lock and switched
    back in ``finally``; no hook is left on the shared model.

    Args:
        engine: the model's engine.
        ids: token ids, length ``q_len``.
        last_logits_only: decoders compute logits for the last position only (``logits_to_keep=1``; Gemma's
            logits are 1 MiB per position in fp32).
    Returns:
        ``(attn, output)``: ``attn`` float32 ``(num_layers, num_heads, q_len, k_len)``; ``output`` the
        model's output (logits for decoders).
    """
    import torch

    input_ids = engine.as_input(ids)
    kwargs = ({"logits_to_keep": 1} if last_logits_only else {}) if engine.is_causal else {
        "attention_mask": torch.ones_like(input_ids)}
    output = engine.forward(input_ids, eager=True, output_attentions=True, use_cache=False, **kwargs)
    attn = np.empty((len(output.attentions),) + tuple(output.attentions[0].shape[1:]), dtype=np.float32)
    for layer, probs in enumerate(output.attentions):  # filled in place: no second full-size copy
        attn[layer] = probs[0].float().cpu().numpy()
    return attn, output


def run(text: str, model: str | None = None, chat: bool = False, truncate: bool = False,
        engine: Engine | None = None) -> AttentionResult:
    """Capture the attention of every layer and query head for ``text``.

    Args:
        text: the prompt (plain text; ``chat=True`` wraps it in the chat template).
        model: model name (default: the embedded SmolLM2); ignored when ``engine`` is given.
        chat: use the chat template (decoders only).
        truncate: cut prompts past ``max_attention_tokens`` instead of raising (``truncated_from`` records it).
        engine: an explicit engine (tests pass tiny models).
    Returns:
        :class:`AttentionResult` with ``attn`` of shape ``(num_layers, num_heads, q_len, k_len)``.
    Raises:
        ValueError: empty prompt, prompt past the cap (unless ``truncate``), unknown model.
    """
    engine = engine or get_engine(model)
    ids, truncated_from = prompt_ids(engine, text, chat=chat, truncate=truncate, max_tokens=attention_cap(engine))
    attn, _ = capture(engine, ids, last_logits_only=True)
    kv = kv_head_mapping(engine.config)
    return AttentionResult(
        model=engine.name, tokens=tuple(token_label(engine.tokenizer, i) for i in ids), token_ids=tuple(ids),
        attn=attn, kv_head_of_head=kv, num_kv_heads=int(kv.max()) + 1, causal=engine.is_causal,
        stats=head_stats(attn), truncated_from=truncated_from,
        layer_windows=layer_windows(engine.config) if engine.is_causal else (),
        provenance=measured("Engine.forward with eager attention, output_attentions=True", model=engine.name),
    )


def iter_run(text: str, model: str | None = None, chat: bool = False, truncate: bool = False,
             engine: Engine | None = None) -> Iterator[Progress | AttentionResult]:
    """The lens contract: one :class:`Progress` before the capture pass, then the :class:`AttentionResult`.

    Raises:
        ValueError: see :func:`run`.
    """
    yield Progress(0.0, "capturing attention (one forward pass)")
    yield run(text, model, chat, truncate, engine)


def api_payload(result: AttentionResult, layer: int | None = None, head: int | None = None,
                decimals: int = 5) -> dict:
    """The ``/attention`` JSON, positional view arguments (the older name): ``result.to_api(layer=..., head=...)``."""
    return result.to_api(layer=layer, head=head, decimals=decimals)
