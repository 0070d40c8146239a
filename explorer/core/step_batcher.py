"""Cross-request step batching: concurrent ``Engine.steps(share=True)`` decodes share one forward pass per tick.

One :class:`StepBatcher` per engine (:func:`batcher_for`). A request prefills its prompt alone (its own pass,
its own ``DynamicCache``), then its row *joins* the batch: the batcher's thread keeps one batched
``DynamicCache`` for every joined row, left-padded to a common length with an attention mask that hides the
padding, and at each *tick* runs one forward pass of shape ``(rows, 1)`` with per-row ``position_ids`` (each row
continues at its own length). A tick starts when every joined row has handed in its next token and no prefill is
under way, or when the gather window (``Limits.step_gather_ms``) since the first hand-in ends; a row that has not
handed in its token by then sits the tick out (it is fed a padding token whose cache slot the mask hides, so its
own sequence is unchanged). Each row's ``select`` (greedy, its sampler chain, its private ``torch.Generator``)
runs in the caller's thread on that row's logits only, so no choice, generator or record passes between rows.

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

PREFILL_WAIT_S = 1.0  # longest a tick waits for prefills under way, so rows that arrive together start together
IDLE_EXIT_S = 5.0  # the batcher's thread ends after this long without rows
WINDOW_S = 60.0  # seconds of step batch sizes kept for /serving_stats

_BATCHERS: "weakref.WeakKeyDictionary[Any, StepBatcher]" = weakref.WeakKeyDictionary()
_BATCHERS_LOCK = threading.Lock()


@dataclass(eq=False)
class _Row:
    """One sequence in the batch: its prefill cache until it joins, then its next token and position."""

    cache: Any
    position: int  # position id of the next token fed (prompt length + tokens fed so far)
    token: int | None = None  # the token handed in for the next tick
    submitted_at: float = 0.0
    logits: Any = None
    ms: float = 0.0
    error: BaseException | None = None
    gone: bool = False
    done: threading.Event = field(default_factory=threading.Event)


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
        self._cond = threading.Condition()
        self._rows: list[_Row] = []  # rows in the batched cache, in batch order
        self._joining: list[_Row] = []
        self._prefilling = 0
        self._cache = None
        self._mask = None  # (rows, cache length) long, 1 = a real token
        self._thread: threading.Thread | None = None
        self._sizes: collections.deque = collections.deque()  # (time, rows in the pass)

    # -- the caller's side ------------------------------------------------------------------------------------
    def prefilling(self, delta: int) -> None:
        """Count a prefill that starts (``+1``) or ends (``-1``), so a tick waits for it (up to PREFILL_WAIT_S)."""
        with self._cond:
            self._prefilling = max(0, self._prefilling + delta)
            self._cond.notify_all()

    def join(self, cache, position: int) -> _Row:
        """Add a prefilled sequence (its ``DynamicCache``, batch 1) whose next token sits at ``position``."""
        row = _Row(cache=cache, position=int(position))
        with self._cond:
            self._joining.append(row)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"step-batcher-{self.engine.name}",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return row

    def step(self, row: _Row, token: int, cancellable: bool = True) -> tuple[Any, float]:
        """Feed ``token`` to ``row`` in the next tick and wait for it.

        Returns:
            ``(logits (vocab,) float32 CPU tensor, ms of the shared forward pass)``.
        Raises:
            Cancelled: the caller's client went away (the row leaves the batch).
            RuntimeError: a shared pass failed (every row of the batch gets it and leaves; the batch restarts).
        """
        if cancellable and cancelled():
            self.leave(row)
            raise Cancelled("The request was cancelled: its client went away, so its row left the batch.")
        with self._cond:
            if row.error is not None:  # an earlier shared pass failed while this row sat it out
                raise row.error
            row.done.clear()
            row.token, row.submitted_at = int(token), time.monotonic()
            self._cond.notify_all()
        while not row.done.wait(0.1):
            if cancellable and cancelled():
                self.leave(row)
                raise Cancelled("The request was cancelled: its client went away, so its row left the batch.")
        if row.error is not None:
            raise row.error
        return row.logits, row.ms

    def leave(self, row: _Row) -> None:
        """Take ``row`` out of the batch (finished, stopped or cancelled); dropped before the next tick."""
        with self._cond:
            row.gone, row.token = True, None
            if row in self._joining:
                self._joining.remove(row)
            self._cond.notify_all()

    def recent_sizes(self, window_s: float = WINDOW_S) -> list[int]:
        """Rows per shared pass for every tick of the last ``window_s`` seconds."""
        now = time.time()
        with self._cond:
            return [n for t, n in self._sizes if t >= now - window_s]

    # -- the batcher's thread ---------------------------------------------------------------------------------
    def _ready(self, first: float) -> bool:
        live = [r for r in self._rows + self._joining if not r.gone]
        waited = time.monotonic() - first
        if self._prefilling and waited < PREFILL_WAIT_S:
            return False
        return all(r.token is not None for r in live) or waited >= get_limits().step_gather_ms / 1000.0

    def _loop(self) -> None:
        while True:
            with self._cond:
                idle_since = time.monotonic()
                while not any(r.token is not None and not r.gone for r in self._rows + self._joining):
                    if self._rows and all(r.gone for r in self._rows):  # everyone left: free the batch's cache
                        self._rows, self._cache, self._mask = [], None, None
                    if not self._rows and not self._joining and time.monotonic() - idle_since > IDLE_EXIT_S:
                        self._thread = None
                        self._cache = self._mask = None
                        return
                    self._cond.wait(0.5)
                first = min(r.submitted_at for r in self._rows + self._joining if r.token is not None)
                while not self._ready(first):
                    self._cond.wait(0.002)
                if not any(r.token is not None and not r.gone for r in self._rows + self._joining):
                    continue  # the rows that handed in a token left while the tick gathered
                joining, self._joining = [r for r in self._joining if not r.gone], []
                keep = [k for k, r in enumerate(self._rows) if not r.gone]
                rows = [self._rows[k] for k in keep] + joining
                fed = {id(r): r.token for r in rows if r.token is not None}
            try:
                self._tick(keep, joining, rows, fed)
            except BaseException as exc:  # noqa: BLE001 - every row of the batch gets the error, the batch restarts
                error = RuntimeError(f"The shared decode pass failed: {exc}")
                error.__cause__ = exc
                with self._cond:
                    for r in rows:
                        r.error, r.gone = error, True
                        r.done.set()
                    self._rows, self._cache, self._mask = [], None, None
                continue

    def _tick(self, keep: list[int], joining: list[_Row], rows: list[_Row], fed: dict) -> None:
        import torch

        engine = self.engine
        with engine.turn(kind="interactive", wait_s=float("inf"), cancellable=False):
            with torch.inference_mode():
                self._regroup(keep, joining)
                self._rows = rows
                device = engine.device
                ids = torch.tensor([[fed.get(id(r), 0)] for r in rows], device=device)
                real = torch.tensor([[1 if id(r) in fed else 0] for r in rows], device=device)
                self._mask = torch.cat([self._mask, real], dim=1)
                positions = torch.tensor([[r.position] for r in rows], device=device)
                engine.synchronize()
                start = time.perf_counter()
                output = engine.model(input_ids=ids, attention_mask=self._mask, position_ids=positions,
                                      past_key_values=self._cache, use_cache=True, logits_to_keep=1)
                engine.synchronize()
                ms = (time.perf_counter() - start) * 1000.0
                self._cache = output.past_key_values
                logits = output.logits[:, -1].float().cpu()
        n = len(fed)
        engine.record(tokens=n, batch_size=n)
        with self._cond:
            self._sizes.append((time.time(), n))
            while self._sizes and self._sizes[0][0] < time.time() - WINDOW_S:
                self._sizes.popleft()
            for k, r in enumerate(rows):
                if id(r) in fed:
                    r.logits, r.ms, r.position, r.token = logits[k], ms, r.position + 1, None
                    r.done.set()

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
    batcher.prefilling(+1)
    try:
        with engine.session():
            engine.synchronize()
            start = time.perf_counter()
            output = engine.model(input_ids=feed, past_key_values=cache, use_cache=True, logits_to_keep=1)
            engine.synchronize()
            ms = (time.perf_counter() - start) * 1000.0
    finally:
        batcher.prefilling(-1)
    cache = output.past_key_values
    logits = output.logits[0, -1].float().cpu()
    del output
    engine.record(tokens=1, batch_size=1)
    row = None
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
            if row is None:
                row = batcher.join(cache, position=int(engine.as_input(ids).shape[1]))
                cache = None
    finally:
        if row is not None:
            batcher.leave(row)
