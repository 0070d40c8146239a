"""The Inspector tab: one token through every lens, opened by a click on a token in any tab."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.inspect.tab import build_inspect_tab

SPEC = TabSpec(
    key='inspect', label='Inspector', order=90, build=build_inspect_tab,
    api_names=('inspect',),
    share_params=('position', 'chat'),
    # one analysis per text: the reference pass (attention, hidden states), the reference logits, the int8 and NF4
    # copies' passes and, with the chat template, the greedy answer: about four passes over the prompt's tokens
    gpu={'_inspect': g.generation(default_tokens='max_attention_tokens', per_token=0.02, extra_tokens=64),
         'inspect_api': g.generation(default_tokens='max_attention_tokens', per_token=0.02, extra_tokens=64),
         '_commitment': g.fixed(20), '_branch': g.fixed(20)},
)
