"""The Serving tab: live numbers of this server and a measured batching comparison."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.serving.tab import build_serving_tab

SPEC = TabSpec(
    key="serving", label="Serving", order=75, build=build_serving_tab,
    api_names=("serving_stats", "generate"),
    cached=("generate",),
    share_params=(),
    gpu={'measure': g.fixed(60), 'generate_api': g.generation('max_new_tokens')},
)
