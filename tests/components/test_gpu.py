"""ZeroGPU: with a fake ``spaces`` module that records every decorated function and its requested duration,
only model-running handlers are decorated, every duration follows the call's work and stays within
``LLM_EXPLORER_ZEROGPU_MAX_SECONDS``, cached requests make no GPU call, refusals read clearly, and long work
is split into calls that fit."""
import inspect
import sys
import types

import gradio as gr
import pytest

from components import gpu_budget
from components.gpu import (is_quota_error, quota_message, quota_wait_seconds, tab_of, wrap_for_zero_gpu,
                            zero_gpu_available)
from components.registry import tab_specs
from explorer.core.config import Limits

# handlers that never run the model: tokenizing, formulas, re-renders, stored tables, stats, presets
CPU_ONLY = {("tokens", "show_tokens"), ("tokens", "tokenize_api"), ("kv_cache", "calculate"),
            ("kv_cache", "replay"), ("kv_cache", "use_preset"), ("attention", "_detail"), ("attention", "_scrub"),
            ("attention", "_overview"), ("decoding", "_temperature"), ("decoding", "_reroll"),
            ("decoding", "_add_preset"), ("next_token", "show_stored"), ("next_token", "pick"),
            ("hallucination", "rerender"), ("hallucination", "auroc_badged"), ("serving", "stats_api"),
            ("serving", "poll"), ("quantization", "_smooth"), ("quantization", "_position"),
            ("lora", "show_params"), ("lora", "export"), ("lora", "attach"), ("embeddings", "search")}


class FakeSpaces(types.ModuleType):
    """Records ``(function, duration)`` for each ``spaces.GPU(duration=...)`` and counts the calls it lends."""

    def __init__(self, refuse: Exception | None = None):
        super().__init__("spaces")
        self.decorated, self.calls, self.refuse = [], 0, refuse

    def GPU(self, duration=60):  # noqa: N802 - the real package's name
        def deco(fn):
            self.decorated.append((fn, duration))

            def run(*args, **kwargs):
                self.calls += 1
                if self.refuse is not None:
                    raise self.refuse
                return fn(*args, **kwargs)
            return run
        return deco


@pytest.fixture
def fake_spaces(monkeypatch):
    fake = FakeSpaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    return fake


def test_not_wrapped_off_zero_gpu(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not zero_gpu_available()
    assert wrap_for_zero_gpu(object(), Limits()) == 0


@pytest.fixture(scope="module")
def zero_gpu_demo():
    """The real page built as on a ZeroGPU Space (fake ``spaces``); model weights are not touched."""
    mp = pytest.MonkeyPatch()
    fake = FakeSpaces()
    mp.setitem(sys.modules, "spaces", fake)
    mp.setenv("SPACES_ZERO_GPU", "1")
    import app

    from explorer.lora import chunks

    demo = app.build_demo()
    yield demo, fake
    chunks.configure(None, None)
    mp.undo()


def _handlers(demo):
    out = {}
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and tab_of(block_fn.fn):
            out.setdefault((tab_of(block_fn.fn), inspect.unwrap(block_fn.fn).__name__), []).append(block_fn)
    return out


def test_only_model_running_handlers_are_decorated(zero_gpu_demo):
    demo, fake = zero_gpu_demo
    decorated = {(tab_of(fn), fn.__name__) for fn, _ in fake.decorated}
    handlers = _handlers(demo)
    assert decorated and not decorated & CPU_ONLY, decorated & CPU_ONLY
    assert CPU_ONLY <= set(handlers)  # the CPU-only list names real handlers
    assert ("decoding", "_run") in decorated and ("hallucination", "probe_api") in decorated
    assert not any(tab_of(fn) == "tokens" for fn, _ in fake.decorated)
    assert all(tab_of(fn) is not None for fn, _ in fake.decorated)  # share links, downloads: never
    for spec in tab_specs():  # every handler a TabSpec names exists and was decorated
        for name in spec.gpu:
            assert any(k == spec.key and (n == name or any(b.api_name == name for b in bs))
                       for (k, n), bs in handlers.items()), f"{spec.key}.gpu names no handler {name!r}"


def test_cache_sits_outside_the_gpu_call_in_the_app(zero_gpu_demo):
    demo, _ = zero_gpu_demo
    for block_fn in _handlers(demo)[("decoding", "_run")]:
        assert block_fn.fn.__code__.co_filename.endswith("serving.py")  # outermost: the serving cache


def test_durations_are_callables_within_the_maximum(zero_gpu_demo):
    _, fake = zero_gpu_demo
    top = Limits().zerogpu_max_seconds
    assert top == 120
    huge = {"max_new_tokens": 10**6, "n": 10**6, "n_samples": 10**6, "new_tokens": 10**6, "rows": [["greedy"]] * 999}
    for fn, duration in fake.decorated:
        assert callable(duration), fn
        params = list(inspect.signature(fn).parameters)
        args = [huge.get(p, "x") for p in params if p not in ("progress", "request", "evt")]
        assert 1 <= duration() <= top and 1 <= duration(*args) <= top, fn.__name__


def test_duration_follows_the_work():
    spec = {s.key: s for s in tab_specs()}
    limits = Limits()
    decode = spec["decoding"].gpu["_run"]
    short = gpu_budget.clamp(decode(limits, {"max_new_tokens": 16, "rows": [["greedy"]]}), limits)
    long = gpu_budget.clamp(decode(limits, {"max_new_tokens": 256, "rows": [["greedy"]] * 4}), limits)
    assert short < long <= 120
    probe = spec["hallucination"].gpu["probe_api"]
    assert probe(limits, {"n_samples": 2, "probes": ["a"]}) < probe(limits, {"n_samples": 8, "probes": ["a", "b"]})
    assert gpu_budget.clamp(long * 10, Limits(zerogpu_max_seconds=30)) == 30


def _fake_demo(fn, api_name):
    return types.SimpleNamespace(fns={0: types.SimpleNamespace(fn=fn, api_name=api_name)})


def test_cached_request_makes_no_gpu_call(fake_spaces, monkeypatch):
    import explorer.core.engine as engine_mod
    from components.serving import wire_serving

    monkeypatch.setattr(engine_mod, "get_engine", lambda name: None)  # no weights needed here

    ran = []

    def _run(prompt, model, rows, max_new_tokens, temperature):
        ran.append(prompt)
        return {"text": prompt.upper()}

    _run.__module__ = "components.tabs.decoding.tab"
    demo = _fake_demo(_run, "_run")
    specs = tab_specs()
    assert wrap_for_zero_gpu(demo, Limits(), specs) == 1
    wire_serving(demo, specs)
    args = ("gpu once", "smollm2-135m-instruct", [["greedy", "", "", "", "", ""]], 8, 1.0)
    first, second = demo.fns[0].fn(*args), demo.fns[0].fn(*args)
    assert ran == ["gpu once"] and fake_spaces.calls == 1
    assert first["text"] == second["text"] == "GPU ONCE"
    assert second["provenance"]["kind"] == "cached"
    (fn, duration), = fake_spaces.decorated
    assert duration(*args) < duration("x", "m", [["greedy"]] * 3, 256, 1.0) <= 120


def test_quota_refusal_reads_clearly(monkeypatch):
    refusal = Exception("You have exceeded your GPU quota (60s requested vs. 12s left). Try again in 0:04:07")
    fake = FakeSpaces(refuse=refusal)
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")

    def probe_api(question, model):
        return {}

    probe_api.__module__ = "components.tabs.hallucination.tab"
    demo = _fake_demo(probe_api, "probe")
    wrap_for_zero_gpu(demo, Limits())
    with pytest.raises(gr.Error) as err:
        demo.fns[0].fn("q", "m")
    assert "4 min 7 s" in str(err.value) and "embedded models" in str(err.value) and "cache" in str(err.value)
    assert is_quota_error(Exception("ZeroGPU queue is full")) and "queue is full" in quota_message(
        Exception("ZeroGPU queue is full, retry in 30s"))
    assert quota_wait_seconds("retry in 30s") == 30 and quota_wait_seconds("nothing") is None
    assert not is_quota_error(ValueError("max_new_tokens must be positive"))
    fake.refuse = ValueError("max_new_tokens must be positive")  # other errors pass through unchanged
    with pytest.raises(ValueError):
        demo.fns[0].fn("q", "m")


def test_model_loads_before_the_gpu_call(fake_spaces, monkeypatch):
    import explorer.core.engine as engine_mod

    order = []
    monkeypatch.setattr(engine_mod, "get_engine", lambda name: order.append(("load", name)))

    def ask(owner_id, chosen, prompt):
        order.append(("gpu", fake_spaces.calls))

    ask.__module__ = "components.tabs.lora.tab"
    demo = _fake_demo(ask, "ask")
    wrap_for_zero_gpu(demo, Limits())
    demo.fns[0].fn("owner", "smollm2-135m-instruct", "hi")
    assert order == [("load", "smollm2-135m-instruct"), ("gpu", 1)]


def test_long_work_is_split_into_calls_that_fit():
    limits = Limits()
    chunks = gpu_budget.plan_chunks(300, gpu_budget.SECONDS_PER_TRAIN_STEP, limits)
    assert sum(chunks) == 300 and len(chunks) > 1
    assert all(gpu_budget.training(n) <= limits.zerogpu_max_seconds for n in chunks)
    tight = Limits(zerogpu_max_seconds=30)
    tokens = gpu_budget.plan_chunks(1000, gpu_budget.SECONDS_PER_TOKEN, tight)
    assert sum(tokens) == 1000 and all(5 + 0.05 * n <= 30 for n in tokens)
    assert gpu_budget.plan_chunks(0, 1.0, limits) == []
    with pytest.raises(ValueError, match="LLM_EXPLORER_ZEROGPU_MAX_SECONDS"):
        gpu_budget.plan_chunks(10, 1.0, Limits(zerogpu_max_seconds=5))


def test_lora_run_on_zero_gpu_is_chunked_to_fit(fake_spaces):
    from explorer.lora import chunks

    wrap_for_zero_gpu(_fake_demo(None, None), Limits())
    try:
        plan = chunks.plan_for(300)
        before = len(fake_spaces.decorated)
        for steps in plan:
            chunks._WRAP(chunks.train_chunk, steps)
    finally:
        chunks.configure(None, None)
    assert sum(plan) == 300 and len(plan) >= 300 // gpu_budget.TRAIN_CHUNK_STEPS
    asked = [d for fn, d in fake_spaces.decorated[before:] if fn is chunks.train_chunk]
    assert len(asked) == len(plan) and all(1 <= d <= Limits().zerogpu_max_seconds for d in asked)
    assert chunks.plan_for(300) is None  # off ZeroGPU again: runs are not chunked
