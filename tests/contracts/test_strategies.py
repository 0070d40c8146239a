"""Contract: every decoding strategy in the registry runs on the tiny model and returns what it describes.

A new strategy is tested by adding it to ``explorer.decoding.strategies.STRATEGIES`` (and, if it needs
parameters to be meaningful, a line in ``EXAMPLES``)."""
from __future__ import annotations

import numpy as np
import pytest

from explorer import decoding
from explorer.decoding.strategies import STRATEGIES, parse_strategy

# Optional non-default parameters per strategy (an entry missing here runs with its defaults).
EXAMPLES = {"beam": {"num_beams": 2}, "sampling": {"temperature": 0.8, "seed": 3}}
NEW_TOKENS = 5


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategy_describes_itself(name):
    spec = STRATEGIES[name]
    assert spec.name == name and spec.label and len(spec.explanation) > 20
    assert callable(spec.loop) and isinstance(spec.params, tuple)
    assert ("seed" in spec.params) == spec.do_sample  # a sampled strategy takes a seed, a deterministic one none


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategy_runs_on_tiny_model(tiny_engine, name):
    raw = {"name": name, **EXAMPLES.get(name, {})}
    strategy = parse_strategy(raw, int(tiny_engine.config.vocab_size), 8)
    result = decoding.run("Tell me about the sea.", strategies=[strategy], max_new_tokens=NEW_TOKENS,
                          engine=tiny_engine)
    run = result.runs[0]
    assert run.strategy == name and 1 <= len(run.token_ids) <= NEW_TOKENS  # max_new_tokens = tokens generated
    assert run.token_logprobs.shape == run.token_ids.shape and np.all(run.token_logprobs <= 0)
    assert (run.steps is None) != (run.beam is None)  # each loop records its own kind of trace
    if run.steps is not None:
        assert run.steps.chosen_ids.tolist() == run.token_ids.tolist()
    assert run.seed == (strategy.seed if STRATEGIES[name].do_sample else None)
    assert result.provenance.kind == "measured"
    again = decoding.run("Tell me about the sea.", strategies=[strategy], max_new_tokens=NEW_TOKENS,
                         engine=tiny_engine).runs[0]
    assert again.token_ids.tolist() == run.token_ids.tolist()  # deterministic, or reproducible from its seed
    api = decoding.to_api(result)
    assert api["runs"][0]["strategy"] == name and api["provenance"]["kind"] == "measured"
