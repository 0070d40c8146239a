"""The result cache: identical requests computed once, never across differing inputs or code versions."""
import threading
import time
from dataclasses import dataclass

import pytest

from explorer.core.provenance import Provenance, measured
from explorer.serving import cache as C


def test_two_identical_concurrent_requests_compute_once():
    rc = C.ResultCache(max_bytes=1 << 20)
    calls, started = [], threading.Event()

    def compute():
        calls.append(1)
        started.set()
        time.sleep(0.3)
        return {"answer": 42}

    key = C.make_key("tokens", "tokenize", ("same text", None))
    out = [None, None]

    def first():
        out[0] = rc.call(key, compute)

    def second():
        started.wait(5)
        out[1] = rc.call(C.make_key("tokens", "tokenize", ("same text", None)), compute)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1
    assert out[0][0] == out[1][0] == {"answer": 42}
    assert (out[0][1].how, out[1][1].how) == ("computed", "coalesced")
    assert rc.coalesced == 1 and rc.misses == 1
    value, served = rc.call(key, compute)  # a later visitor: stored, still one computation
    assert served.how == "cached" and value == {"answer": 42} and len(calls) == 1 and rc.hits == 1


def test_key_differs_for_any_input_setting_or_code_version(monkeypatch):
    base = C.make_key("decoding", "decode", ("Hi", "smollm2-135m-instruct", [{"name": "greedy"}], 8))
    variants = [
        ("decoding", "decode", ("Hi!", "smollm2-135m-instruct", [{"name": "greedy"}], 8)),
        ("decoding", "decode", ("Hi", "all-minilm-l6-v2", [{"name": "greedy"}], 8)),
        ("decoding", "decode", ("Hi", "smollm2-135m-instruct", [{"name": "beam"}], 8)),
        ("decoding", "decode", ("Hi", "smollm2-135m-instruct", [{"name": "greedy"}], 9)),
        ("attention", "decode", ("Hi", "smollm2-135m-instruct", [{"name": "greedy"}], 8)),
        ("decoding", "_run", ("Hi", "smollm2-135m-instruct", [{"name": "greedy"}], 8)),
    ]
    keys = {C.make_key(*v) for v in variants}
    assert base not in keys and len(keys) == len(variants)
    assert C.make_key("decoding", "decode", ("Hi", "smollm2-135m-instruct", [{"name": "greedy"}], 8)) == base
    # a new code version never sees the old entry
    rc = C.ResultCache(max_bytes=1 << 20)
    rc.call(base, lambda: "old code's answer", version=C.code_version("decoding"))
    monkeypatch.setattr(C, "code_version", lambda lens: "0.1.0+changed")
    newer = C.make_key("decoding", "decode", ("Hi", "smollm2-135m-instruct", [{"name": "greedy"}], 8))
    assert newer != base
    value, served = rc.call(newer, lambda: "new code's answer")
    assert (value, served.how) == ("new code's answer", "computed")


def test_code_version_is_package_version_plus_source_hash():
    version = C.code_version("kv_cache")
    assert version.startswith(C.package_version() + "+") and len(version.split("+")[1]) == 16
    assert C.code_version("kv_cache") != C.code_version("tokens")


def test_lru_is_bounded_in_bytes():
    rc = C.ResultCache(max_bytes=40_000)
    for i in range(20):
        rc.put(f"k{i}", "x" * 5_000)
    assert rc.bytes <= 40_000 and rc.get("k0") is None and rc.get("k19") is not None
    assert not rc.put("huge", "y" * 20_000)  # over a quarter of the budget: not stored


def test_errors_and_cut_short_streams_are_not_stored():
    rc = C.ResultCache(max_bytes=1 << 20)
    with pytest.raises(ValueError):
        rc.call("k", lambda: (_ for _ in ()).throw(ValueError("bad prompt")))
    assert rc.get("k") is None
    gen = rc.stream("s", lambda: iter([1, 2, 3]))
    assert next(gen)[0] == 1
    gen.close()  # Stop pressed after the first redraw
    assert rc.get("s") is None
    items = list(rc.stream("s", lambda: iter([1, 2, 3])))
    assert [i for i, _ in items] == [1, 2, 3]
    again = list(rc.stream("s", lambda: iter([9])))
    assert [(i, s.how) for i, s in again] == [(3, "cached")]


@dataclass(frozen=True)
class _Result:
    value: int
    provenance: Provenance


def test_served_results_say_cached_and_when():
    prov = measured("engine forward", "smollm2-135m-instruct")
    served = C.Served("cached", prov.when)
    out = C.mark_served((_Result(1, prov), {"tokens": [1]}, {"__type__": "update", "value": 2}), served)
    assert out[0].provenance.kind == "cached" and out[0].provenance.when == prov.when
    assert out[1]["provenance"]["kind"] == "cached" and out[1]["provenance"]["when"] == prov.when
    assert "provenance" not in out[2]
    assert C.mark_served(_Result(1, prov), C.Served("computed", 0)).provenance.kind == "measured"
