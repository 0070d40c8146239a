"""The Decoding tab: strategies side by side, step by step, beam tree, speculative decoding."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.decoding.tab import build_decoding_tab

SPEC = TabSpec(
    key='decoding', label='Decoding', order=40, build=build_decoding_tab,
    api_names=('decode', 'sampler_chain', 'commitment'),
    share_params=('preset', 'max_new_tokens', 'temperature'),
    gpu={name: g.generation('max_new_tokens', count=rows, extra_tokens=16)
         for name, rows in (('_run', 'rows'), ('decode_api', 'strategies'), ('_compare_run', 'rows'))}
        | {'_speculate': g.generation('max_new_tokens', per_token=0.1)}
        | {'_chain': g.fixed(20), 'sampler_chain_api': g.fixed(20)}
        | {'_commitment': g.fixed(20), 'commitment_api': g.fixed(20), '_branch': g.fixed(20)},
    cached=('decode', '_run'),
)
