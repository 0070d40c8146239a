"""Per-pass patches (explorer/core/patches.py): same values as plain torch hooks, and never left installed
after a pass that succeeded, raised, was cancelled or was stopped."""
import threading

import pytest
import torch

from explorer.core import turns
from explorer.core.patches import AttnImplementation, ForwardHook, ModuleSwap, PreForwardHook, applied

PROMPT = "The capital of France is"


def _ids(engine):
    return engine.tokenizer(PROMPT)["input_ids"]


def _hook_count(model) -> int:
    """Hooks on the model, except transformers' own output-capturing hooks (installed once, kept)."""
    return sum(1 for m in model.modules() for h in list(m._forward_hooks.values()) + list(m._forward_pre_hooks.values())
               if "output_capturing_hook" not in getattr(h, "__qualname__", ""))


def _clean(engine) -> bool:
    """No hook on any module, sdpa attention, the original modules in place."""
    return (_hook_count(engine.model) == 0 and engine.model.config._attn_implementation == "sdpa"
            and isinstance(engine.model.model.layers[0].mlp, type(engine.model.model.layers[1].mlp)))


def test_forward_hook_values_equal_a_plain_torch_hook(tiny_engine):
    ids = _ids(tiny_engine)
    plain, patched = [], []
    module = tiny_engine.model.model.layers[1].self_attn
    handle = module.register_forward_hook(lambda m, a, out: plain.append(out[0].detach().clone()))
    try:
        reference = tiny_engine.forward(ids).logits
    finally:
        handle.remove()
    out = tiny_engine.forward(ids, patches=[ForwardHook("model.layers.1.self_attn",
                                                        lambda m, a, out: patched.append(out[0].clone()))])
    assert torch.equal(out.logits, reference) and torch.equal(patched[0], plain[0])
    assert _clean(tiny_engine)


def test_pre_hook_with_kwargs_and_replacement_match_plain_hooks(tiny_engine):
    ids = _ids(tiny_engine)

    def zero_input(module, args):
        return (torch.zeros_like(args[0]),)

    handle = tiny_engine.model.model.layers[0].mlp.register_forward_pre_hook(zero_input)
    try:
        reference = tiny_engine.forward(ids).logits
    finally:
        handle.remove()
    seen = []
    out = tiny_engine.forward(ids, patches=[
        PreForwardHook("model.layers.0.mlp", zero_input),
        PreForwardHook("model.layers.0.self_attn", lambda m, a, kw: seen.append(sorted(kw)), with_kwargs=True)])
    assert torch.equal(out.logits, reference) and "position_embeddings" in seen[0]
    assert not torch.equal(out.logits, tiny_engine.forward(ids).logits)
    assert _clean(tiny_engine)


def test_module_swap_matches_a_manual_swap_and_is_put_back(tiny_engine):
    ids = _ids(tiny_engine)
    layers = tiny_engine.model.model.layers
    original = layers[0].mlp
    replacement = torch.nn.Identity()
    layers[0].mlp = replacement
    try:
        reference = tiny_engine.forward(ids).logits
    finally:
        layers[0].mlp = original
    out = tiny_engine.forward(ids, patches=[ModuleSwap("model.layers.0.mlp", replacement)])
    assert torch.equal(out.logits, reference) and layers[0].mlp is original


def test_attention_implementation_for_one_pass(tiny_engine):
    out = tiny_engine.forward(_ids(tiny_engine), output_attentions=True, patches=[AttnImplementation("eager")])
    assert out.attentions[0] is not None
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(()), atol=1e-5)
    assert _clean(tiny_engine)


def test_patch_removed_after_a_pass_that_raised(tiny_engine):
    def boom(module, args, output):
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        tiny_engine.forward(_ids(tiny_engine), patches=[AttnImplementation("eager"),
                                                        ModuleSwap("model.layers.0.mlp", torch.nn.Identity()),
                                                        ForwardHook("model.layers.1", boom)])
    assert _clean(tiny_engine)
    with pytest.raises(RuntimeError, match="hook failed"):
        list(tiny_engine.steps(_ids(tiny_engine), 3, patches=[ForwardHook("model.layers.1", boom)]))
    assert _clean(tiny_engine) and not tiny_engine.lock.busy


def test_a_failed_install_undoes_the_patches_before_it(tiny_engine):
    with pytest.raises(ValueError, match="no.such"):
        tiny_engine.forward(_ids(tiny_engine), patches=[ForwardHook("model.layers.0", lambda *a: None),
                                                        ForwardHook("model.no.such", lambda *a: None)])
    assert _clean(tiny_engine)


def test_nothing_is_installed_between_passes_so_other_users_see_the_plain_model(tiny_engine):
    ids = _ids(tiny_engine)
    plain = tiny_engine.forward(ids).logits
    shift = ForwardHook("model.layers.0", lambda m, a, out: (out[0] + 1.0,) + tuple(out[1:])
                        if isinstance(out, tuple) else out + 1.0)
    steps = tiny_engine.steps(ids, 4, patches=[shift], stop_at_eos=False)
    first = next(steps)
    assert _clean(tiny_engine)  # the generator is paused between passes: nothing installed
    other = []
    thread = threading.Thread(target=lambda: other.append(tiny_engine.forward(ids).logits))
    thread.start()
    thread.join()
    assert torch.equal(other[0], plain)
    assert not torch.allclose(first.logits, plain[0, -1])
    steps.close()  # Stop: the consumer closes the generator between passes
    assert _clean(tiny_engine) and not tiny_engine.lock.busy


def test_patch_removed_after_a_cancelled_pass(tiny_engine):
    calls = []
    cancel = {"now": False}

    def hook(module, args, output):
        calls.append(1)
        cancel["now"] = True

    check = lambda: cancel["now"]  # noqa: E731 - the app registers a callable the same way
    turns.CANCEL_CHECKS.append(check)
    try:
        with pytest.raises(turns.Cancelled):
            list(tiny_engine.steps(_ids(tiny_engine), 5, patches=[ForwardHook("model.layers.0", hook)]))
    finally:
        turns.CANCEL_CHECKS.remove(check)
    assert len(calls) == 1 and _clean(tiny_engine) and not tiny_engine.lock.busy

    def cancelled_inside(module, args, output):
        raise turns.Cancelled("client went away")

    with pytest.raises(turns.Cancelled):
        tiny_engine.forward(_ids(tiny_engine), patches=[ForwardHook("model.layers.0", cancelled_inside)])
    assert _clean(tiny_engine)


def test_patch_removed_after_stop_through_stoppable(tiny_engine):
    from components.stoppable import iterate_in_thread

    seen = []

    def produce(flag):
        for step in tiny_engine.steps(_ids(tiny_engine), 20, stop_at_eos=False,
                                      patches=[ForwardHook("model.layers.1", lambda *a: seen.append(1))]):
            flag.check()
            yield step

    stream = iterate_in_thread(produce, heartbeat_s=0.05)
    got = next(item for item in stream if item is not None)
    stream.close()  # Stop pressed / tab closed
    for _ in range(200):
        if not tiny_engine.lock.busy and _hook_count(tiny_engine.model) == 0:
            break
        threading.Event().wait(0.02)
    assert got.index == 0 and len(seen) < 20 and _clean(tiny_engine)


def test_batch_steps_take_patches_per_pass(tiny_engine):
    ids = _ids(tiny_engine)
    count = []
    steps = list(tiny_engine.batch_steps(ids, 2, 3, select=lambda row, logits, i: int(logits.argmax()),
                                         stop_at_eos=False,
                                         patches=[ForwardHook("model.layers.0", lambda *a: count.append(1))]))
    assert len(steps) == 3 and len(count) == 3 and _clean(tiny_engine)


def test_patches_only_inside_a_locked_pass_and_only_patch_objects(tiny_engine):
    with pytest.raises(RuntimeError, match="locked pass"):
        with applied(tiny_engine.model, [AttnImplementation("eager")], lock=tiny_engine.lock):
            pass
    with pytest.raises(ValueError, match="patches"):
        tiny_engine.forward(_ids(tiny_engine), patches=[lambda *a: None])
    assert _clean(tiny_engine)


def test_greedy_continuation_equals_generate(tiny_engine):
    ids = _ids(tiny_engine)
    result = tiny_engine.greedy_continuation(ids, 8)
    with tiny_engine.session():
        reference = tiny_engine.model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                                               eos_token_id=sorted(tiny_engine.eos_token_ids()) or None,
                                               pad_token_id=2)[0, len(ids):].tolist()
    assert list(result.tokens) == reference
    assert result.content == (result.tokens[:-1] if result.ended else result.tokens)
    with pytest.raises(ValueError, match="max_new_tokens"):
        tiny_engine.greedy_continuation(ids, 0)


def test_adapter_patch_runs_the_pass_through_the_adapter_and_disables_it_after(tiny_engine):
    from peft import LoraConfig, get_peft_model

    from explorer.core.copies import shadow_copy
    from explorer.core.patches import Adapter

    ids = _ids(tiny_engine)
    with tiny_engine.session():
        peft = get_peft_model(shadow_copy(tiny_engine.model), LoraConfig(r=2, target_modules=["q_proj"],
                                                                         init_lora_weights=False), adapter_name="mine")
        peft.base_model.disable_adapter_layers()
        peft.eval()
        base = tiny_engine.model(input_ids=torch.tensor([ids])).logits
        peft.base_model.enable_adapter_layers()
        reference = peft(input_ids=torch.tensor([ids])).logits  # the adapter on, by hand
        peft.base_model.disable_adapter_layers()
    adapter = Adapter(peft, "mine")
    adapted = tiny_engine.forward(ids, patches=[adapter]).logits
    assert torch.allclose(adapted, reference, atol=1e-6) and not torch.allclose(adapted, base, atol=1e-4)
    with tiny_engine.session():  # off again after the pass: the shadow gives the base model's logits
        assert torch.allclose(peft(input_ids=torch.tensor([ids])).logits, base, atol=1e-6)

    def boom(module, args, output):
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):  # the hook goes on the shadow the adapter wraps
        tiny_engine.forward(ids, patches=[adapter, ForwardHook("model.layers.0", boom)])
    with tiny_engine.session():
        assert torch.allclose(peft(input_ids=torch.tensor([ids])).logits, base, atol=1e-6)
    assert _hook_count(peft) == 0 and _clean(tiny_engine)
