"""The Attention tab: every layer x head, one head in detail, rollout, the generation timeline."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.attention.tab import build_attention_tab

SPEC = TabSpec(
    key='attention', label='Attention', order=20, build=build_attention_tab,
    api_names=('attention',),
    share_params=('stat', 'hide_sink', 'mode', 'layer', 'head', 'layer_b', 'head_b', 'new_tokens'),
    gpu={'_capture': g.generation(extra_tokens=0, default_tokens='max_attention_tokens', per_token=0.02),
         'attention_api': g.generation(default_tokens='max_attention_tokens', per_token=0.02),
         '_generate': g.generation('new_tokens', default_tokens='max_attention_steps', per_token=0.1)},
    cached=('attention', '_capture'),
)
