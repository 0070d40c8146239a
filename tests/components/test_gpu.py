"""ZeroGPU wrapping: off without the spaces package, durations follow the caps."""
from components.gpu import gpu_duration, wrap_for_zero_gpu, zero_gpu_available
from explorer.core.config import Limits


def test_not_wrapped_off_zero_gpu(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not zero_gpu_available()
    assert wrap_for_zero_gpu(object(), Limits()) == 0


def test_durations_follow_caps():
    assert gpu_duration("lora_train", Limits(max_run_seconds=123)) == 123
    assert gpu_duration("decode", Limits(max_new_tokens=64, max_samples=2)) < gpu_duration(
        "decode", Limits(max_new_tokens=256, max_samples=2))
    assert gpu_duration("tokenize", Limits()) == 60
