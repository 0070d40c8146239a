"""The Attention tab: every layer x head, one head in detail, rollout, the generation timeline."""
from components.registry import TabSpec
from components.tabs.attention.tab import build_attention_tab

SPEC = TabSpec(
    key='attention', label='Attention', order=20, build=build_attention_tab,
    api_names=('attention',),
    share_params=('stat', 'hide_sink', 'mode', 'layer', 'head', 'layer_b', 'head_b', 'new_tokens'),
    gpu_seconds=lambda limits: int(min(600, 30 + 0.25 * limits.max_new_tokens * max(1, limits.max_samples // 2))),
    cached=('attention', '_capture'),
)
