"""KV cache benchmark: decode ms/token with vs without the cache at positions 32, 256 and 1,024, and
decode tokens/s against the memory-bandwidth bound measured in the same run.

Decoding one token reads every weight once, so tokens/s <= memory bandwidth / bytes of weights (+ KV
cache) read per token (Pope et al. 2022, arXiv:2211.05102, section 2; the "memory-bound decode"
argument). Bandwidth comes from a large tensor copy (bytes read + bytes written per second).

Run: ``OMP_NUM_THREADS=2 .venv/bin/python bench/bench_kv_cache.py [--repeats N] [--positions 32,256,1024]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

from common import report, timed  # noqa: E402  (common puts the repo root on sys.path)

from explorer import kv_cache
from explorer.core.engine import get_engine

TEXT = ("The key-value cache keeps the keys and values of every earlier token in every layer, so each new token "
        "only attends to what is stored instead of recomputing the whole prefix. ")


def ids_of_length(engine, n: int) -> list[int]:
    """``n`` real token ids (the text repeated)."""
    ids = engine.encode(TEXT * (n // 20 + 2), max_tokens=engine.context_length())
    return ids[:n]


def _sync(engine) -> None:
    """Wait for queued GPU work so wall times are real (no-op on CPU)."""
    import torch

    if engine.device.type == "cuda":
        torch.cuda.synchronize()


def cached_step_ms(engine, ids: list[int], repeats: int) -> float:
    """Median ms of one decode step with ``len(ids)`` tokens already cached (the step is cropped and redone)."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=engine.model.config)
    with engine.session():
        engine.model(input_ids=torch.tensor([ids[:-1]], device=engine.device), past_key_values=cache, use_cache=True)
    step = torch.tensor([ids[-1:]], device=engine.device)
    times = []
    for _ in range(repeats + 1):
        with engine.session():
            start = time.perf_counter()
            int(engine.model(input_ids=step, past_key_values=cache, use_cache=True).logits[0, -1].argmax())
            times.append((time.perf_counter() - start) * 1000.0)
            cache.crop(-1)
    return statistics.median(times[1:])


def uncached_step_ms(engine, ids: list[int], repeats: int) -> float:
    """Median ms of one decode step without a cache: a forward pass over all ``len(ids)`` tokens."""
    import torch

    full = torch.tensor([ids], device=engine.device)
    times = []
    for _ in range(repeats):
        with engine.session():
            start = time.perf_counter()
            int(engine.model(input_ids=full, use_cache=False).logits[0, -1].argmax())
            times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def copy_bandwidth_bytes_per_s(engine, n_bytes: int = 256 << 20, repeats: int = 5) -> float:
    """Memory bandwidth from copying a ``n_bytes`` float32 tensor on the model's device:
    (read + write bytes) / best time."""
    import torch

    src = torch.ones(n_bytes // 4, dtype=torch.float32, device=engine.device)
    dst = torch.empty_like(src)
    dst.copy_(src)

    def copy():
        dst.copy_(src)
        _sync(engine)

    best = min(timed(copy, repeats))
    return 2 * n_bytes / best


def weight_bytes(model) -> int:
    """Bytes of the weights a decode step reads (tied embedding / lm_head counted once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def main(argv: list[str] | None = None) -> None:
    """Print the benchmark lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--positions", default="32,256,1024")
    args = parser.parse_args(argv)
    engine = get_engine()
    shape = kv_cache.cache_shape(engine)
    positions = [int(p) for p in args.positions.split(",")]
    cached = {}
    for pos in positions:
        ids = ids_of_length(engine, pos)
        cached[pos] = cached_step_ms(engine, ids, max(5, args.repeats))
        uncached = uncached_step_ms(engine, ids, args.repeats)
        report(f"decode_ms_per_token_with_cache@{pos}", cached[pos], "ms")
        report(f"decode_ms_per_token_no_cache@{pos}", uncached, "ms", baseline=cached[pos],
               baseline_name=f"with_cache@{pos}")
    bandwidth = copy_bandwidth_bytes_per_s(engine)
    report("copy_bandwidth", bandwidth / 1e9, "GB/s")
    first = positions[0]
    read_bytes = weight_bytes(engine.model) + shape.formula_bytes(first)
    report(f"bytes_read_per_token@{first}", read_bytes / 1e6, "MB")
    bound = bandwidth / read_bytes
    tokens_per_s = 1000.0 / cached[first]
    report(f"decode_tokens_per_s_with_cache@{first}", tokens_per_s, "tokens/s", baseline=bound,
           baseline_name="bandwidth_bound")
    report("share_of_bandwidth_bound", 100.0 * tokens_per_s / bound, "%")
    print(f"device: {engine.device}, dtype: {shape.dtype}, torch threads: {__import__('torch').get_num_threads()}",
          flush=True)


if __name__ == "__main__":
    main()
