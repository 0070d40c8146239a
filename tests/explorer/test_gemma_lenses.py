"""The lenses on Gemma 3 270M: attention with local and global layers, the windowed KV cache, its tokenizer.

References are independent of our code paths: transformers' ``output_attentions``, the shapes of the
tensors the ``DynamicCache`` really holds, a KV formula written out here, and the text itself for tokens.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import attention, kv_cache, tokens
from explorer.attention.windows import attention_cap, beyond_window, layer_kinds
from explorer.kv_cache.whatif import calculate

MIXED = "Family 👩‍👩‍👧‍👦, flag 🇫🇷, 日本語のテキスト, مرحبا بالعالم, café vs cafe\u0301,\ttab\nnew line\r\nend"


def _long_text(gemma, n_tokens: int) -> str:
    """A plain prompt of at least ``n_tokens`` Gemma tokens (numbers, so the length is predictable)."""
    text = " ".join(str(i) for i in range(n_tokens // 3))  # Gemma splits numbers into digits: ~3.5 tokens each
    assert n_tokens <= len(gemma.encode(text)) <= 2 * n_tokens
    return text


def test_layer_kinds_come_from_the_config(gemma, smollm2):
    kinds = layer_kinds(gemma.config)
    assert kinds.count("local") == 15 and [i for i, k in enumerate(kinds) if k == "global"] == [5, 11, 17]
    assert set(layer_kinds(smollm2.config)) == {"global"}
    assert attention_cap(gemma) == 640 and attention_cap(smollm2) == 512


def test_attention_capture_equals_output_attentions_past_the_window(gemma):
    """On a prompt longer than the 512-token window: the capture equals transformers' eager
    ``output_attentions``; local layers put exactly zero weight on keys 512 or more positions back,
    global layers do not."""
    result = attention.run(_long_text(gemma, 700), engine=gemma, truncate=True)  # cut to the raised cap
    q_len = len(result.tokens)
    assert q_len == 640 and result.truncated_from > 640
    assert result.shape == (18, 4, q_len, q_len) and result.num_kv_heads == 1
    assert result.layer_windows == tuple(0 if (i + 1) % 6 == 0 else 512 for i in range(18))
    ids = torch.tensor([list(result.token_ids)])
    with gemma.session(), gemma.eager_attention():
        out = gemma.model(input_ids=ids, output_attentions=True, use_cache=False, logits_to_keep=1)
    for layer, reference in enumerate(out.attentions):
        np.testing.assert_allclose(result.attn[layer], reference[0].numpy(), atol=1e-6)
    far = beyond_window(result.attn, result.layer_windows)
    local = [i for i, w in enumerate(result.layer_windows) if w]
    assert np.all(far[local] == 0.0)
    assert np.all(far[[5, 11, 17]] > 0.0)
    rows = result.attn.sum(axis=-1)
    np.testing.assert_allclose(rows, 1.0, atol=1e-4)


def test_kv_bytes_equal_the_windowed_formula_past_600_tokens(gemma):
    """Measured bytes of the real DynamicCache equal sum over layers of 2 x kv_heads x head_dim x 4 B x
    (min(tokens, 511) local, tokens global) at every step, checked past 600 tokens."""
    ids = gemma.encode(_long_text(gemma, 600))
    steps = list(kv_cache.iter_growth(gemma, ids, 3))
    assert steps[0].tokens == len(ids) >= 600
    for step in steps:
        expected = sum(2 * 1 * 256 * 4 * (min(step.tokens, 511) if (i + 1) % 6 else step.tokens) for i in range(18))
        assert step.measured_bytes == step.formula_bytes == expected
    # the flattening is real: local layers hold 511 keys, global ones every token
    from transformers import DynamicCache

    cache = DynamicCache(config=gemma.config)
    gemma.forward(ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    lengths = [layer.keys.shape[-2] for layer in cache.layers]
    assert lengths == [len(ids) if (i + 1) % 6 == 0 else 511 for i in range(18)]


def test_short_prompt_grows_like_the_plain_formula(gemma):
    result = kv_cache.run("The capital of France is", engine=gemma, max_new_tokens=3)
    assert result.matches_formula
    assert list(result.measured_bytes) == [int(t) * 2 * 18 * 256 * 4 for t in result.tokens]


def test_whatif_learns_sliding_windows():
    """Gemma 3 270M at 32K tokens in bf16: 15 local layers hold 511 tokens, 3 global hold 32,768."""
    result = calculate("Gemma 3 270M", 32_768, 1, "bf16", "bf16")
    assert result.kv_bytes == 2 * 1 * 256 * 2 * (15 * 511 + 3 * 32_768)
    assert result.bytes_per_token == 2 * 18 * 256 * 2
    assert any("sliding window" in note for note in result.notes)
    short = calculate("Gemma 3 270M", 100, 1, "bf16", "bf16")
    assert short.kv_bytes == short.bytes_per_token * 100
    llama = calculate("Llama-3 8B", 8192, 1, "bf16", "bf16")
    assert llama.kv_bytes == 2 * 32 * 8 * 128 * 2 * 8192


@pytest.mark.parametrize("text", [MIXED, "  leading and trailing  ", "def f(x):\n    return x ** 2\n",
                                  "Ünïcödé ✓ 𝔘𝔫𝔦 🙂🙂 中文 한국어 ελληνικά"])
def test_gemma_tokens_and_offsets_reconstruct_the_text(text, gemma):
    result = tokens.tokenize_one(text, "gemma-3-270m")
    assert result.vocab_size == 262_144 or result.vocab_size >= 262_144
    assert result.decoded == text
    assert [t.id for t in result.tokens] == gemma.tokenizer(text, add_special_tokens=False)["input_ids"]
    spans = [(t.start, t.end) for t in result.tokens if t.start >= 0]
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    covered = "".join(text[a:b] for a, b in dict.fromkeys(spans))
    assert covered == text
