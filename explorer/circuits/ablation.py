"""Ablation: switch components off (zero, or their mean over the prompt's positions) and see what changes.

Zero ablation sets a component's output to 0; mean ablation (Wang et al. 2022, "Interpretability in the Wild")
replaces it with its mean over the prompt's positions in the un-ablated run, which removes what the component
says about this position while keeping its average contribution. A head's output is its ``d_head`` slice of the
output projection's input; ``L5.attn`` is the attention block's output, ``L5.mlp`` the MLP's output.

Reported: the next-token distribution before and after (KL divergence ``KL(before ‖ after)`` in nats, top-1 change)
and greedy continuations side by side. The ablated continuation runs through ``Engine.steps`` with a
:class:`explorer.core.intervene.TracedModel`, so every generated token is one model turn with the same edit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.circuits.prompts import Component, parse_components, prompt_ids, token_text
from explorer.circuits.sites import head_dim
from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.intervene import TracedModel, decoder, save, trace
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int

MODES: tuple[str, ...] = ("zero", "mean")


@dataclass(frozen=True)
class AblationResult:
    """Before and after an ablation.

    Attributes:
        model: model name. components: the names ablated. mode: ``zero`` or ``mean``.
        kl: ``KL(p_before ‖ p_after)`` of the next-token distributions, nats.
        top1_before, top1_after: the most likely next token, quoted.
        prob_before, prob_after: top-k tokens and probabilities ``[(token, p)]`` before and after.
        continuation_before, continuation_after: greedy continuations (text).
        notices: caps applied. provenance: measured.
    """

    model: str
    components: tuple[str, ...]
    mode: str
    kl: float
    top1_before: str
    top1_after: str
    prob_before: tuple
    prob_after: tuple
    continuation_before: str
    continuation_after: str
    notices: tuple[str, ...] = ()
    provenance: Provenance | None = field(default=None)

    def to_api(self) -> dict:
        """The ``/ablate`` JSON (see :func:`ablate_to_api`)."""
        return ablate_to_api(self)


def _targets(wrapped, item: Component):
    layer = decoder(wrapped).layers[item.layer]
    if item.kind == "head":
        return layer.self_attn.o_proj.input
    if item.kind == "attn":
        return layer.self_attn.output[0]
    return layer.mlp.output


def _order(items: tuple[Component, ...]) -> list[Component]:
    rank = {"head": 0, "attn": 1, "mlp": 2}
    return sorted(items, key=lambda c: (c.layer, rank[c.kind], c.head or 0))


def component_means(engine: Engine, ids, items: tuple[Component, ...]) -> dict[str, object]:
    """Each component's output averaged over the prompt's positions (un-ablated run): name -> ``(width,)`` tensor
    (a head: its ``d_head`` slice)."""
    d_head = head_dim(engine.config)

    def body(wrapped, store):
        for item in _order(items):
            value = _targets(wrapped, item)
            if item.kind == "head":
                value = value[0, :, item.head * d_head:(item.head + 1) * d_head]
            else:
                value = value[0]
            store[item.name] = save(value.mean(dim=0))

    store = trace(engine, ids, body, logits_to_keep=1)
    return {item.name: store[item.name] for item in items}


def ablation_body(engine: Engine, items: tuple[Component, ...], means: dict | None):
    """A trace body that zeroes (``means`` None) or mean-ablates ``items`` at every position of the pass."""
    d_head = head_dim(engine.config)

    def body(wrapped, store):
        for item in _order(items):
            value = _targets(wrapped, item)
            fill = 0.0 if means is None else means[item.name]
            if item.kind == "head":
                value[:, :, item.head * d_head:(item.head + 1) * d_head] = fill
            else:
                value[:] = fill

    return body


def _top(engine: Engine, probs, k: int = 5) -> tuple:
    values, ids = probs.topk(k)
    return tuple((token_text(engine, int(i)), round(float(v), 6)) for v, i in zip(values, ids))


def iter_ablate(text: str, components, mode: str = "zero", model: str | None = None, max_new_tokens: int = 12,
                chat_template: bool = False, engine: Engine | None = None) -> Iterator[Progress | AblationResult]:
    """Ablate ``components`` on ``text``: next-token distribution and greedy continuation before and after.

    Args:
        text: the prompt.
        components: names (``["L3H2", "L5.attn", "L5.mlp"]`` or one comma-separated string).
        mode: ``zero`` or ``mean`` (mean over the prompt's positions).
        model: model name; ignored when ``engine`` is given.
        max_new_tokens: greedy tokens per continuation (capped at ``Limits.max_new_tokens``).
        chat_template: wrap the prompt in the chat template.
    Raises:
        ValueError: empty prompt, unknown mode or component, duplicate component, layer or head out of range,
            an encoder model.
    """
    import torch

    engine = engine or get_engine(model)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)} (got {mode!r}).")
    ids = prompt_ids(engine, text, "text", chat_template)
    items = parse_components(engine, components)
    notices: list[str] = []
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=1, cap=get_limits().max_new_tokens,
                               notices=notices)
    yield Progress(0.0, "un-ablated continuation")
    before = list(engine.steps(ids, max_new_tokens))
    means = None
    if mode == "mean":
        yield Progress(0.4, "component means over the prompt")
        means = component_means(engine, ids, items)
    yield Progress(0.5, "ablated continuation")
    after = list(engine.steps(ids, max_new_tokens, model=TracedModel(engine, ablation_body(engine, items, means))))
    p = torch.softmax(before[0].logits.double(), -1)
    q = torch.softmax(after[0].logits.double(), -1)
    kl = float((p * (torch.log(p.clamp_min(1e-300)) - torch.log(q.clamp_min(1e-300)))).sum())
    yield AblationResult(
        model=engine.name, components=tuple(item.name for item in items), mode=mode, kl=max(kl, 0.0),
        top1_before=token_text(engine, before[0].token), top1_after=token_text(engine, after[0].token),
        prob_before=_top(engine, p), prob_after=_top(engine, q),
        continuation_before=engine.tokenizer.decode([s.token for s in before]),
        continuation_after=engine.tokenizer.decode([s.token for s in after]), notices=tuple(notices),
        provenance=measured(f"{mode} ablation with nnsight on a shadow tree, greedy continuations through "
                            "Engine.steps", model=engine.name))


def run_ablate(*args, **kwargs) -> AblationResult:
    """:func:`iter_ablate` drained."""
    return run_to_end(iter_ablate(*args, **kwargs))


def ablate_to_api(result: AblationResult) -> dict:
    """The ``/ablate`` JSON: ``{"kl", "top1_before", "top1_after", "continuation_before", "continuation_after",
    "notices", "components", "mode", "top_before", "top_after", "model", "provenance"}``."""
    return {"kl": round(result.kl, 6), "top1_before": result.top1_before, "top1_after": result.top1_after,
            "continuation_before": result.continuation_before, "continuation_after": result.continuation_after,
            "notices": list(result.notices), "components": list(result.components), "mode": result.mode,
            "top_before": [list(t) for t in result.prob_before], "top_after": [list(t) for t in result.prob_after],
            "model": result.model, "provenance": result.provenance.to_api() if result.provenance else None}


def loss_on_repeat(engine: Engine, ids, items: tuple[Component, ...] = ()) -> float:
    """Mean next-token cross-entropy (nats) over the repeated half of a detector sequence, with ``items``
    zero-ablated (none: the plain model). The induction heads' causal check (``data/circuits``)."""
    import torch

    ids = list(ids)
    half = (len(ids) - 1) // 2
    body = ablation_body(engine, tuple(items), None) if items else (lambda wrapped, store: None)
    logits = trace(engine, ids, body)["output"].logits[0].float()
    targets = torch.as_tensor(ids[1:], device=logits.device)
    losses = torch.nn.functional.cross_entropy(logits[:-1], targets, reduction="none")
    return float(losses[half + 1:].mean()) if half >= 1 else float(np.nan)
