"""The Serving tab: live numbers of this server and a measured batching comparison."""
from components.registry import TabSpec
from components.tabs.serving.tab import build_serving_tab

SPEC = TabSpec(
    key="serving", label="Serving", order=75, build=build_serving_tab,
    api_names=("serving_stats", "generate"),
    cached=("generate",),
    share_params=(),
    gpu_seconds=lambda limits: 180,
)
