"""The Quantisation tab: reference vs bf16/fp16/int8/NF4/FP4."""
from components.registry import TabSpec
from components.tabs.quantization.tab import build_quantization_tab

SPEC = TabSpec(
    key='quantization', label='Quantisation', order=50, build=build_quantization_tab,
    api_names=('quantize',),
    share_params=('methods', 'new_tokens', 'threshold', 'block', 'double'),
    gpu_seconds=lambda limits: int(min(600, 30 + 0.25 * limits.max_new_tokens * max(1, limits.max_samples // 2))),
    cached=('quantize', 'quantize_compare'),
)
