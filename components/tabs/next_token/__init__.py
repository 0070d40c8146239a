"""The Next token tab: loss, perplexity, bits per byte, perplexity by domain, Min-K% Prob and the context window."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.next_token.tab import build_next_token_tab

SPEC = TabSpec(
    key='next_token', label='Next token', order=15, build=build_next_token_tab,
    api_names=('perplexity', 'needle', 'min_k'),
    share_params=('top_k', 'min_k_k', 'needle_lengths', 'needle_depths'),
    gpu={'score': g.generation(default_tokens='max_score_tokens', per_token=0.01),
         'perplexity_api': g.generation(default_tokens='max_score_tokens', per_token=0.01),
         'min_k_api': g.generation(default_tokens='max_score_tokens', per_token=0.01),
         'recompute': g.generation(default_tokens='max_position_tokens', per_token=0.02),
         'positions': g.generation(default_tokens='max_position_tokens', per_token=0.02),
         'live': g.generation(default_tokens='max_score_tokens', per_token=0.02),
         'needle_api': g.generation(count='lengths', default_tokens='max_needle_tokens', per_token=0.01),
         '_branch': g.fixed(20)},
)
