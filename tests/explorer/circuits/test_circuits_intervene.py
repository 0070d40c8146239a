"""Circuits interventions on the tiny model against plain PyTorch hooks on a separate copy, and the isolation rules:
the shared model is never wrapped (no ``forward`` / ``__nnsight__`` in any module's ``__dict__``), its weights never
change, ``.save`` is not mounted on Python objects, and parallel users never see each other's edits."""
from __future__ import annotations

import copy
import hashlib
import threading

import numpy as np
import pytest
import torch

from explorer.circuits import (causal_cone, iter_patch, parse_components, run_ablate, run_dla, run_heads,
                               run_patch, to_api)
from explorer.circuits.ablation import ablation_body
from explorer.circuits.patching import check_inputs, clean_activations, patched_logits
from explorer.core.intervene import trace

TEXT = "The keys to the old cabinet"
CLEAN, CORRUPTED = "When Mary and John went out, John gave it to", "When Mary and John went out, Mary gave it to"


def state_hash(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def module_dicts(model) -> dict:
    return {name: sorted(module.__dict__) for name, module in model.named_modules()}


def reference_logits(engine, ids, hooks):
    """Logits of ``ids`` on a deep copy of the model with plain ``register_forward_(pre_)hook`` hooks."""
    model = copy.deepcopy(engine.model)
    for kind, path, fn in hooks:
        module = model.get_submodule(path)
        (module.register_forward_pre_hook if kind == "pre" else module.register_forward_hook)(fn)
    with torch.no_grad():
        return model(input_ids=torch.as_tensor([ids])).logits[0]


def test_ablations_equal_plain_hooks(tiny_engine):
    ids = tiny_engine.encode(TEXT)
    d_head = tiny_engine.config.hidden_size // tiny_engine.config.num_attention_heads
    items = parse_components(tiny_engine, ["L1H2", "L0.attn", "L1.mlp"])
    got = trace(tiny_engine, ids, ablation_body(tiny_engine, items, None))["output"].logits[0]

    def zero_head(module, args):
        x = args[0].clone()
        x[..., 2 * d_head:3 * d_head] = 0
        return (x,)

    def zero_attn(module, args, output):
        return (torch.zeros_like(output[0]),) + tuple(output[1:])

    expected = reference_logits(tiny_engine, ids, [
        ("pre", "model.layers.1.self_attn.o_proj", zero_head), ("post", "model.layers.0.self_attn", zero_attn),
        ("post", "model.layers.1.mlp", lambda m, a, o: torch.zeros_like(o))])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("site", ["resid", "attn_head", "mlp"])
def test_patching_clean_into_itself_changes_nothing(tiny_engine, site):
    ids = tiny_engine.encode(TEXT)
    acts, last = clean_activations(tiny_engine, ids, site)
    cells = [[(0, 1)], [(len(acts) - 1, 2)], [(1, 0), (0, 3)]]
    logits = patched_logits(tiny_engine, ids, site, acts, cells)
    for row in logits:
        torch.testing.assert_close(row, last, rtol=1e-5, atol=1e-5)


def test_patching_every_embedding_position_gives_the_clean_logits(tiny_engine):
    clean, corrupted = tiny_engine.encode(CLEAN), tiny_engine.encode(CORRUPTED)
    acts, last = clean_activations(tiny_engine, clean, "resid")
    logits = patched_logits(tiny_engine, corrupted, "resid", acts, [[(0, p) for p in range(len(clean))]])
    torch.testing.assert_close(logits[0], last, rtol=1e-5, atol=1e-5)


def test_one_resid_cell_equals_a_forward_hook(tiny_engine):
    clean, corrupted = tiny_engine.encode(CLEAN), tiny_engine.encode(CORRUPTED)
    acts, _ = clean_activations(tiny_engine, clean, "resid")
    position = next(p for p, (a, b) in enumerate(zip(clean, corrupted)) if a != b)
    got = patched_logits(tiny_engine, corrupted, "resid", acts, [[(1, position)]])[0]

    def patch(module, args, output):
        output = output.clone()
        output[0, position] = acts[1][0, position]
        return output

    expected = reference_logits(tiny_engine, corrupted, [("post", "model.layers.0", patch)])[-1]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_patch_grid_is_normalised_and_complete(tiny_engine):
    clean = tiny_engine.encode(CLEAN)
    ids = check_inputs(tiny_engine, CLEAN, CORRUPTED, " Mary", " John")
    items = list(iter_patch(CLEAN, CORRUPTED, " Mary", " John", "resid", engine=tiny_engine))
    result = items[-1]
    assert result.grid.shape == (3, len(clean)) and result.cells_done == result.grid.size
    # the final residual stream at the last position decides the logits: patching it restores the clean metric
    assert result.grid[-1, -1] == pytest.approx(1.0, abs=1e-4)
    # positions where clean and corrupted agree, patched at the embeddings, change nothing
    same = [p for p, (a, b) in enumerate(zip(ids.clean, ids.corrupted)) if a == b]
    np.testing.assert_allclose(result.grid[0, same], 0.0, atol=1e-4)
    assert any(getattr(i, "partial", None) is not None for i in items[:-1])
    data = to_api(result)
    assert data["site"] == "resid" and len(data["grid"]) == 3 and data["rows"][0] == "embed"
    assert np.isfinite(result.attribution).all()


def test_causal_cone_shades_later_rows_at_same_or_later_positions():
    cone = causal_cone("resid", 1, 2, (4, 5))
    assert cone[1, 2] and cone[2, 2:].all() and cone[3, 4] and not cone[2, 1] and not cone[0].any()
    assert not cone[1, 3]
    head_cone = causal_cone("attn_head", 0, 1, (3, 4))
    assert head_cone[1:].all() and head_cone[0].sum() == 1


def test_dla_parts_sum_to_the_logit(tiny_engine):
    result = run_dla(TEXT, position=3, token=" the", engine=tiny_engine)
    ids = tiny_engine.encode(TEXT)
    with torch.no_grad():
        logits = copy.deepcopy(tiny_engine.model)(input_ids=torch.as_tensor([ids])).logits[0, 3]
    assert result.logit == pytest.approx(float(logits[result.token_id]), rel=1e-4, abs=1e-5)
    assert result.contributions.sum() == pytest.approx(result.logit, rel=1e-4, abs=1e-5)
    attn = [result.contributions[result.names.index(f"L{l}.attn")] for l in range(2)]
    np.testing.assert_allclose(result.head_contributions.reshape(2, -1).sum(1), attn, rtol=1e-4, atol=1e-5)
    data = to_api(result)
    assert data["residual"] == pytest.approx(data["logit"] - sum(c["contribution"] for c in data["components"]),
                                             abs=1e-4)


def test_parallel_users_never_leak(tiny_engine):
    jobs = {"a": ("L0H1", "zero"), "b": ("L1.mlp", "mean"), "c": ("L1H3", "mean")}
    alone = {key: run_ablate(TEXT, [c], mode, engine=tiny_engine, max_new_tokens=3) for key, (c, mode) in jobs.items()}
    dla_alone = run_dla(TEXT, engine=tiny_engine)
    together, errors = {}, []

    def work(key):
        try:
            for _ in range(2):
                c, mode = jobs[key]
                together[key] = run_ablate(TEXT, [c], mode, engine=tiny_engine, max_new_tokens=3)
            together["dla" + key] = run_dla(TEXT, engine=tiny_engine)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for key in jobs:
        assert together[key].kl == pytest.approx(alone[key].kl, rel=1e-6, abs=1e-9)
        assert together[key].continuation_after == alone[key].continuation_after
        np.testing.assert_allclose(together["dla" + key].contributions, dla_alone.contributions, rtol=1e-6)


def test_shared_model_unwrapped_and_unchanged_after_every_api(tiny_engine):
    # transformers marks the model once (``_output_capturing_hooks_installed``) on its first output_attentions pass,
    # which the Attention tab makes too; the baseline is taken after that first capture
    run_heads(n=4, engine=tiny_engine)
    before_hash, before_dicts = state_hash(tiny_engine.model), module_dicts(tiny_engine.model)
    run_heads(n=6, engine=tiny_engine)
    run_patch(CLEAN, CORRUPTED, " Mary", " John", "attn_head", engine=tiny_engine)
    run_ablate(TEXT, "L0H0, L1.attn", "mean", engine=tiny_engine, max_new_tokens=2)
    run_dla(TEXT, engine=tiny_engine)
    assert state_hash(tiny_engine.model) == before_hash and module_dicts(tiny_engine.model) == before_dicts
    for module in tiny_engine.model.modules():
        assert "forward" not in module.__dict__ and "__nnsight__" not in module.__dict__
    assert all(p.grad is None for p in tiny_engine.model.parameters())
    assert not hasattr(object(), "save") and not hasattr(1, "save")


@pytest.mark.parametrize("call, match", [
    (lambda e: run_patch(CLEAN, "When Mary went out, John gave it to", " Mary", " John", engine=e), "clean is 11 tokens, corrupted 9"),
    (lambda e: run_patch(CLEAN, CLEAN, " Mary", " John", engine=e), "corrupted is the same"),
    (lambda e: run_patch(CLEAN, CORRUPTED, " Mary", " Mary", engine=e), "wrong_answer is the same"),
    (lambda e: run_patch(CLEAN, CORRUPTED, " Maryland's", " John", engine=e), "answer .* Maryland.s. must be one token; it became 2"),
    (lambda e: run_patch("", CORRUPTED, " Mary", " John", engine=e), "clean is empty"),
    (lambda e: run_patch(CLEAN, CORRUPTED, " Mary", " John", "logits", engine=e), "site must be"),
    (lambda e: run_ablate(TEXT, ["L9H0"], engine=e), "layers 0 to 1"),
    (lambda e: run_ablate(TEXT, ["L0H7"], engine=e), "heads 0 to 3"),
    (lambda e: run_ablate(TEXT, ["L0H1", "L0H1"], engine=e), "named twice"),
    (lambda e: run_ablate(TEXT, ["L-1H0"], engine=e), "unknown component"),
    (lambda e: run_ablate(TEXT, ["L0.ffn"], engine=e), "unknown component"),
    (lambda e: run_ablate(TEXT, ["L0H0"], "random", engine=e), "mode must be"),
    (lambda e: run_dla(TEXT, position=-1, engine=e), "position must be at least 0"),
    (lambda e: run_dla(TEXT, position=99, engine=e), "position 99 is out of range"),
    (lambda e: run_dla(TEXT, token=10**7, engine=e), "outside the vocabulary"),
])
def test_bad_input_is_a_clear_message(tiny_engine, call, match):
    before = state_hash(tiny_engine.model)
    with pytest.raises(ValueError, match=match):
        call(tiny_engine)
    assert state_hash(tiny_engine.model) == before


def test_equal_clean_and_corrupted_metrics_refused(tiny_engine, monkeypatch):
    from explorer.circuits import patching

    real, clean = patching.attribution_grid, tiny_engine.encode(CLEAN)
    monkeypatch.setattr(patching, "attribution_grid",
                        lambda engine, ids, site, acts, good, bad: real(engine, clean, site, acts, good, bad))
    with pytest.raises(ValueError, match="same metric"):
        run_patch(CLEAN, CORRUPTED, " Mary", " John", engine=tiny_engine)


def test_cell_cap_cuts_rows_with_a_notice_and_chat_template_wraps(tiny_engine, monkeypatch):
    from explorer.core import config

    monkeypatch.setenv("LLM_EXPLORER_MAX_PATCH_CELLS", "25")
    config.get_limits.cache_clear()
    try:
        result = run_patch(CLEAN, CORRUPTED, " Mary", " John", "resid", engine=tiny_engine)
    finally:
        monkeypatch.delenv("LLM_EXPLORER_MAX_PATCH_CELLS")
        config.get_limits.cache_clear()
    columns = result.grid.shape[1]
    rows_done = 25 // columns
    assert result.cells_done == rows_done * columns and np.isnan(result.grid[rows_done:]).all()
    assert "max_patch_cells" in result.notices[0] and not np.isnan(result.grid[:rows_done]).any()
    chat = run_dla(TEXT, engine=tiny_engine, chat_template=True)
    assert len(chat.tokens) == len(tiny_engine.chat_ids(TEXT)) and chat.position == len(chat.tokens) - 1
