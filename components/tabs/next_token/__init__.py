"""The Next token tab: loss, perplexity, bits per byte, perplexity by domain, Min-K% Prob and the context window."""
from components.registry import TabSpec
from components.tabs.next_token.tab import build_next_token_tab

SPEC = TabSpec(
    key='next_token', label='Next token', order=15, build=build_next_token_tab,
    api_names=('perplexity', 'needle', 'min_k'),
    share_params=('top_k', 'min_k_k', 'needle_lengths', 'needle_depths'),
    gpu_seconds=lambda limits: int(min(600, 30 + 0.05 * limits.max_needle_tokens * limits.max_needle_cells / 16)),
)
