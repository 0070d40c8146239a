"""The Decoding tab: strategies side by side, step by step, beam tree, speculative decoding."""
from components.registry import TabSpec
from components.tabs.decoding.tab import build_decoding_tab

SPEC = TabSpec(
    key='decoding', label='Decoding', order=40, build=build_decoding_tab,
    api_names=('decode',),
    share_params=('preset', 'max_new_tokens', 'temperature'),
    gpu_seconds=lambda limits: int(min(600, 30 + 0.25 * limits.max_new_tokens * max(1, limits.max_samples // 2))),
    cached=('decode', '_run'),
)
