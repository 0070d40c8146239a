"""The one logit lens (explorer/core/readout.py): the last layer read out equals the model's own logits, soft-capped
where the architecture soft-caps (a tiny Gemma 2, whose forward applies final_logit_softcapping itself)."""
import pytest
import torch

from explorer.core.readout import softcap_of, unembed


def _gemma2_engine(cap: float):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from explorer.core.engine import Engine
    from models.loading import LoadedModel
    from models.registry import ModelSpec

    torch.manual_seed(0)
    config = Gemma2Config(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16, final_logit_softcapping=cap,
                          max_position_embeddings=128, attn_implementation="eager")
    model = Gemma2ForCausalLM(config).eval()
    with torch.no_grad():  # random logits are tiny; widen the head so the cap bends them
        model.lm_head.weight.mul_(200.0)
    spec = ModelSpec("tiny-gemma2", "causal-lm", "hub", "tiny", "tiny soft-capped test model")
    return Engine(LoadedModel(spec=spec, model=model, tokenizer=None, device=torch.device("cpu"),
                              dtype=torch.float32))


def test_last_layer_equals_model_logits_and_earlier_layers_apply_the_final_norm(tiny_engine):
    ids = tiny_engine.tokenizer("The capital of France is")["input_ids"]
    out = tiny_engine.forward(ids, output_hidden_states=True)
    hidden = out.hidden_states
    assert torch.allclose(unembed(tiny_engine, hidden[-1][0], len(hidden) - 1), out.logits[0], atol=1e-5)
    assert torch.allclose(unembed(tiny_engine, hidden[-1][0], -1), out.logits[0], atol=1e-5)
    model = tiny_engine.model
    with torch.no_grad():
        manual = model.lm_head(model.model.norm(hidden[1][0]))
    assert torch.allclose(unembed(tiny_engine, hidden[1][0], 1), manual, atol=1e-6)
    with pytest.raises(ValueError, match="layer"):
        unembed(tiny_engine, hidden[0][0], len(hidden))


def test_soft_capping_matches_the_architectures_own_forward():
    engine = _gemma2_engine(cap=3.0)
    assert softcap_of(engine.config) == 3.0
    out = engine.forward([1, 5, 9, 11], output_hidden_states=True)
    read = unembed(engine, out.hidden_states[-1][0], -1)
    assert torch.allclose(read, out.logits[0], atol=1e-4)
    assert float(read.abs().max()) <= 3.0 and float(out.logits.abs().max()) > 2.0  # the cap really bent them
