"""The steering sweep on a tiny model against a reference per cell: a deep copy with a plain
``register_forward_hook`` adding the cell's vector, ``model.generate`` greedy (its scores give the marker ratio), and
the perplexity from transformers' own loss (``labels``) on the unhooked copy; plus bad input and a parallel user."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from explorer.circuits.steering import SETS, steering_vector
from explorer.circuits.sweep import marker_ids, run_sweep
from tests.conftest import make_tiny_engine

PROMPT = "The film was"


def reference_cell(engine, ref, layer, strength, n, markers):
    """Greedy tokens, perplexity under the unhooked copy and mean marker log-ratio of one steered cell."""
    ids = engine.encode(PROMPT)
    handle = None
    if layer is not None:
        delta = steering_vector(engine, *SETS["sentiment"], layer).added(strength)

        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            return (hidden + delta,) + tuple(output[1:]) if isinstance(output, tuple) else hidden + delta

        handle = ref.model.layers[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = ref.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, output_scores=True,
                               return_dict_in_generate=True, pad_token_id=2)
    finally:
        if handle is not None:
            handle.remove()
    tokens = out.sequences[0, len(ids):].tolist()
    ratios = [float(torch.logsumexp(s[0, markers[0]], 0) - torch.logsumexp(s[0, markers[1]], 0))
              for s in out.scores]
    full = torch.tensor([ids + tokens])
    labels = full.clone()
    labels[0, :len(ids)] = -100
    with torch.no_grad():
        loss = float(ref(full, labels=labels).loss)
    return tokens, math.exp(loss), sum(ratios) / len(ratios)


def test_sweep_cells_equal_the_plain_hook_reference():
    engine = make_tiny_engine(num_layers=3, seed=5)
    result = run_sweep(positive="sentiment", layers=[0, 2], strengths="0.5, 4", prompt=PROMPT, max_new_tokens=5,
                       engine=engine)
    ref = copy.deepcopy(engine.model)
    markers = marker_ids(engine, "sentiment")
    assert result.set_name == "sentiment" and len(result.cells) == 4
    for cell in (result.baseline,) + result.cells:
        tokens, ppl, ratio = reference_cell(engine, ref, cell.layer, cell.strength, 5, markers)
        assert list(cell.ids) == tokens
        assert cell.perplexity == pytest.approx(ppl, rel=1e-4)
        assert cell.marker_log_ratio == pytest.approx(ratio, rel=1e-4, abs=1e-5)
    assert result.cell(2, 4.0).ids != result.baseline.ids
    assert not any(m._forward_hooks for m in engine.model.modules())  # per-pass hooks all removed
    api = result.to_api()
    assert api["layers"] == [0, 2] and api["strengths"] == [0.5, 4.0] and len(api["cells"]) == 4
    assert set(api["cells"][0]) == {"layer", "strength", "text", "perplexity", "marker_log_ratio", "overflow"}


def test_custom_pair_has_no_marker_ratio(tiny_engine):
    result = run_sweep(positive=["good fun"], negative=["bad times"], layers="1", strengths=[1.0], prompt=PROMPT,
                       max_new_tokens=3, engine=tiny_engine)
    assert result.set_name is None and result.markers is None
    assert result.cells[0].marker_log_ratio is None and result.cells[0].perplexity > 0


def test_sweep_stops_when_asked(tiny_engine):
    result = run_sweep(positive="sentiment", layers=[1], strengths=[1.0], prompt=PROMPT, max_new_tokens=8,
                       engine=tiny_engine, should_stop=lambda: True)
    assert result.tokens_done == 1 and any("Stopped after 1 of 8" in n for n in result.notices)


@pytest.mark.parametrize("kwargs, match", [
    ({"strengths": [float("nan")]}, "strengths"), ({"strengths": "inf"}, "strengths"),
    ({"strengths": [1e9]}, "strengths"), ({"strengths": ""}, "strengths"), ({"layers": [7]}, "layers"),
    ({"layers": "a, b"}, "layers"), ({"strengths": list(range(60))}, "LLM_EXPLORER_MAX_SWEEP_CELLS"),
    ({"positive": ["x"], "negative": [" "]}, "negative"), ({"prompt": " "}, "prompt")])
def test_sweep_bad_input(tiny_engine, kwargs, match):
    args = {"positive": "sentiment", "layers": [1], "strengths": [1.0], "prompt": PROMPT, "max_new_tokens": 2}
    with pytest.raises(ValueError, match=match):
        run_sweep(**{**args, **kwargs}, engine=tiny_engine)


def test_overflowing_cell_is_reported_not_crashed(tiny_engine, monkeypatch):
    from explorer.circuits.steering import SteeringVector

    real = SteeringVector.added
    monkeypatch.setattr(SteeringVector, "added",
                        lambda self, s: real(self, s) * float("inf") if s == 3.0 else real(self, s))
    result = run_sweep(positive="sentiment", layers=[1], strengths=[0.5, 3.0], prompt=PROMPT, max_new_tokens=2,
                       engine=tiny_engine)
    broken = result.cell(1, 3.0)
    assert broken.overflow and broken.perplexity is None and broken.marker_log_ratio is None
    assert not result.cell(1, 0.5).overflow and result.cell(1, 0.5).perplexity is not None
    assert any("strength 3 at layer 1: the logits overflow" in n for n in result.notices)
