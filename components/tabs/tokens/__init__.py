"""The Tokens tab: how text becomes token ids."""
from components.registry import TabSpec
from components.tabs.tokens.tab import build_tokens_tab

SPEC = TabSpec(
    key='tokens', label='Tokens', order=10, build=build_tokens_tab,
    api_names=('tokenize',),
    share_params=('selected', 'parse_special', 'show_ids'),
    cached=('tokenize', 'show_tokens'),
)
