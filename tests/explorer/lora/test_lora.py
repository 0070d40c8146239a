"""LoRA lens mechanics on a tiny random Llama: data, settings, isolation, failure modes, adapters in/out."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from explorer import lora
from explorer.lora.data import (IGNORE_INDEX, builtin_dataset, pairs_from_messages, parse_jsonl, tokenize_example,
                                validate_dataset)
from explorer.lora.infer import generate, merge_check
from explorer.lora.adapter_io import load_adapter, save_adapter
from explorer.lora.model import LoraSettings, build_peft_model, count_parameters, settings_from_dict

PAIRS = [{"prompt": "Name the moon of Veloria.", "response": "Its moon is Pellow."},
         {"prompt": "Name the king of Veloria.", "response": "The king is Arno."}]
FAST = {"steps": 3, "batch_size": 2, "r": 4, "learning_rate": 1e-2}


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_jsonl_reports_bad_line_numbers_and_empty_and_cap():
    text = '{"prompt": "a", "response": "b"}\nnot json\n\n{"prompt": "a"}\n{"messages": [{"role": "user", "content": "x"}]}\n'
    with pytest.raises(ValueError) as err:
        parse_jsonl(text, max_bytes=10_000)
    message = str(err.value)
    assert "line 2" in message and "line 4" in message and "line 5" in message and "line 1" not in message
    with pytest.raises(ValueError, match="empty"):
        parse_jsonl("\n\n", max_bytes=100)
    with pytest.raises(ValueError, match="cap"):
        parse_jsonl('{"prompt": "a", "response": "b"}\n' * 10, max_bytes=50)
    with pytest.raises(ValueError, match="empty"):
        validate_dataset([{"prompt": "", "response": ""}], max_bytes=100)
    chat = parse_jsonl(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                {"role": "assistant", "content": "hello"}]}), max_bytes=1000)
    assert len(chat) == 1
    assert len(builtin_dataset("Fictional facts (Veloria)")) >= 20


def test_loss_mask_covers_exactly_the_response(tiny_engine):
    tok = tiny_engine.tokenizer
    messages = validate_dataset([PAIRS[0]], max_bytes=10_000)[0]
    example = tokenize_example(tok, messages, max_tokens=256)
    trained = example.input_ids[example.labels != IGNORE_INDEX]
    assert tok.decode(trained).strip() == "Its moon is Pellow.<|im_end|>"
    first = int(np.argmax(example.labels != IGNORE_INDEX))
    assert tok.decode(example.input_ids[:first]).endswith("<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="cap"):
        tokenize_example(tok, messages, max_tokens=5)


def test_settings_defaults_caps_and_errors():
    settings, notices = settings_from_dict({"steps": 10_000, "target_modules": ["q", "v"], "r": "8"}, max_steps=50)
    assert settings.steps == 50 and notices and settings.target_modules == ("q_proj", "v_proj") and settings.r == 8
    assert settings.learning_rate == LoraSettings().learning_rate
    assert settings_from_dict({"target_modules": "all-linear"}, 50)[0].target_modules == ("all-linear",)
    for bad in ({"rank": 4}, {"r": 0}, {"target_modules": ["qq"]}, {"lr_scheduler_type": "zigzag"}, {"r": 2.5}):
        with pytest.raises(ValueError):
            settings_from_dict(bad, 50)


@pytest.mark.parametrize("targets,rslora", [(("q_proj", "v_proj"), False), (("all-linear",), True)])
def test_trainable_count_equals_peft(tiny_engine, targets, rslora):
    settings = LoraSettings(r=4, target_modules=targets, use_rslora=rslora)
    with tiny_engine.session(grad=True):
        _model, peft_counts = build_peft_model(tiny_engine, settings, "count")
    assert count_parameters(tiny_engine.model, settings) == peft_counts and peft_counts[0] > 0


def test_training_leaves_the_shared_model_untouched(tiny_engine):
    shared = tiny_engine.model
    before, modules = _state(shared), [(n, type(m)) for n, m in shared.named_modules()]
    ids = torch.tensor([tiny_engine.chat_ids("Name the moon of Veloria.")])
    with tiny_engine.session():
        logits_before = shared(input_ids=ids).logits.clone()
    run = lora.start_run("iso", PAIRS, {**FAST, "steps": 6}, engine=tiny_engine)
    during = []
    while run.thread.is_alive():
        with tiny_engine.session():
            during.append(torch.equal(shared(input_ids=ids).logits, logits_before))
    snap = lora.wait(run)
    assert snap.status == "done" and snap.steps_done == 6 and all(during)
    assert [(n, type(m)) for n, m in shared.named_modules()] == modules
    after = _state(shared)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in shared.parameters())
    with tiny_engine.session():
        assert torch.equal(shared(input_ids=ids).logits, logits_before)
        with run.peft_model.disable_adapter():
            assert torch.equal(run.peft_model(input_ids=ids).logits, logits_before)
    with tiny_engine.session(), lora.adapter_active(run) as model:
        assert not torch.equal(model(input_ids=ids).logits, logits_before)
    assert merge_check(run, "Name the moon of Veloria.") <= 1e-4
    assert np.isfinite(snap.smoothed_loss).all() and (snap.grad_norm > 0).all()
    # linear warm-up over 2 steps to the peak, then linear decay (transformers' get_scheduler)
    np.testing.assert_allclose(snap.learning_rate, [0, 0.005, 0.01, 0.0075, 0.005, 0.0025], atol=1e-9)


def _argmax_text(model, tokenizer, ids: list[int], n: int) -> str:
    """Independent greedy reference: argmax of a plain forward pass per token (no generate, no cache)."""
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    out = []
    with torch.no_grad():
        for _ in range(n):
            token = int(model(torch.tensor([ids + out])).logits[0, -1].argmax())
            out.append(token)
            if token in eos:
                break
    return tokenizer.decode(out, skip_special_tokens=True).strip()


def test_stop_keeps_last_step_adapter_and_one_run_per_session(tiny_engine):
    gate = threading.Event()
    run = lora.start_run("stopper", PAIRS, {**FAST, "steps": 200}, engine=tiny_engine)
    with pytest.raises(ValueError, match="already going"):
        lora.start_run("stopper", PAIRS, FAST, engine=tiny_engine)
    while len(run.records) < 2:
        gate.wait(0.01)
    assert lora.active_run("stopper") is run
    lora.stop("stopper")
    snap = lora.wait(run)
    assert snap.status == "stopped" and 2 <= snap.steps_done < 200 and str(snap.steps_done) in snap.message
    base, adapted = generate(run, "Name the king of Veloria.", max_new_tokens=3)
    ids = tiny_engine.chat_ids("Name the king of Veloria.")
    assert base == _argmax_text(tiny_engine.model, tiny_engine.tokenizer, ids, 3)
    from explorer.lora.train import adapter_active

    with tiny_engine.session(), adapter_active(run) as model:
        assert adapted == _argmax_text(model, tiny_engine.tokenizer, ids, 3)
    with pytest.raises(ValueError, match="No LoRA run"):
        lora.get_run(run.run_id, "someone-else")


def test_adapter_roundtrip_and_wrong_base(tiny_engine, tmp_path):
    from conftest import make_tiny_engine

    snap = lora.run(PAIRS, FAST, owner="io", engine=tiny_engine)
    run = lora.get_run(snap.run_id, "io")
    archive = save_adapter(run, str(tmp_path))
    loaded = load_adapter("io", archive, engine=tiny_engine)
    assert loaded.status == "uploaded" and loaded.settings.r == 4
    ids = torch.tensor([tiny_engine.chat_ids("Name the king of Veloria.")])
    with tiny_engine.session(), lora.adapter_active(run) as model:
        original = model(input_ids=ids).logits
    with tiny_engine.session(), lora.adapter_active(loaded) as model:
        assert torch.allclose(model(input_ids=ids).logits, original, atol=1e-6)
    other = make_tiny_engine(hidden=32)
    with pytest.raises(ValueError, match="different base model"):
        load_adapter("io", archive, engine=other)
    bad = tmp_path / "adapter.bin"
    bad.write_bytes(b"0")
    with pytest.raises(ValueError, match="refused"):
        load_adapter("io", str(bad), engine=tiny_engine)
    corrupt = tmp_path / "adapter_model.safetensors"
    corrupt.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_adapter("io", str(corrupt), engine=tiny_engine)


def test_chat_messages_flatten_to_one_row_per_assistant_turn():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q1"},
                {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"},
                {"role": "assistant", "content": "a2"}]
    assert pairs_from_messages(messages) == [{"prompt": "q1", "response": "a1"}, {"prompt": "q2", "response": "a2"}]


def test_a_one_step_run_adapts_the_warm_up_and_says_so(tiny_engine):
    """Default warm-up (2 steps) on a 1-step run would train at learning rate 0 (transformers' linear warm-up
    starts at 0); the warm-up is lowered to steps - 1 with a notice, and the step trains at the full rate."""
    settings, notices = settings_from_dict({"steps": 1}, 300)
    assert settings.warmup_steps == 0 and any("warmup_steps" in n and "learning rate 0" in n for n in notices)
    settings, notices = settings_from_dict({"steps": 3, "warmup_steps": 5}, 300)
    assert settings.warmup_steps == 2 and notices
    assert settings_from_dict({"steps": 10}, 300) == (LoraSettings(steps=10), [])
    run = lora.start_run("warmup-owner", PAIRS, {"steps": 1, "batch_size": 2, "r": 4, "target_modules": ["q"],
                                                 "learning_rate": 1e-3}, engine=tiny_engine)
    snap = lora.wait(run, timeout_s=120)
    assert snap.steps_done == 1 and snap.learning_rate[0] == pytest.approx(1e-3)
    assert any("warmup_steps" in n for n in snap.notices)


def test_a_run_no_page_polls_stops_on_its_own(tiny_engine, monkeypatch):
    """A run nobody polls (page closed, reload never came) stops after Limits.lora_idle_seconds."""
    import dataclasses

    from explorer.core.config import get_limits
    from explorer.core import runs as core_runs  # the run registry's stop checks (shared by SFT and DPO)

    assert get_limits().lora_idle_seconds == 300.0
    monkeypatch.setattr(core_runs, "get_limits", lambda: dataclasses.replace(get_limits(), lora_idle_seconds=0.0))
    run = lora.start_run("idle-owner", PAIRS, {"steps": 50, "batch_size": 2, "r": 4, "target_modules": ["q"]},
                         engine=tiny_engine)
    run.thread.join(120)  # nobody calls snapshot() or wait(): no page is watching
    assert run.status == "stopped" and "polled" in run.message and len(run.records) < 50
