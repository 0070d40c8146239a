"""The KV cache tab: measured cache growth, with vs without cache, the what-if calculator."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.kv_cache.tab import build_kv_cache_tab

SPEC = TabSpec(
    key='kv_cache', label='KV cache', order=30, build=build_kv_cache_tab,
    api_names=('kv_cache',),
    share_params=('new_tokens', 'whatif_model', 'whatif_context', 'whatif_batch', 'whatif_cache_dtype', 'whatif_weight_dtype', 'whatif_kv_heads'),
    gpu={'measure': g.generation('n'), 'compare': g.generation('n', per_token=0.1), 'quant': g.generation('n'),
         'prefix': g.generation('n', per_token=0.1), 'kv_cache_api': g.generation('max_new_tokens'),
         'paged': g.fixed(10)},
    cached=('kv_cache', 'measure'),
)
