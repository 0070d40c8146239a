"""KV cache lens: cache bytes measured while generating, beside the formula, and serving tricks around it.

Where a change goes:
- measured growth (the main figure, ``/kv_cache``): ``growth.py`` (``run``, ``iter_run``, ``to_api``);
- with vs without the cache: ``timing.py``; prompt (prefix) caching: ``prefix.py``;
- quantised caches (add a backend to ``BACKENDS``): ``quantized.py``; paged blocks: ``paged.py``;
- the calculator's shapes and presets: ``whatif.py`` (model shapes live in ``models/shapes.py``);
- sliding-window (local) layers' cache size: ``windowed.py``.
Every model pass goes through ``Engine.steps`` / ``Engine.forward`` (``explorer/core/engine.py``).
"""
from explorer.kv_cache.growth import (CacheShape, GrowthStep, KVGrowthResult, cache_shape, cap_new_tokens, check_room,
                                      collect, iter_growth, iter_run, measure_cache_bytes, measured_bytes_per_token,
                                      prompt_ids, run, tensor_bytes, to_api)
from explorer.kv_cache.timing import CacheComparison, compare_no_cache, iter_compare

__all__ = ["CacheComparison", "CacheShape", "GrowthStep", "KVGrowthResult", "cache_shape", "cap_new_tokens",
           "check_room", "collect", "compare_no_cache", "iter_compare", "iter_growth", "iter_run",
           "measure_cache_bytes", "measured_bytes_per_token", "prompt_ids", "run", "tensor_bytes", "to_api"]
