"""The Positions tab: RoPE read from the model and checked on real vectors, context extension, attention cost."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.positions.tab import build_positions_tab

SPEC = TabSpec(
    key="positions", label="Positions", order=35, build=build_positions_tab,
    api_names=("rope", "context_extension", "attention_cost"),
    share_params=("pos_i", "pos_j", "offset", "ext_offsets", "ext_factor", "cost_lengths"),
    gpu={'rotate_and_compare': g.fixed(10), 'rope_api': g.fixed(10),
         'extend': g.generation(count='offs', default_tokens='max_position_tokens', per_token=0.01),
         'context_extension_api': g.generation(count='offsets', default_tokens='max_position_tokens', per_token=0.01),
         'measure': g.generation(default_tokens='max_attention_cost_tokens', per_token=0.02),
         'attention_cost_api': g.generation(count='lengths', default_tokens='max_attention_cost_tokens',
                                            per_token=0.01)},
)
