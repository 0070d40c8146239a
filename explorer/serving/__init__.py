"""Serving a room: identical work once, generation batched across users, live numbers.

- ``cache.py``: the result cache (LRU bounded in bytes) with coalescing of identical requests in flight, and
  the cache key (inputs, settings, runtime, code version). Change what a key contains here.
- ``batching.py``: greedy generation batched across users with transformers' continuous batching, on a
  shadow of the shared model. Change the paged-cache size or routing here.
- ``generate.py``: the ``/generate`` path (greedy, batched or one sequence at a time).
- ``stats.py``: the numbers of ``/serving_stats`` (requests, waiting, batch sizes, tokens/s, hits).
- ``compare.py``: one-at-a-time vs static vs continuous batching, measured or read from ``data/serving/``.

Fair turns on the model live in ``explorer/core/turns.py``; the app-level wiring in ``components/serving.py``.
"""
from explorer.serving.batching import Batcher, batcher_for
from explorer.serving.cache import ResultCache, Served, code_version, make_key, mark_served, result_cache
from explorer.serving.generate import GenerateResult, generate
from explorer.serving.compare import Comparison, MethodResult, load_stored, run
from explorer.serving.stats import serving_stats

from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))

__all__ = ["Batcher", "Comparison", "MethodResult", "ResultCache", "Served", "batcher_for", "code_version",
           "generate", "GenerateResult", "load_stored", "make_key", "mark_served", "result_cache", "run", "serving_stats",
           "to_api"]
