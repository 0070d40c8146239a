"""The Positions tab: RoPE read from the model and checked on real vectors, context extension, attention cost."""
from components.registry import TabSpec
from components.tabs.positions.tab import build_positions_tab

SPEC = TabSpec(
    key="positions", label="Positions", order=35, build=build_positions_tab,
    api_names=("rope", "context_extension", "attention_cost"),
    share_params=("pos_i", "pos_j", "offset", "ext_offsets", "ext_factor", "cost_lengths"),
    gpu_seconds=lambda limits: int(min(600, 60 + limits.max_attention_cost_tokens // 16)),
)
