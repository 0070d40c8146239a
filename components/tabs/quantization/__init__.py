"""The Quantisation tab: reference vs bf16/fp16/int8/NF4/FP4."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.quantization.tab import build_quantization_tab

SPEC = TabSpec(
    key='quantization', label='Quantisation', order=50, build=build_quantization_tab,
    api_names=('quantize',),
    share_params=('methods', 'new_tokens', 'threshold', 'block', 'double'),
    gpu={name: g.generation(tokens, count='methods', per_token=0.1, extra_tokens=16)
         for name, tokens in (('_run', 'new_tokens'), ('_compare_run', 'new_tokens'), ('quantize_api', None),
                              ('_passage', 'max_tokens'))}
        | {'_where': g.fixed(30)},
    cached=('quantize', 'quantize_compare'),
)
