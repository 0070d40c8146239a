"""Base vs adapted: answers side by side, the next-token shift, ‖BA‖ per layer and module, the merge check.

"Base" is the run's shared base model exactly as every other tab sees it (the plain model, or the
NF4 base for a QLoRA run); "adapted" is the same prompt through the run's adapter, enabled only inside
each of its forward passes under the model's lock (:func:`explorer.lora.train.adapter_patch`). Both step
the model through the engine, one locked pass at a time, so other users interleave. Greedy decoding on both
sides, so a difference is the adapter's doing. The next-token shift compares
``softmax(logits)`` of both models at the first answer position (KL divergence in nats, Kullback &
Leibler 1951).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from explorer.core.config import get_limits
from explorer.core.provenance import Provenance, measured
from explorer.lora.train import LoraRun, adapter_patches
from explorer.lora.model import ba_norms, merge_delta_logits

UNRELATED_PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about the ocean.",
    "What is 12 plus 7?",
)


@dataclass(frozen=True)
class Comparison:
    """Answers of both models. ``rows``: ``(prompt, kind, base answer, adapted answer)``, kind ``trained``/``unrelated``;
    ``provenance``: measured (greedy generation through the engine, base and adapted)."""

    run_id: str
    rows: tuple[tuple[str, str, str, str], ...]
    provenance: Provenance = field(default_factory=lambda: measured("greedy answers, base vs adapted"))


@dataclass(frozen=True)
class NextTokenShift:
    """Next-token distributions of both models on one prompt.

    Attributes:
        tokens: the union of both top-k tokens (decoded pieces), shape ``(n,)``.
        p_base, p_adapted: probabilities of those tokens, shape ``(n,)``.
        kl_nats: KL(adapted ‖ base) over the whole vocabulary (nats).
        provenance: measured (one forward pass of each model).
    """

    prompt: str
    tokens: tuple[str, ...]
    p_base: np.ndarray
    p_adapted: np.ndarray
    kl_nats: float
    provenance: Provenance = field(default_factory=lambda: measured("next-token softmax, base vs adapted"))


@dataclass(frozen=True)
class AdapterNorms:
    """‖scaling·BA‖_F per layer and module: ``norms`` shape ``(num_layers, len(modules))``, NaN = no adapter;
    ``provenance``: measured (read from the trained adapter matrices)."""

    norms: np.ndarray
    modules: tuple[str, ...]
    provenance: Provenance = field(default_factory=lambda: measured("‖scaling·BA‖_F of the adapter weights"))


class AdaptedModel:
    """A callable model for direct use (tests, notebooks): each call is one :meth:`Engine.forward` pass through
    ``run``'s adapter (:func:`explorer.lora.train.adapter_patch`), enabled for that pass only, under the lock.
    Lenses pass ``patches=adapter_patches(run)`` to the engine instead."""

    def __init__(self, run: LoraRun):
        self.run = run

    @property
    def config(self):
        """The base model's ``transformers`` config."""
        if self.run.peft_model is None:
            raise ValueError(f"Run {self.run.run_id} has no adapter (it failed and was discarded).")
        return self.run.peft_model.config

    def __call__(self, **kwargs):
        return self.run.engine.forward(None, patches=adapter_patches(self.run), **kwargs)


def _ids(run: LoraRun, prompt: str) -> list[int]:
    if not str(prompt or "").strip():
        raise ValueError("Type a prompt to compare the base and adapted models.")
    return run.engine.chat_ids(prompt)


def greedy_answer(engine, ids: list[int], max_new_tokens: int, patches=()) -> str:
    """Greedy answer (:meth:`Engine.greedy_continuation`, one locked pass per token, ``patches`` inside each, e.g.
    ``adapter_patches(run)``), end-of-sequence dropped."""
    tokens = engine.greedy_continuation(ids, max_new_tokens, patches=patches).content
    return engine.tokenizer.decode(list(tokens), skip_special_tokens=True).strip()


def generate(run: LoraRun, prompt: str, max_new_tokens: int = 24) -> tuple[str, str]:
    """Greedy answers ``(base, adapted)`` to ``prompt`` (chat template applied).

    Both step the model one locked forward pass per token; the adapter is on only inside the adapted
    run's passes (:func:`explorer.lora.train.adapter_patch`).

    Raises:
        ValueError: empty or too long prompt, or a discarded adapter.
    """
    engine = run.engine
    max_new_tokens = max(1, min(int(max_new_tokens), get_limits().max_new_tokens))
    ids = _ids(run, prompt)
    base = greedy_answer(engine, ids, max_new_tokens)
    adapted = greedy_answer(engine, ids, max_new_tokens, adapter_patches(run))
    return base, adapted


def compare(run: LoraRun, n_trained: int = 3, extra_prompts: tuple[str, ...] = UNRELATED_PROMPTS,
            max_new_tokens: int = 24) -> Comparison:
    """Base vs adapted answers on the first ``n_trained`` dataset prompts and on unrelated prompts."""
    rows = []
    for kind, prompts in (("trained", run.prompts[:n_trained]), ("unrelated", extra_prompts)):
        for prompt in prompts:
            base, adapted = generate(run, prompt, max_new_tokens)
            rows.append((prompt, kind, base, adapted))
    return Comparison(run_id=run.run_id, rows=tuple(rows), provenance=measured(
        f"greedy answers through Engine.steps, base vs adapter {run.run_id}", model=run.engine.name))


def next_token_shift(run: LoraRun, prompt: str, top_k: int = 10) -> NextTokenShift:
    """Next-token probabilities of both models at the first answer position.

    Raises:
        ValueError: empty or too long prompt, or a discarded adapter.
    """
    import torch

    engine = run.engine
    ids = _ids(run, prompt)
    base = torch.log_softmax(engine.forward(ids, logits_to_keep=1).logits[0, -1].float().cpu(), -1)
    adapted = torch.log_softmax(
        engine.forward(ids, patches=adapter_patches(run), logits_to_keep=1).logits[0, -1].float().cpu(), -1)
    kl = float((adapted.exp() * (adapted - base)).sum())
    k = max(1, min(int(top_k), 50))
    union = list(dict.fromkeys(torch.topk(adapted, k).indices.tolist() + torch.topk(base, k).indices.tolist()))
    union.sort(key=lambda i: -float(adapted[i].exp() + base[i].exp()))
    return NextTokenShift(prompt=prompt, tokens=tuple(engine.tokenizer.decode([i]) for i in union),
                          p_base=base[union].exp().numpy(), p_adapted=adapted[union].exp().numpy(), kl_nats=kl,
                          provenance=measured(f"Engine.forward next-token softmax, base vs adapter {run.run_id}",
                                              model=engine.name))


def adapter_norms(run: LoraRun) -> AdapterNorms:
    """‖scaling·BA‖_F for every adapted layer of ``run`` (see :func:`explorer.lora.model.ba_norms`)."""
    if run.peft_model is None:
        raise ValueError(f"Run {run.run_id} has no adapter (it failed and was discarded).")
    with run.engine.turn():
        norms, modules = ba_norms(run.peft_model, run.adapter_name, int(run.engine.config.num_hidden_layers))
    return AdapterNorms(norms=norms, modules=tuple(modules), provenance=measured(
        f"‖scaling·BA‖_F of adapter {run.run_id}'s weights", model=run.engine.name))


def merge_check(run: LoraRun, prompt: str) -> float:
    """max |Δlogit| between the merged and the unmerged adapted model on ``prompt`` (logit units).

    In fp32 this is rounding only (≤ 1e-4); on a QLoRA run merging re-quantises to NF4, so it is larger.
    """
    if run.peft_model is None:
        raise ValueError(f"Run {run.run_id} has no adapter (it failed and was discarded).")
    ids = run.engine.as_input(_ids(run, prompt))
    with run.engine.turn():
        return merge_delta_logits(run.peft_model, run.adapter_name, ids)
