"""The token inspector lens on the tiny random Llama: every field against an independent computation, the lens
contract, one analysis per text (a second position runs no model pass) and clear refusals."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

TEXT = "The capital of France is Paris, and the capital of Italy is Rome."


@pytest.fixture(scope="module")
def analysed(tiny_engine):
    from explorer import inspect

    return inspect.analyse(tiny_engine, TEXT)


def _direct(engine, ids):
    """The tiny model run directly through transformers (eager attention, every output), outside the lens."""
    import torch

    model = engine.model
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            return model(torch.tensor([ids]), output_attentions=True, output_hidden_states=True, use_cache=False)
    finally:
        model.set_attn_implementation(previous)


def test_lens_contract_and_json(tiny_engine):
    from explorer import inspect
    from explorer.core.progress import Progress

    items = list(inspect.iter_run(TEXT, position=2, engine=tiny_engine))
    assert all(isinstance(i, Progress) for i in items[:-1]) and len(items) >= 2
    result = items[-1]
    data = inspect.to_api(result)
    json.dumps(data)
    assert set(data) >= {"token", "attention", "kv_bytes", "prediction", "logit_lens", "quantization", "confidence"}
    assert data["provenance"]["kind"] == "measured" and data["provenance"]["model"] == tiny_engine.name
    assert data["confidence"] is None and "chat template" in data["confidence_reason"]


def test_fields_equal_an_independent_pass(tiny_engine, analysed):
    import torch

    from explorer import inspect

    ids = tiny_engine.tokenizer(TEXT)["input_ids"]
    assert analysed.ids.tolist() == ids
    out = _direct(tiny_engine, ids)
    attn = torch.stack([a[0] for a in out.attentions]).numpy()  # (L, H, n, n)
    logp = torch.log_softmax(out.logits[0].float(), -1)
    cfg = tiny_engine.config
    per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 4
    for p in (0, 4, len(ids) - 1):
        r = inspect.read(analysed, p)
        assert r.token["id"] == ids[p] and bytes.fromhex(r.token["bytes_hex"]).decode() == tiny_engine.decode([ids[p]])
        np.testing.assert_allclose(r.attention["mean_over_heads"], attn[:, :, p, :p + 1].mean(1), atol=2e-6)
        for h in r.attention["strongest_heads"]:
            assert h["weight"] == pytest.approx(attn[h["layer"], h["head"], p, h["key"]], abs=2e-6)
            assert p == 0 or h["key"] > 0
        best = attn[:, :, p, 1:p + 1].max() if p else attn[:, :, 0, 0].max()
        assert r.attention["strongest_heads"][0]["weight"] == pytest.approx(best, abs=2e-6)
        assert r.kv_bytes["added_bytes"] == per_token and r.kv_bytes["cache_bytes_after"] == per_token * (p + 1)
        assert r.kv_bytes["measured_cache_bytes"] == per_token * len(ids)
        top = logp[p].topk(10)
        assert [c["id"] for c in r.prediction["top"]] == top.indices.tolist()
        np.testing.assert_allclose([c["p"] for c in r.prediction["top"]], top.values.exp().numpy(), rtol=1e-4)
        if p + 1 < len(ids):
            nxt = r.prediction["next_token"]
            assert nxt["logprob"] == pytest.approx(float(logp[p, ids[p + 1]]), abs=1e-4)
            assert nxt["rank"] == int((out.logits[0, p] > out.logits[0, p, ids[p + 1]]).sum()) + 1
            assert nxt["surprisal_bits"] == pytest.approx(-nxt["logprob"] / math.log(2))
        # logit lens: layer l's hidden state through the final norm and the output layer
        lens = r.logit_lens
        assert len(lens["layers"]) == cfg.num_hidden_layers + 1
        for layer in (0, 1):
            h = out.hidden_states[layer][0, p]
            lp = torch.log_softmax(tiny_engine.model.lm_head(tiny_engine.model.model.norm(h)), -1)
            assert [c["id"] for c in lens["layers"][layer]["top"]] == lp.topk(5).indices.tolist()
            assert lens["layers"][layer]["final_token_p"] == pytest.approx(float(lp[top.indices[0]].exp()), rel=1e-4)
        assert [c["id"] for c in lens["layers"][-1]["top"]] == top.indices[:5].tolist()


def test_quantized_copies_per_position(tiny_engine, analysed):
    import torch

    from explorer import inspect
    from explorer.quantization import get_variant

    ids = analysed.ids.tolist()
    n = len(ids)
    with torch.no_grad():  # scored like /quantize: the text, then the reference's greedy continuation (24 tokens)
        sequence = tiny_engine.model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False,
                                              pad_token_id=2)[0].tolist()
        ref = torch.log_softmax(_direct(tiny_engine, sequence).logits[0, :n].float(), -1)
    for name in ("int8", "nf4"):
        q = analysed.quant[name]
        assert "error" not in q, q
        with torch.no_grad():
            logits = get_variant(tiny_engine, name).engine.model(torch.tensor([sequence])).logits[0, :n].float()
        lq = torch.log_softmax(logits, -1)
        kld = (ref.exp() * (ref - lq)).sum(-1).numpy()  # KL(reference || copy), llama.cpp's direction
        np.testing.assert_allclose(q["kld"], kld, rtol=1e-3, atol=1e-6)
        assert (q["same_top"] == (ref.argmax(-1) == lq.argmax(-1)).numpy()).all()
        r = inspect.read(analysed, 3).quantization[name]
        assert r["kld"] == pytest.approx(float(kld[3]), rel=1e-3, abs=1e-6) and r["top1"]["id"] == int(lq[3].argmax())


def test_second_position_reads_the_cache_without_a_model_pass(tiny_engine, monkeypatch):
    from explorer import inspect
    from explorer.serving.cache import ResultCache

    cache, calls = ResultCache(max_bytes=64 * 2**20), []
    original = type(tiny_engine).forward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(tiny_engine), "forward", counting)
    first = inspect.run("Hello there, world", position=1, engine=tiny_engine, cache=cache)
    assert calls and not first.from_cache and first.provenance.kind == "measured"
    calls.clear()
    second = inspect.run("Hello there, world", position=3, engine=tiny_engine, cache=cache)
    assert calls == [] and second.from_cache and second.provenance.kind == "cached"
    assert second.provenance.when == first.provenance.when and second.token["position"] == 3


def test_bad_input_is_refused_clearly(tiny_engine, analysed):
    from explorer import inspect

    with pytest.raises(ValueError, match=r"position 99 is out of range.*positions 0 to"):
        inspect.read(analysed, 99)
    with pytest.raises(ValueError, match="position"):
        inspect.read(analysed, -1)
    with pytest.raises(ValueError, match="text"):
        inspect.run("   ", engine=tiny_engine)
    chat = inspect.analyse(tiny_engine, "What is the capital of France?", chat_template=True)
    assert chat.kinds[0] == "template" and "question" in chat.kinds
    with pytest.raises(ValueError, match="chat template"):
        inspect.read(chat, 0)
    question = chat.kinds.index("question")
    assert chat.texts[question].strip() == "What"
    result = inspect.read(chat, question)
    assert result.confidence is None and result.confidence_reason


def test_an_encoder_is_refused():
    from explorer import inspect

    with pytest.raises(ValueError, match="encoder"):
        inspect.run("Hello world", "all-minilm-l6-v2", 0)
