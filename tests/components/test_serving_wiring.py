"""The app-level serving wrapper: one computation per identical request, never for sampling without a seed,
generators stay generators, the per-session limit on requests in flight."""
import inspect

import pytest

from components import serving as S
from explorer.serving import stats
from explorer.serving.cache import result_cache


def test_wrapped_handler_computes_identical_requests_once_and_marks_cached():
    calls = []

    def tokenize_api(text: str, tokenizers: list[str] | None = None) -> dict:
        calls.append(text)
        return {"tokenizers": [{"count": len(text)}]}

    wrapped = S.serve(tokenize_api, "tokens", "test-tokenize", cache=True)
    assert inspect.signature(wrapped) == inspect.signature(tokenize_api)
    first = wrapped("a unique text for this test", None)
    second = wrapped("a unique text for this test", None)
    third = wrapped("a unique text for this test!", None)
    assert calls == ["a unique text for this test", "a unique text for this test!"]
    assert "provenance" not in first and second["provenance"]["kind"] == "cached"
    assert second["tokenizers"] == first["tokenizers"] and third["tokenizers"][0]["count"] == 28


def test_generators_stay_generators_and_replay_the_final_item():
    calls = []

    def measure(text, n):
        calls.append(text)
        for i in range(3):
            yield (f"{text} {i}", i)

    wrapped = S.serve(measure, "kv_cache", "test-measure", cache=True)
    assert inspect.isgeneratorfunction(wrapped)
    assert list(wrapped("growth", 3)) == [("growth 0", 0), ("growth 1", 1), ("growth 2", 2)]
    assert list(wrapped("growth", 3)) == [("growth 2", 2)] and len(calls) == 1


def test_sampling_without_a_seed_is_never_cached():
    assert not S.deterministic(("Hi", "m", [{"name": "sampling", "temperature": 0.7}], 8))
    assert S.deterministic(("Hi", "m", [{"name": "sampling", "temperature": 0.7, "seed": 3}], 8))
    assert S.deterministic(("Hi", "m", [{"name": "greedy"}, {"name": "beam", "num_beams": 4}], 8))
    assert not S.deterministic(("Hi", "m", [["sampling", "0.7", "", ""]], 8))
    assert S.deterministic(("Hi", "m", [["sampling", "0.7", "", "42"]], 8))
    calls = []

    def decode_api(text, model, strategies, n):
        calls.append(1)
        return {"runs": [len(calls)]}

    wrapped = S.serve(decode_api, "decoding", "test-decode", cache=True)
    unseeded = [{"name": "sampling"}]
    assert wrapped("Hi", "m", unseeded, 4) != wrapped("Hi", "m", unseeded, 4) and len(calls) == 2


def test_per_session_limit_on_requests_in_flight():
    stats.request_started("m", "session-a", limit=2)
    stats.request_started("m", "session-a", limit=2)
    with pytest.raises(stats.TooManyRequests, match="limit is 2"):
        stats.request_started("m", "session-a", limit=2)
    stats.request_started("m", "session-b", limit=2)  # another session is not held up
    for session in ("session-a", "session-a", "session-b"):
        stats.request_finished("m", session)
    assert stats.in_flight("session-a") == 0
    assert result_cache().max_bytes > 0
