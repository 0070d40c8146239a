"""The KV cache tab: measured cache growth, with vs without cache, the what-if calculator."""
from components.registry import TabSpec
from components.tabs.kv_cache.tab import build_kv_cache_tab

SPEC = TabSpec(
    key='kv_cache', label='KV cache', order=30, build=build_kv_cache_tab,
    api_names=('kv_cache',),
    share_params=('new_tokens', 'whatif_model', 'whatif_context', 'whatif_batch', 'whatif_cache_dtype', 'whatif_weight_dtype', 'whatif_kv_heads'),
    gpu_seconds=lambda limits: int(min(600, 30 + 0.25 * limits.max_new_tokens * max(1, limits.max_samples // 2))),
    cached=('kv_cache', 'measure'),
)
