"""Generation timeline: the attention row of each newly generated token, step by step.

Greedy decoding one token at a time with a KV cache (prefill, then decode steps). At step ``s`` the model
runs the query at position ``prompt_len - 1 + s`` (the last prompt token for ``s = 0``, then the token
generated at step ``s - 1``) and that query's attention row over every earlier token, in every layer and
head, is recorded; the argmax of its logits is generated token ``s``. Generated tokens are first-class:
they appear as keys in later rows.

The model is stepped by ``Engine.steps(..., eager=True)``: each step takes the model's lock and switches to
eager attention only for that forward pass, so other users interleave between steps, and ``iter_timeline``
yields after every step so a UI can stream and stop.

Sources: Vaswani et al. 2017 (causal attention with a key/value cache); Xiao et al. 2023 (attention sinks);
Ainslie et al. 2023 (GQA grouping used by the KV-group aggregate).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from explorer.attention.capture import check_layer_head, kv_head_mapping, prompt_ids, token_label
from explorer.attention.stats import remove_sink
from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int, require_causal


@dataclass(frozen=True)
class TimelineResult:
    """Attention rows of the generated tokens.

    Attributes:
        model: model name.
        tokens: readable strings of the prompt tokens followed by the generated ones.
        token_ids: ids of the same tokens.
        prompt_len: number of prompt tokens ``P``.
        rows: float32 ``(steps, num_layers, num_heads, k_len)`` with ``k_len = P + steps - 1``: row ``s`` is the
            attention of the query at position ``P - 1 + s`` over keys ``0 … P - 1 + s`` (sums to 1) and zero
            to the right of them.
        kv_head_of_head: ``(num_heads,)`` key/value head of each query head.
        finished: True when generation stopped at an end-of-sequence token.
        provenance: measured on the model.
    """

    model: str
    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    prompt_len: int
    rows: np.ndarray
    kv_head_of_head: np.ndarray
    finished: bool = False
    provenance: Provenance | None = None

    @property
    def steps(self) -> int:
        """Number of recorded steps (= generated tokens)."""
        return int(self.rows.shape[0])

    @property
    def num_layers(self) -> int:
        """Number of layers."""
        return int(self.rows.shape[1])

    @property
    def num_heads(self) -> int:
        """Number of query heads per layer."""
        return int(self.rows.shape[2])

    @property
    def generated(self) -> tuple[str, ...]:
        """The generated tokens, one per step."""
        return self.tokens[self.prompt_len:]

    def query_position(self, step: int) -> int:
        """Position of the query whose row step ``step`` records (``P - 1 + step``)."""
        return self.prompt_len - 1 + step


def _head_rows(rows, kv, layer, head):
    return rows[:, layer, head]


def _mean_rows(rows, kv, layer, head):
    return rows[:, layer].mean(1)


def _group_rows(rows, kv, layer, head):
    return rows[:, layer, np.asarray(kv) == kv[head]].mean(1)


# aggregate mode -> fn(rows, kv_head_of_head, layer, head) -> (steps, k_len)
TIMELINE_VIEWS: dict[str, Callable[..., np.ndarray]] = {
    "head": _head_rows,
    "mean over heads": _mean_rows,
    "mean over KV group": _group_rows,
}


def timeline_rows(result: TimelineResult, mode: str, layer: int, head: int, hide_sink: bool = False) -> np.ndarray:
    """The ``(steps, k_len)`` rows one timeline view draws.

    Raises:
        ValueError: unknown mode, layer or head out of range.
    """
    if mode not in TIMELINE_VIEWS:
        raise ValueError(f"The timeline shows one of {', '.join(TIMELINE_VIEWS)}; got {mode!r}.")
    check_layer_head(result, layer, head)
    rows = np.asarray(TIMELINE_VIEWS[mode](result.rows, result.kv_head_of_head, layer, head), dtype=np.float32)
    return remove_sink(rows) if hide_sink else rows



def iter_timeline(text: str, model: str | None = None, max_new_tokens: int = 16, chat: bool = False,
                  engine: Engine | None = None) -> Iterator[TimelineResult]:
    """Generate greedily and yield a :class:`TimelineResult` after every step.

    Args:
        text: the prompt.
        model: model name (default SmolLM2); ignored when ``engine`` is given.
        max_new_tokens: tokens to generate (1 … ``max_attention_steps``, 64 by default).
        chat: wrap the prompt in the chat template.
        engine: an explicit engine (tests).
    Yields:
        results with 1, 2, … steps; the last one has every step.
    Raises:
        ValueError: an encoder model (no generation), ``max_new_tokens`` outside its range, or prompt plus
            new tokens past ``max_attention_tokens``.
    """
    import torch

    engine = engine or get_engine(model)
    require_causal(engine, "The generation timeline")
    limits = get_limits()
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens")
    if not 1 <= max_new_tokens <= limits.max_attention_steps:
        raise ValueError(f"The timeline generates 1 to {limits.max_attention_steps} tokens "
                         f"(max_attention_steps); got {max_new_tokens}.")
    ids, _ = prompt_ids(engine, text, chat=chat)
    if len(ids) + max_new_tokens - 1 > limits.max_attention_tokens:
        raise ValueError(f"The prompt ({len(ids)} tokens) plus {max_new_tokens} new tokens exceeds the "
                         f"{limits.max_attention_tokens}-token attention cap; ask for fewer tokens or shorten it.")
    kv = kv_head_mapping(engine.config)
    prompt_len, labels, all_ids = len(ids), [token_label(engine.tokenizer, i) for i in ids], list(ids)
    buffer = None
    for step in engine.steps(ids, max_new_tokens, forward_kwargs={"output_attentions": True}, eager=True):
        row = torch.stack([a[0, :, -1, :] for a in step.output.attentions]).float().cpu().numpy()  # (L, H, P + s)
        if buffer is None:
            buffer = np.zeros((max_new_tokens,) + row.shape[:2] + (prompt_len + max_new_tokens - 1,), np.float32)
        buffer[step.index, :, :, : row.shape[-1]] = row
        all_ids.append(step.token)
        labels.append(token_label(engine.tokenizer, step.token))
        yield TimelineResult(model=engine.name, tokens=tuple(labels), token_ids=tuple(all_ids),
                             prompt_len=prompt_len, rows=buffer[: step.index + 1, :, :, : prompt_len + step.index],
                             kv_head_of_head=kv, finished=step.finished,
                             provenance=measured("Engine.steps with eager attention, output_attentions=True",
                                                 model=engine.name))


def run_timeline(text: str, model: str | None = None, max_new_tokens: int = 16, chat: bool = False,
                 engine: Engine | None = None) -> TimelineResult:
    """Run :func:`iter_timeline` to the end and return the complete :class:`TimelineResult`.

    Raises:
        ValueError: see :func:`iter_timeline`.
    """
    result = None
    for result in iter_timeline(text, model, max_new_tokens, chat, engine):
        pass
    return result
