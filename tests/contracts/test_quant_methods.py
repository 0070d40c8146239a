"""Contract: every quantisation method in the registry builds on the tiny model, runs, and returns what its
description promises (its nominal bits, its layers, finite logits close to the reference).

A new method is tested by adding it to ``explorer.quantization.methods.METHODS``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import quantization
from explorer.quantization.layers import quantizable_linear_names
from explorer.quantization.methods import METHODS, QLORA_OPTIONS, QuantOptions, get_variant, nf4_base


@pytest.mark.parametrize("name", list(METHODS))
def test_method_describes_itself(name):
    method = METHODS[name]
    assert method.name == name and method.label and len(method.explanation) > 20
    assert isinstance(method.key(QuantOptions()), str)
    assert (method.build is None) == (name == "reference")


@pytest.mark.parametrize("name", list(METHODS))
def test_method_builds_and_runs_on_tiny_model(tiny_engine, name):
    method = METHODS[name]
    variant = get_variant(tiny_engine, name, QuantOptions())
    assert variant.key == method.key(QuantOptions())
    reference = get_variant(tiny_engine, "reference")
    names = quantizable_linear_names(tiny_engine.model)
    n_linear = sum(tiny_engine.model.get_submodule(n).weight.numel() for n in names)
    bits = 8.0 * variant.linear_weight_bytes / n_linear
    nominal = method.nominal_bits or 8 * next(tiny_engine.model.parameters()).element_size()
    assert nominal <= bits <= nominal * 1.6  # the nominal bits plus scales / biases, never less
    if name != "reference":
        assert variant.engine.model is not tiny_engine.model and variant.linear_weight_bytes < reference.linear_weight_bytes
    ids = tiny_engine.encode("Once upon a time")
    ref = tiny_engine.forward(ids).logits[0].float()
    out = variant.engine.forward(ids).logits[0].float()
    assert torch.isfinite(out).all()
    assert float(torch.corrcoef(torch.stack([ref.reshape(-1), out.reshape(-1)]))[0, 1]) > 0.9
    new, tokens_per_s, prefill_ms = quantization.greedy_generate(variant.engine, ids, 3)
    assert 1 <= len(new) <= 3 and prefill_ms > 0 and np.isfinite(tokens_per_s)


def test_qlora_base_is_the_tabs_nf4_copy(tiny_engine):
    assert QLORA_OPTIONS == QuantOptions(blocksize=64, double_quant=True, compute_dtype="auto")
    base = nf4_base(tiny_engine)
    assert base is get_variant(tiny_engine, "nf4", QuantOptions()).engine  # one cached copy, counted once
