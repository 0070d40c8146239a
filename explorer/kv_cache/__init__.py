"""KV cache lens: cache bytes measured while generating, beside the formula, and serving tricks around it.

Where a change goes: growth.py: measured growth; timing.py: with vs without cache; whatif.py: the calculator's model shapes (add a shape here); windowed.py: sliding-window (local) layers' cache size; prefix.py, paged.py, quantized.py: prompt caching, paged blocks, quantised caches.
"""
from explorer.kv_cache.growth import *  # noqa: F401,F403  (re-exports run, iter_run, results, to_api)
