"""The Hallucination tab: probes, attribution, AUROC of each probe."""
from components.registry import TabSpec
from components.tabs.hallucination.tab import build_hallucination_tab

SPEC = TabSpec(
    key='hallucination', label='Hallucination', order=70, build=build_hallucination_tab,
    api_names=('probe', 'attribute'),
    share_params=('probes', 'n_samples', 'seed', 'context'),
    gpu_seconds=lambda limits: int(limits.max_probe_seconds * 4),
    cached=('probe', 'run_probes'),
)
