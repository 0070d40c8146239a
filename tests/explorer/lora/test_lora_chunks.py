"""A LoRA run trained as ZeroGPU-sized chunks (state handed in and out on the CPU, a fresh optimiser per chunk,
as in ZeroGPU's worker process) gives the same adapter, losses and learning rates as one unchunked run."""
from __future__ import annotations

import torch

from explorer import lora
from explorer.lora import chunks
from tests.explorer.lora.test_lora import PAIRS

SETTINGS = {"steps": 5, "batch_size": 2, "r": 4, "learning_rate": 1e-2, "seed": 7, "warmup_steps": 2}


def _adapter(run):
    return {n: p.detach().clone() for n, p in run.peft_model.named_parameters() if "lora_" in n}


def test_chunked_training_matches_unchunked(tiny_engine):
    plain = lora.start_run("plain-owner", PAIRS, SETTINGS, engine=tiny_engine)
    plain_snap = lora.wait(plain, timeout_s=300)
    calls = []

    def wrap(fn, steps):  # stands in for spaces.GPU: records the chunk and pickles nothing in-process
        calls.append(steps)
        return fn

    chunks.configure(wrap, lambda total: [2, 2, 1])
    try:
        run = lora.start_run("chunk-owner", PAIRS, SETTINGS, engine=tiny_engine)
        snap = lora.wait(run, timeout_s=300)
    finally:
        chunks.configure(None, None)
    assert plain_snap.status == snap.status == "done" and calls == [2, 2, 1]
    assert len(snap.loss) == 5
    torch.testing.assert_close(torch.tensor(snap.loss), torch.tensor(plain_snap.loss))
    torch.testing.assert_close(torch.tensor(snap.learning_rate), torch.tensor(plain_snap.learning_rate))
    a, b = _adapter(plain), _adapter(run)
    assert len(a) == len(b) > 0
    for (na, va), (nb, vb) in zip(sorted(a.items()), sorted(b.items())):
        assert na.replace(plain.adapter_name, "X") == nb.replace(run.adapter_name, "X")
        torch.testing.assert_close(va, vb)
