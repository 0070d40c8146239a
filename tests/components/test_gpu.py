"""ZeroGPU wrapping: off without the spaces package; on ZeroGPU only model-running tabs' handlers are wrapped,
each with its TabSpec's duration, which follows the caps."""
import sys
import types

from components.gpu import gpu_durations, tab_of, wrap_for_zero_gpu, zero_gpu_available
from explorer.core.config import Limits


def test_not_wrapped_off_zero_gpu(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not zero_gpu_available()
    assert wrap_for_zero_gpu(object(), Limits()) == 0


def test_durations_follow_caps():
    assert gpu_durations(Limits(max_run_seconds=123))["lora"] == 123
    assert gpu_durations(Limits(max_probe_seconds=10))["hallucination"] == 40
    assert gpu_durations(Limits(max_new_tokens=64, max_samples=2))["decoding"] < gpu_durations(
        Limits(max_new_tokens=256, max_samples=2))["decoding"]
    assert "tokens" not in gpu_durations(Limits())  # the Tokens tab never runs a model


def test_only_model_tabs_are_wrapped_with_their_duration(monkeypatch):
    from components import share
    from components.tabs.hallucination.tab import probe_api
    from components.tabs.tokens.tab import counts_table

    asked = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda duration: (asked.append(duration), lambda fn: ("wrapped", fn))[1]
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    fns = {0: types.SimpleNamespace(fn=probe_api), 1: types.SimpleNamespace(fn=counts_table),
           2: types.SimpleNamespace(fn=share.result_file), 3: types.SimpleNamespace(fn=None)}
    limits = Limits(max_probe_seconds=15)
    assert tab_of(probe_api) == "hallucination" and tab_of(share.result_file) is None
    assert wrap_for_zero_gpu(types.SimpleNamespace(fns=fns), limits) == 1
    assert fns[0].fn == ("wrapped", probe_api) and fns[1].fn is counts_table and fns[2].fn is share.result_file
    assert asked == [60]
