"""One-at-a-time vs static batching vs continuous batching on a mixed-length request set (same tokens).

- **one at a time**: each request runs alone on ``Engine.steps`` (greedy), one after another; a request's
  latency includes its wait for the ones before it.
- **static batching**: all requests padded (left) into one ``model.generate`` call with the longest
  ``max_new_tokens``; every request finishes when the batch does, and each keeps only its own tokens.
- **continuous batching**: all requests given at once to transformers' continuous batching
  (:mod:`explorer.serving.batching`); a short request leaves the batch as soon as it is done.

Throughput = useful generated tokens / wall seconds. The handbook's figure for continuous batching is
"5-10x" over static batching on GPU servers; this measures the embedded model on this machine.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np

from explorer.core.config import data_path
from explorer.core.provenance import Provenance, measured, stored

METHODS = ("one_at_a_time", "static", "continuous")
HANDBOOK_CLAIM = ("5-10x throughput for mixed-length workloads (handbook, \"Continuous Batching\"; vLLM, TGI "
                  "on GPU servers)")
STORE = data_path("serving", "batching_comparison.json")
PROMPTS = (  # mixed lengths: short answers finish early and, under continuous batching, leave the batch
    ("Say hi.", 4), ("What is the capital of France?", 24), ("Name a colour.", 6),
    ("Write two sentences about the sea.", 32), ("What is 2 + 2?", 8), ("Explain what a token is.", 24),
    ("Give one fruit.", 4), ("What does a KV cache store?", 16),
)


@dataclass(frozen=True)
class MethodResult:
    """One method: ``seconds`` wall time for the whole set, ``tokens`` useful generated tokens,
    ``tokens_per_s``, ``latency_ms`` per request ``(n_requests,)`` (from the start of the set to its last token),
    ``token_ids`` per request."""

    method: str
    seconds: float
    tokens: int
    tokens_per_s: float
    latency_ms: tuple[float, ...]
    token_ids: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Comparison:
    """The three methods on the same requests; ``same_tokens`` is True when every method produced the same ids
    for every request; ``max_new_tokens`` per request; ``provenance`` says measured now or stored."""

    model: str
    max_new_tokens: tuple[int, ...]
    prompt_tokens: tuple[int, ...]
    methods: tuple[MethodResult, ...]
    same_tokens: bool
    provenance: Provenance
    settings: dict

    def speedup(self, method: str, over: str) -> float:
        """Throughput of ``method`` divided by that of ``over``."""
        by = {m.method: m for m in self.methods}
        return by[method].tokens_per_s / by[over].tokens_per_s if by[over].tokens_per_s else 0.0

    def to_api(self) -> dict:
        """JSON form (the stored file's ``result``)."""
        return {"model": self.model, "max_new_tokens": list(self.max_new_tokens),
                "prompt_tokens": list(self.prompt_tokens), "same_tokens": self.same_tokens,
                "methods": [{"method": m.method, "seconds": m.seconds, "tokens": m.tokens,
                             "tokens_per_s": m.tokens_per_s, "latency_ms": list(m.latency_ms),
                             "token_ids": [list(t) for t in m.token_ids]} for m in self.methods],
                "speedup_continuous_over_static": self.speedup("continuous", "static"),
                "speedup_continuous_over_one_at_a_time": self.speedup("continuous", "one_at_a_time"),
                "handbook": HANDBOOK_CLAIM, "settings": self.settings, "provenance": self.provenance.to_api()}


def _trim(ids: list[int], eos: set[int], n: int) -> tuple[int, ...]:
    out = []
    for t in ids[:n]:
        out.append(int(t))
        if t in eos:
            break
    return tuple(out)


def _one_at_a_time(engine, prompts, news, eos):
    start = time.perf_counter()
    ids, lat = [], []
    for p, n in zip(prompts, news):
        ids.append(engine.greedy_continuation(p, n).tokens)
        lat.append((time.perf_counter() - start) * 1000.0)
    return time.perf_counter() - start, ids, lat


def _static(engine, prompts, news, eos):
    import torch

    pad = engine.tokenizer.pad_token_id
    pad = sorted(eos)[0] if pad is None else pad
    width = max(len(p) for p in prompts)
    input_ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=engine.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=engine.device)
    from explorer.core.copies import shadow_copy

    model = shadow_copy(engine.model)  # shares the weights; its own config, so no lock is held for the whole batch
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=False,
                             max_new_tokens=max(news), pad_token_id=pad, eos_token_id=sorted(eos))
    seconds = time.perf_counter() - start
    ids = [_trim(row[width:].tolist(), eos, n) for row, n in zip(out, news)]
    return seconds, ids, [seconds * 1000.0] * len(prompts)


def _continuous(engine, prompts, news, eos):
    from concurrent.futures import ThreadPoolExecutor

    from explorer.serving.batching import batcher_for

    batcher = batcher_for(engine)
    batcher.generate([prompts[0]], 1)  # start the manager outside the clock
    start = time.perf_counter()

    def one(i):
        ids = batcher.generate([prompts[i]], news[i])[0]
        return tuple(ids), (time.perf_counter() - start) * 1000.0

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        results = list(pool.map(one, range(len(prompts))))
    return time.perf_counter() - start, [r[0] for r in results], [r[1] for r in results]


def run(model: str | None = None, requests: tuple = PROMPTS, engine=None) -> Comparison:
    """Measure the three methods on ``requests`` (``(prompt, max_new_tokens)`` pairs, chat-templated).

    Takes both cores for about a minute on the embedded model. Returns a :class:`Comparison`.

    Raises:
        ValueError: the model is not a causal language model.
    """
    from explorer.core.engine import get_engine

    engine = engine or get_engine(model)
    if not engine.is_causal:
        raise ValueError(f"{engine.name} is an encoder; the batching comparison needs a causal language model.")
    prompts = [engine.chat_ids(p) for p, _ in requests]
    news = [int(n) for _, n in requests]
    eos = engine.eos_token_ids()
    rows = []
    all_ids = []
    for method, fn in (("one_at_a_time", _one_at_a_time), ("static", _static), ("continuous", _continuous)):
        seconds, ids, lat = fn(engine, prompts, news, eos)
        ids = [_trim(list(i), eos, n) for i, n in zip(ids, news)]
        tokens = sum(len(i) for i in ids)
        rows.append(MethodResult(method, seconds, tokens, tokens / seconds if seconds else 0.0,
                                 tuple(float(x) for x in lat), tuple(ids)))
        all_ids.append(ids)
    same = all(a == all_ids[0] for a in all_ids[1:])
    return Comparison(engine.name, tuple(news), tuple(len(p) for p in prompts), tuple(rows), same,
                      measured("explorer.serving.compare.run: Engine.steps vs model.generate (padded batch) vs "
                               "transformers continuous batching", engine.name),
                      {"requests": [list(r) for r in requests]})


def from_api(data: dict, provenance: Provenance) -> Comparison:
    """A :class:`Comparison` from its :meth:`Comparison.to_api` form."""
    methods = tuple(MethodResult(m["method"], m["seconds"], m["tokens"], m["tokens_per_s"], tuple(m["latency_ms"]),
                                 tuple(tuple(t) for t in m["token_ids"])) for m in data["methods"])
    return Comparison(data["model"], tuple(data["max_new_tokens"]), tuple(data["prompt_tokens"]), methods,
                      bool(data["same_tokens"]), provenance, data.get("settings", {}))


def load_stored(path: str = STORE) -> Comparison | None:
    """The stored comparison written by ``python bench/bench_serving.py --write`` (None when absent)."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        doc = json.load(handle)
    root = os.path.dirname(os.path.dirname(os.path.dirname(path)))  # <root>/data/serving/<file>: "data/serving/..."
    prov = stored(os.path.relpath(path, root), doc.get("command", ""),
                  when=doc.get("unix_time"), model=doc["result"]["model"])
    result = from_api(doc["result"], prov)
    if doc.get("note"):
        result.settings["note"] = doc["note"]  # e.g. how busy the machine was while measuring
    return result


def write_stored(result: Comparison, command: str, path: str = STORE) -> str:
    """Write ``result`` with how it was made (command, date, library versions, machine); returns the path."""
    import platform

    import torch
    import transformers

    os.makedirs(os.path.dirname(path), exist_ok=True)
    doc = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "unix_time": time.time(),
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "python": platform.python_version()},
           "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                       "load_average_1_5_15_min_at_end": list(os.getloadavg())},
           "result": result.to_api()}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1)
    return path


def latency_summary(result: Comparison) -> list[dict]:
    """Per method: ``{"method", "tokens_per_s", "p50_ms", "p95_ms", "seconds"}`` for tables."""
    return [{"method": m.method, "tokens_per_s": round(m.tokens_per_s, 2),
             "p50_ms": round(float(np.percentile(m.latency_ms, 50)), 1),
             "p95_ms": round(float(np.percentile(m.latency_ms, 95)), 1), "seconds": round(m.seconds, 2)}
            for m in result.methods]
