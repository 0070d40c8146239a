"""Cross-request step batching: concurrent ``Engine.steps(share=True)`` decodes share one forward pass per tick.

One :class:`StepBatcher` per engine (:func:`batcher_for`). A request prefills its prompt alone (its own pass, its
own ``DynamicCache``), chooses its first token, then its row *joins* the batch: one batched ``DynamicCache`` for
every joined row, left-padded to a common length with an attention mask that hides the padding, and one forward
pass of shape ``(rows, 1)`` per *tick* with per-row ``position_ids`` (each row continues at its own length).

There is no batcher thread: the ticks are run by the rows' own threads (a *leader*, one at a time). A row that
hands in its next token leads the tick itself when no tick is running and the batch is ready: every live row has
handed in, or the gather window (``Limits.step_gather_ms``) since the last tick delivered the rows still choosing
has passed. So a request alone steps in its own thread with no hand-off and no wait, its pass exactly the unshared
one (no padding, so no mask or position ids), and rows that choose at slightly different speeds stay in one phase
instead of splitting into groups that tick in turn. The leader takes the model's turn first and only then picks
the rows, so rows that finished their prefill while it waited (the turn is first come, first served) join that
same tick. A row that has not handed in its token sits the tick out (it is fed a padding token whose cache slot
the mask hides, so its own sequence is unchanged). Each row's ``select`` (greedy, its sampler chain, its private
``torch.Generator``) runs in its own thread on its own logits (a copy, never a view of the batch's), so no choice,
generator or record passes between rows. Waiting rows sleep on their own ``threading.Event``, woken when their
result is in or when they may have to lead; the timed wait only bounds how late a gone client is noticed.

A row leaves when it finishes, when its caller stops (the generator is closed) or when its client goes
(:func:`explorer.core.turns.cancelled`); the batch drops it (``keys[keep]``) before the next tick. A tick is one
interactive turn on the model (``Engine.turn``), so fair turns hold: training steps keep their third.

Only plain passes join: no patch, no adapter or model override, no extra forward arguments (attentions, hidden
states), a fresh cache, and a model whose cache layers are all full-attention ``DynamicLayer`` (a sliding-window
model such as Gemma 3 runs alone); the precision is the engine's own (one batcher per engine). The rows' tokens
equal solo :meth:`Engine.steps` up to float rounding of the batched matrix products.
"""
from __future__ import annotations

import collections
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from explorer.core.config import get_limits
from explorer.core.steps import Step
from explorer.core.turns import Cancelled, cancelled

POLL_S = 0.1  # a waiting row checks this often whether its client went away
WINDOW_S = 60.0  # seconds of step batch sizes kept for /serving_stats

_BATCHERS: "weakref.WeakKeyDictionary[Any, StepBatcher]" = weakref.WeakKeyDictionary()
_BATCHERS_LOCK = threading.Lock()


@dataclass(eq=False)
class _Row:
    """One sequence in the batch: its prefill cache until it joins, then its next token and position."""

    cache: Any
    position: int  # position id of the next token fed (prompt length + tokens fed so far)
    token: int | None = None  # the token handed in for the next tick
    served_at: float = 0.0  # monotonic time its last result was delivered (it has been choosing since)
    joined: bool = False
    fresh: bool = False  # a result (logits, ms) is waiting to be read
    logits: Any = None
    ms: float = 0.0
    error: BaseException | None = None
    gone: bool = False
    wake: threading.Event = field(default_factory=threading.Event)


def batchable_cache(cache) -> bool:
    """True when every layer of ``cache`` (a ``DynamicCache``) is a full-attention ``DynamicLayer`` with
    tensors, so rows can be left-padded and stacked along the batch dimension."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class StepBatcher:
    """Gathers concurrent decode steps of one engine into one forward pass per tick (see the module docstring).

    Attributes:
        engine: the :class:`explorer.core.engine.Engine` whose shared model the ticks run.
    """

    def __init__(self, engine):
        self.engine = engine
        self._lock = threading.Lock()
        self._rows: list[_Row] = []  # rows in the batched cache, in batch order (changed by the leader only)
        self._joining: list[_Row] = []  # rows that handed in their first token, their prefill cache still apart
        self._ticking = False  # a leader is running a tick
        self._cache = None
        self._mask = None  # (rows, cache length) long, 1 = a real token
        self._sizes: collections.deque = collections.deque()  # (time, rows in the pass)

    # -- the caller's side ------------------------------------------------------------------------------------
    def row(self, cache, position: int) -> _Row:
        """A new row for a prefilled sequence (its ``DynamicCache``, batch 1) whose next token sits at
        ``position``; it joins the batch when it hands in its first token (:meth:`step`)."""
        return _Row(cache=cache, position=int(position))

    def step(self, row: _Row, token: int, cancellable: bool = True) -> tuple[Any, float]:
        """Feed ``token`` to ``row`` in the next tick (leading it when this thread's turn comes) and wait for it.

        Returns:
            ``(logits (vocab,) float32 CPU tensor, ms of the shared forward pass)``.
        Raises:
            Cancelled: the caller's client went away (the row leaves the batch).
            RuntimeError: a shared pass failed (every row of that pass gets it and leaves; the batch restarts).
        """
        if cancellable and cancelled():
            self.leave(row)
            raise Cancelled("The request was cancelled: its client went away, so its row left the batch.")
        with self._lock:
            if row.error is not None:  # an earlier shared pass failed while this row sat it out
                raise row.error
            row.token, row.fresh = int(token), False
            if not row.joined:
                row.joined = True
                self._joining.append(row)
        while True:
            with self._lock:
                if row.fresh or row.error is not None:
                    row.fresh = False
                    if row.error is not None:
                        raise row.error
                    return row.logits, row.ms
                now = time.monotonic()
                lead = not self._ticking and self._ready(now)
                self._ticking = self._ticking or lead
                wait_s = POLL_S if lead or self._ticking else min(POLL_S, max(self._deadline() - now, 0.0005))
                row.wake.clear()
            if lead:
                self._lead()
                continue
            row.wake.wait(wait_s)
            if cancellable and cancelled():
                self.leave(row)
                raise Cancelled("The request was cancelled: its client went away, so its row left the batch.")

    def leave(self, row: _Row) -> None:
        """Take ``row`` out of the batch (finished, stopped or cancelled); dropped before the next tick."""
        with self._lock:
            row.gone, row.token = True, None
            if row in self._joining:
                self._joining.remove(row)
            self._nudge()  # the rows waiting for it may be ready now

    def recent_sizes(self, window_s: float = WINDOW_S) -> list[int]:
        """Rows per shared pass for every tick of the last ``window_s`` seconds."""
        now = time.time()
        with self._lock:
            return [n for t, n in self._sizes if t >= now - window_s]

    # -- scheduling (called with self._lock held) -------------------------------------------------------------
    def _live(self) -> list[_Row]:
        return [r for r in self._rows + self._joining if not r.gone]

    def _deadline(self) -> float:
        """Monotonic time until which a tick waits for the rows still choosing (gather window after their result)."""
        choosing = [r.served_at for r in self._live() if r.token is None]
        return max(choosing) + get_limits().step_gather_ms / 1000.0 if choosing else 0.0

    def _ready(self, now: float) -> bool:
        live = self._live()
        return any(r.token is not None for r in live) and now >= self._deadline()

    def _nudge(self) -> None:
        """Wake the rows that handed in and wait, so one of them leads the next tick when it is ready."""
        if not self._ticking:
            for r in self._live():
                if r.token is not None:
                    r.wake.set()

    # -- the leader's tick ------------------------------------------------------------------------------------
    def _lead(self) -> None:
        """Run one tick in this thread: take the model's turn, pick the rows that handed in, run their pass."""
        import torch

        rows: list[_Row] | None = None
        try:
            with self.engine.turn(kind="interactive", wait_s=float("inf"), cancellable=False):
                with self._lock:  # picked after the turn came, so rows that joined while it was awaited ride along
                    joining, self._joining = self._joining, []
                    keep = [k for k, r in enumerate(self._rows) if not r.gone]
                    rows = [self._rows[k] for k in keep] + joining
                    fed = {id(r): r.token for r in rows if r.token is not None}
                with torch.inference_mode():
                    self._tick(keep, joining, rows, fed)
        except BaseException as exc:  # noqa: BLE001 - every row of the batch gets the error, the batch restarts
            error = RuntimeError(f"The shared decode pass failed: {exc}")
            error.__cause__ = exc
            with self._lock:
                if rows is None:  # failed before the rows were picked: every row of the batch is stranded
                    rows, self._joining = self._rows + self._joining, []
                for r in rows:
                    r.error, r.gone = error, True
                    r.wake.set()
                self._rows, self._cache, self._mask = [], None, None
        finally:
            with self._lock:
                self._ticking = False
                if not self._live():  # everyone left: free the batch's cache
                    self._rows, self._cache, self._mask = [], None, None
                self._nudge()

    def _tick(self, keep: list[int], joining: list[_Row], rows: list[_Row], fed: dict) -> None:
        """One shared ``(rows, 1)`` pass under the leader's turn; hands each fed row its own logits."""
        import torch

        engine = self.engine
        self._regroup(keep, joining)
        self._rows = rows
        if not fed:
            return
        device = engine.device
        ids = torch.tensor([[fed.get(id(r), 0)] for r in rows], device=device)
        real = torch.tensor([[1 if id(r) in fed else 0] for r in rows], device=device)
        self._mask = torch.cat([self._mask, real], dim=1)
        extra = {}
        if len(rows) > 1 or not bool(self._mask.all()):  # a lone unpadded row runs exactly the unshared pass
            extra = {"attention_mask": self._mask,
                     "position_ids": torch.tensor([[r.position] for r in rows], device=device)}
        engine.synchronize()
        start = time.perf_counter()
        output = engine.model(input_ids=ids, past_key_values=self._cache, use_cache=True, logits_to_keep=1, **extra)
        engine.synchronize()
        ms = (time.perf_counter() - start) * 1000.0
        self._cache = output.past_key_values
        logits = output.logits[:, -1].float().cpu()
        n = len(fed)
        engine.record(tokens=n, batch_size=n)
        with self._lock:
            now, wall = time.monotonic(), time.time()
            self._sizes.append((wall, n))
            while self._sizes and self._sizes[0][0] < wall - WINDOW_S:
                self._sizes.popleft()
            for k, r in enumerate(rows):
                if id(r) in fed:
                    r.logits = logits[k].clone() if len(rows) > 1 else logits[k]  # its own copy, not a view
                    r.ms, r.position, r.served_at, r.fresh, r.token = ms, r.position + 1, now, True, None
                    r.wake.set()

    def _regroup(self, keep: list[int], joining: list[_Row]) -> None:
        """Drop rows that left (keeping ``keep``), trim padding no row needs, and stack the joining rows' caches
        (left-padded) under the batch. Runs under the model's turn."""
        import torch

        cache, mask = self._cache, self._mask
        if cache is not None and len(keep) < mask.shape[0]:
            if not keep:
                cache = mask = None
            else:
                index = torch.tensor(keep, device=mask.device)
                cache.batch_select_indices(index)
                mask = mask[index]
        if mask is not None:
            used = mask.any(dim=0).nonzero()
            start = int(used[0]) if len(used) else mask.shape[1]
            if start:
                for layer in cache.layers:
                    layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]
                mask = mask[:, start:]
        for row in joining:
            length = row.cache.layers[0].keys.shape[-2]
            if cache is None:
                cache, mask = row.cache, torch.ones(1, length, dtype=torch.long, device=self.engine.device)
                row.cache = None
                continue
            total = max(length, mask.shape[1])
            mask = torch.cat([_left_pad(mask, total), _left_pad(torch.ones(1, length, dtype=torch.long,
                                                                            device=mask.device), total)])
            for layer, new in zip(cache.layers, row.cache.layers):
                layer.keys = torch.cat([_left_pad(layer.keys, total, dim=2), _left_pad(new.keys, total, dim=2)])
                layer.values = torch.cat([_left_pad(layer.values, total, dim=2),
                                          _left_pad(new.values, total, dim=2)])
            row.cache = None
        self._cache, self._mask = cache, mask


def _left_pad(tensor, length: int, dim: int = 1):
    """``tensor`` with zeros prepended along ``dim`` up to ``length``."""
    import torch

    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def batcher_for(engine) -> StepBatcher:
    """The one :class:`StepBatcher` of ``engine`` (created on first use)."""
    with _BATCHERS_LOCK:
        batcher = _BATCHERS.get(engine)
        if batcher is None:
            batcher = _BATCHERS[engine] = StepBatcher(engine)
        return batcher


def step_batch_sizes(window_s: float = WINDOW_S) -> dict[str, list[int]]:
    """Rows per shared step pass over the last ``window_s`` seconds, per model name (for ``/serving_stats``)."""
    with _BATCHERS_LOCK:
        batchers = list(_BATCHERS.values())
    out: dict[str, list[int]] = {}
    for batcher in batchers:
        out.setdefault(batcher.engine.name, []).extend(batcher.recent_sizes(window_s))
    return out


def shared_steps(engine, ids, max_new_tokens: int, select: Callable[[Any, int], int], stop_at_eos: bool,
                 eos: set[int]) -> Iterator[Step]:
    """:meth:`Engine.steps` for a plain pass, its decode steps shared with other requests (module docstring).

    The prefill runs alone (one locked pass); a model whose cache cannot be batched (sliding-window layers) runs
    the whole decode alone through :meth:`Engine.steps`.
    Yields :class:`explorer.core.steps.Step` with ``cache`` and ``output`` None (the batch owns them), ``ms`` the
    shared pass's time and ``input_ids`` the ``(1, n)`` ids fed for this row.
    """
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=engine.model.config)
    if not batchable_cache(cache):
        yield from engine.steps(ids, max_new_tokens, select=select, stop_at_eos=stop_at_eos, eos_ids=eos)
        return
    batcher = batcher_for(engine)
    feed = engine.as_input(ids)
    with engine.session():
        engine.synchronize()
        start = time.perf_counter()
        output = engine.model(input_ids=feed, past_key_values=cache, use_cache=True, logits_to_keep=1)
        engine.synchronize()
        ms = (time.perf_counter() - start) * 1000.0
    cache = output.past_key_values
    logits = output.logits[0, -1].float().cpu()
    del output
    engine.record(tokens=1, batch_size=1)
    row = batcher.row(cache, position=int(feed.shape[1]))
    del cache
    try:
        for index in range(int(max_new_tokens)):
            if index:
                logits, ms = batcher.step(row, token)
            token = int(select(logits, index))
            finished = stop_at_eos and token in eos
            yield Step(index=index, logits=logits, token=token, finished=finished, cache=None, output=None, ms=ms,
                       input_ids=feed)
            if finished or index == int(max_new_tokens) - 1:
                return
            feed = torch.tensor([[token]])
    finally:
        batcher.leave(row)
