"""The Circuits tab: head detectors, activation patching with its causal cone, ablation, direct logit attribution."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.circuits.tab import build_circuits_tab

SPEC = TabSpec(
    key='circuits', label='Circuits', order=95, build=build_circuits_tab,
    api_names=('heads', 'patch', 'ablate', 'dla', 'branch', 'steer', 'steer_sweep'),
    share_params=('kind', 'n', 'pair', 'site', 'clean', 'corrupted', 'answer', 'wrong_answer', 'components', 'mode',
                  'position', 'token'),
    gpu={'_heads': g.fixed(20), 'heads_api': g.fixed(20), '_patch': g.fixed(60), 'patch_api': g.fixed(60),
         '_ablate': g.fixed(30), 'ablate_api': g.fixed(30), '_dla': g.fixed(15), 'dla_api': g.fixed(15),
         '_alternatives': g.fixed(20), '_branch': g.fixed(20), 'branch_api': g.fixed(20),
         '_steer': g.fixed(30), 'steer_api': g.fixed(30), '_sweep': g.fixed(60), 'steer_sweep_api': g.fixed(60)},
    cached=('heads', 'patch', 'ablate', 'dla', '_heads', '_patch', '_ablate', '_dla'),
)
