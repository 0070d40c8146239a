"""The ``refusal_adapter`` injection defence: a stored PEFT adapter, hash-checked, run on a per-request LoRA shadow.

Tiny model: a PEFT adapter with random B written here with ``save_pretrained`` stands in for the stored one; the
defence's answer equals a PEFT-wrapped deep copy's greedy ``generate`` (the independent reference), the shared
model is unchanged, a changed file is refused. The real stored SmolLM2 adapter: its manifest hashes, its size, no
overlap between its pairs and the test items, and one item against ``PeftModel.from_pretrained``.
"""
import copy
import json
import os
import shutil

import pytest
import torch

from explorer.agents import injection as inj
from explorer.agents import refusal_adapter as ra
from explorer.core.progress import run_to_end


def _reference_text(model, tokenizer, ids) -> str:
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=inj.ANSWER_TOKENS, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)


def _first_line(text: str) -> str:
    return text.strip().split("\n")[0].strip()


@pytest.fixture()
def tiny_adapter(tiny_engine, tmp_path, monkeypatch):
    """A stored adapter for the tiny model (folder, PEFT-wrapped deep copy as the reference)."""
    from peft import LoraConfig, get_peft_model

    reference = get_peft_model(copy.deepcopy(tiny_engine.model), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    reference.eval()
    reference.save_pretrained(tmp_path)
    manifest = {"adapter_sha256": ra.sha256_file(tmp_path / ra.WEIGHTS), "settings": {"rank": 4}, "n_pairs": 0}
    (tmp_path / ra.MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setattr(ra, "ADAPTER_DIR", str(tmp_path))
    monkeypatch.setattr(ra, "ADAPTER_MODEL", tiny_engine.name)
    return tmp_path, reference


def test_loaded_weights_equal_the_stored_file(tiny_engine, tiny_adapter):
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    folder, _ = tiny_adapter
    run, manifest = ra.load_refusal_run(tiny_engine)
    stored = load_file(folder / ra.WEIGHTS)
    loaded = get_peft_model_state_dict(run.peft_model, adapter_name=run.adapter_name)
    assert manifest["adapter_sha256"] == ra.sha256_file(folder / ra.WEIGHTS)
    assert set(loaded) == set(stored) and all(torch.equal(loaded[k], stored[k]) for k in stored)
    ra.release(run)
    assert run.peft_model is None


def test_defence_answers_as_the_peft_reference_and_leaves_the_shared_model_alone(tiny_engine, tiny_adapter):
    _, reference = tiny_adapter
    before = {k: v.clone() for k, v in tiny_engine.model.state_dict().items()}
    names = [n for n, _ in tiny_engine.model.named_modules()]
    plain = run_to_end(inj.iter_injection(defence="none", kind="jailbreak", limit=1, chat_template=True,
                                          engine=tiny_engine))
    adapted = run_to_end(inj.iter_injection(defence="refusal_adapter", kind="jailbreak", limit=1,
                                            chat_template=True, engine=tiny_engine))
    ids = inj._secret_ids(tiny_engine, inj.jailbreak_user(inj.JAILBREAKS[0], "none"), True)
    assert adapted.items[0]["prompt"] == plain.items[0]["prompt"]  # same prompt as "none": only the weights differ
    assert adapted.items[0]["output"] == _first_line(_reference_text(reference, tiny_engine.tokenizer, ids))
    assert adapted.items[0]["output"] != plain.items[0]["output"]
    assert any("refusal_adapter" in n for n in adapted.notices)
    after = tiny_engine.model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
    assert [n for n, _ in tiny_engine.model.named_modules()] == names


def test_changed_adapter_file_is_refused(tiny_engine, tiny_adapter, tmp_path_factory):
    folder, _ = tiny_adapter
    bad = tmp_path_factory.mktemp("bad")
    shutil.copytree(folder, bad, dirs_exist_ok=True)
    with open(bad / ra.WEIGHTS, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match="SHA-256"):
        ra.load_refusal_run(tiny_engine, str(bad))
    with pytest.raises(ValueError, match="train_refusal_adapter"):
        ra.read_manifest(str(tmp_path_factory.mktemp("empty")))


def test_gemma_has_no_stored_adapter():
    with pytest.raises(ValueError, match="model"):
        run_to_end(inj.iter_injection(model="gemma-3-270m", defence="refusal_adapter"))


def test_stored_adapter_manifest_size_and_no_overlap_with_the_test_items():
    from explorer.core.config import get_limits

    manifest = ra.read_manifest()  # raises on a hash mismatch
    weights = os.path.join(ra.ADAPTER_DIR, ra.WEIGHTS)
    assert os.path.getsize(weights) == manifest["adapter_bytes"] < 5_000_000
    assert manifest["pairs_sha256"] == ra.sha256_file(ra.PAIRS_PATH)
    assert manifest["settings"] == ra.TRAIN_SETTINGS and manifest["model"] == "smollm2-135m-instruct"
    pairs = [json.loads(line) for line in open(ra.PAIRS_PATH, encoding="utf-8") if line.strip()]
    assert len(pairs) == manifest["n_pairs"]
    text = json.dumps(pairs).lower()
    # the indirect items' questions at the configured cap (the corpus's later questions include general ones)
    questions = [item["question"] for item in inj._items("indirect", get_limits().injection_max_items)]
    for item in (inj.CANARY, *inj.ATTACKS, *inj.JAILBREAKS, *questions):
        assert item.lower() not in text, item


def test_real_smollm2_defence_equals_peft_from_pretrained(smollm2):
    from peft import PeftModel

    result = run_to_end(inj.iter_injection(defence="refusal_adapter", kind="jailbreak", limit=2,
                                           chat_template=True, engine=smollm2))
    reference = PeftModel.from_pretrained(copy.deepcopy(smollm2.model), ra.ADAPTER_DIR).eval()
    ids = inj._secret_ids(smollm2, inj.jailbreak_user(inj.JAILBREAKS[0], "none"), True)
    assert result.items[0]["output"] == _first_line(_reference_text(reference, smollm2.tokenizer, ids))
    assert len(result.items) == 2 and result.model == "smollm2-135m-instruct"
