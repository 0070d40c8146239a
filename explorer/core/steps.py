"""What the engine's step primitives yield: one record per forward pass, and the greedy continuation's result.

:class:`Step` (one pass of ``Engine.steps``), :class:`BatchStep` (one pass of ``Engine.batch_steps``),
:class:`Continuation` (``Engine.greedy_continuation``) and :func:`greedy`, the default token choice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Step:
    """One forward pass of :meth:`Engine.steps`.

    Attributes:
        index: 0 for the prefill (the whole prompt), then 1, 2, ... for each decode step.
        logits: next-token logits at the last position, ``torch.Tensor`` of shape ``(vocab,)``, float32, on CPU.
        token: the token chosen by ``select`` from these logits (the ``index + 1``-th generated token).
        finished: True when ``token`` is an end-of-sequence id (:meth:`Engine.eos_token_ids`) and the loop stops.
        cache: the ``past_key_values`` after this pass (it already holds this pass's inputs, not ``token``).
        output: the model output of this pass (attentions or hidden states when ``forward_kwargs`` asked for them).
        ms: wall time of the forward pass in milliseconds, the device synchronised before the clock is read.
        input_ids: the ids fed in this pass, ``torch.Tensor`` of shape ``(1, n)`` (n = prompt length at prefill, else 1).
    """

    index: int
    logits: Any
    token: int
    finished: bool
    cache: Any
    output: Any
    ms: float
    input_ids: Any


@dataclass
class BatchStep:
    """One forward pass of :meth:`Engine.batch_steps` (several rows that share one prompt).

    Attributes:
        index: 0 for the prefill (the prompt, run once as one row), then 1, 2, ... for each decode step.
        rows: the row numbers (0 .. rows - 1) still running in this pass, in batch order.
        logits: next-token logits, ``torch.Tensor`` ``(len(rows), vocab)``, float32, on CPU (at the prefill every
            row gets the one prompt row's logits).
        tokens: the token each of ``rows`` chose (``select(row, logits, index)``), aligned with ``rows``.
        finished: per entry of ``rows``, True when its token ends the sequence; that row is dropped after this pass.
        ms: wall time of the forward pass in milliseconds (device synchronised).
    """

    index: int
    rows: tuple
    logits: Any
    tokens: tuple
    finished: tuple
    ms: float


@dataclass(frozen=True)
class Continuation:
    """What :meth:`Engine.greedy_continuation` generated.

    Attributes:
        tokens: the generated token ids in order, an end-of-sequence token included when it ended the run.
        ended: True when the last token is an end-of-sequence id (the run stopped before ``max_new_tokens``
            or exactly at it).
    """

    tokens: tuple[int, ...]
    ended: bool

    @property
    def content(self) -> tuple[int, ...]:
        """``tokens`` without the final end-of-sequence token (what a reader sees as the answer)."""
        return self.tokens[:-1] if self.ended else self.tokens


def greedy(logits, index: int) -> int:
    """The default ``select`` of :meth:`Engine.steps`: the arg-max token id of ``logits`` ``(vocab,)``."""
    return int(logits.argmax())
