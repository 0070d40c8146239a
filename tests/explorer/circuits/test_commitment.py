"""The commitment strip against the logit lens read directly: one plain forward of the prompt and the greedy tokens
on a deep copy with ``output_hidden_states=True``, the final norm and ``lm_head`` applied by hand (no engine, no
core read-out), and the greedy tokens against ``model.generate``."""
from __future__ import annotations

import copy

import pytest
import torch

from explorer.circuits.commitment import commitment_layer, run_commitment
from tests.conftest import make_tiny_engine

PROMPT = "The capital of France is"


def direct_layers(model, prompt_ids, generated):
    """Per generated token, the first hidden_states index from which the direct lens's arg-max stays that token."""
    ids = torch.tensor([list(prompt_ids) + list(generated)])
    rows = slice(len(prompt_ids) - 1, len(prompt_ids) + len(generated) - 1)  # the positions predicting each token
    with torch.no_grad():
        states = model(ids, output_hidden_states=True).hidden_states
        inner = torch.stack([model.lm_head(model.model.norm(h[0, rows])).argmax(-1) for h in states[:-1]])
        last = model.lm_head(states[-1][0, rows]).argmax(-1)[None]
        top = torch.cat([inner, last]).T.tolist()  # (generated, num_layers + 1)
    out = []
    for k, token in enumerate(generated):
        first = None
        for index in range(len(top[k]) - 1, -1, -1):
            if top[k][index] != token:
                break
            first = index
        out.append(first)
    return out


@pytest.mark.parametrize("chat", [False, True])
def test_commitment_equals_the_direct_logit_lens(chat):
    engine = make_tiny_engine(num_layers=4, seed=3)
    result = run_commitment(PROMPT, max_new_tokens=6, chat_template=chat, engine=engine)
    ref = copy.deepcopy(engine.model)
    prompt_ids = engine.chat_ids(PROMPT) if chat else engine.encode(PROMPT)
    with torch.no_grad():
        greedy = ref.generate(torch.tensor([prompt_ids]), max_new_tokens=6, do_sample=False,
                              pad_token_id=2)[0, len(prompt_ids):].tolist()
    assert list(result.ids) == greedy[:len(result.ids)]
    assert list(result.layers) == direct_layers(ref, prompt_ids, list(result.ids))
    assert all(layer is not None and 0 <= layer <= 4 for layer in result.layers)
    api = result.to_api()
    assert [t["layer"] for t in api["tokens"]] == list(result.layers) and api["num_layers"] == 4
    assert [t["text"] for t in api["tokens"]] == [engine.tokenizer.decode([i]) for i in result.ids]


def test_commitment_layer_rule():
    assert commitment_layer([5, 7, 7, 7], 7) == 1
    assert commitment_layer([7, 5, 7, 7], 7) == 2
    assert commitment_layer([7, 7, 7, 7], 7) == 0
    assert commitment_layer([7, 7, 7, 5], 7) is None


def test_commitment_bad_input(tiny_engine):
    with pytest.raises(ValueError, match="text"):
        run_commitment("  ", engine=tiny_engine)
    with pytest.raises(ValueError, match="max_new_tokens"):
        run_commitment("Hi", max_new_tokens=0, engine=tiny_engine)


def test_commitment_on_gemma_equals_the_direct_lens(gemma):
    result = run_commitment("The capital of France is", max_new_tokens=3, chat_template=False, engine=gemma)
    ids = gemma.encode("The capital of France is")
    assert list(result.layers) == direct_layers(gemma.model, ids, list(result.ids))
    assert result.num_layers == 18 and all(layer is not None for layer in result.layers)
