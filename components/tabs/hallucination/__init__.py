"""The Hallucination tab: probes, attribution, AUROC of each probe."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.hallucination.tab import build_hallucination_tab

SPEC = TabSpec(
    key='hallucination', label='Hallucination', order=70, build=build_hallucination_tab,
    api_names=('probe', 'attribute'),
    share_params=('probes', 'n_samples', 'seed', 'context'),
    gpu={name: g.generation(samples='n_samples', count='probes', extra_tokens=32)
         for name in ('run_probes', 'probe_api')}
        | {'compare': g.generation(samples='n_samples', count='fictitious', extra_tokens=32),
           'run_attribution': g.fixed(60), 'attribute_api': g.fixed(60)},
    cached=('probe', 'run_probes'),
)
