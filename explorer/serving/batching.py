"""Generation batched across users with transformers' own continuous batching.

Concurrent greedy generations share forward passes: each model gets one persistent
``ContinuousBatchingManager`` (transformers ``generation/continuous_batching``), started on first use, to
which every request is added with ``add_request``; the library's scheduler puts new sequences into the
running batch as others finish (continuous batching, Yu et al. 2022 "Orca"; paged KV cache, Kwon et al. 2023
"vLLM"). Our code only routes each finished ``GenerationOutput`` back to the thread that asked for it.

The edges of the library (5.23) and how they are kept away from the rest of the app:
- it switches the model it runs to paged attention: it runs on a **shadow** module tree that shares the base
  weights (no weight memory copied) but has its own attention setting, so capture paths are unaffected;
- it steps in its own thread: the shadow's ``forward`` takes an interactive turn on the model's
  :class:`explorer.core.turns.TurnLock` for each batched pass, so it interleaves fairly with everything else;
- it seeds and samples from the global RNG and fixes ``do_sample`` per manager: it is used for **greedy**
  decoding only (sampling, adapters and per-step records stay on ``Engine.steps``);
- on CPU it sizes its paged cache to most of free memory: ``num_blocks`` is set from
  ``Limits.batch_blocks`` x ``Limits.batch_page_size`` tokens, which bounds its memory.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from explorer.core.config import get_limits
from explorer.core.copies import shadow_copy

ATTENTION = "paged|sdpa"
CHECK_EVERY_S = 0.25  # how often a waiting request checks that its client is still there
_IDS = itertools.count()


@dataclass
class _Pending:
    event: threading.Event = field(default_factory=threading.Event)
    output: Any = None


class Batcher:
    """One model's continuous-batching engine (see the module docstring).

    Attributes:
        engine: the :class:`explorer.core.engine.Engine` whose weights it shares.
        shadow: the module tree it runs (shared parameters, ``paged|sdpa`` attention).
    """

    def __init__(self, engine):
        self.engine = engine
        self.shadow = _shadow(engine)
        self._manager = None
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._router: threading.Thread | None = None

    @property
    def queued(self) -> int:
        """Sequences submitted and not finished yet."""
        return len(self._pending)

    def _config(self):
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        limits = get_limits()
        eos = sorted(self.engine.eos_token_ids()) or [-1]
        pad = self.engine.tokenizer.pad_token_id
        gen = GenerationConfig(do_sample=False, max_new_tokens=limits.max_new_tokens, eos_token_id=eos,
                               pad_token_id=eos[0] if pad is None else pad)
        cb = ContinuousBatchingConfig(num_blocks=limits.batch_blocks, page_size=limits.batch_page_size,
                                      max_batch_tokens=max(256, limits.batch_page_size * 8), seed=0)
        return gen, cb

    def _ensure_started(self):
        with self._lock:
            if self._manager is None or not self._manager.is_running():
                gen, cb = self._config()
                manager = self.shadow.init_continuous_batching(generation_config=gen, continuous_batching_config=cb)
                manager.start()
                self._manager = manager
                _stop_at_exit(self)
            if self._router is None or not self._router.is_alive():
                self._router = threading.Thread(target=self._route, name="cb-router", daemon=True)
                self._router.start()
            return self._manager

    def _route(self) -> None:
        """Hand each finished ``GenerationOutput`` to the request waiting for it (no scheduling here)."""
        while True:
            manager = self._manager
            if manager is None:
                return
            result = manager.get_result(timeout=0.5)
            if result is None:
                if not manager.is_running():
                    with self._lock:
                        for pending in self._pending.values():
                            pending.event.set()
                    if self._manager is manager:
                        return
                continue
            if not result.is_finished():
                continue
            with self._lock:
                pending = self._pending.get(result.request_id)
            if pending is not None:
                pending.output = result
                pending.event.set()

    def generate(self, prompts: list[list[int]], max_new_tokens: int, timeout_s: float | None = None) -> list[list[int]]:
        """Greedy continuations of ``prompts`` (token ids), batched with every other request in flight.

        Args:
            prompts: token ids per sequence.
            max_new_tokens: tokens to generate per sequence (fewer when an end-of-sequence token comes first;
                the end token is included, as ``generate`` does).
            timeout_s: seconds to wait (default ``Limits.max_wait_seconds`` plus 1 s per token).
        Returns:
            the generated ids per prompt, in order.
        Raises:
            ValueError: ``max_new_tokens`` below 1, or a prompt longer than the batch cache holds.
            explorer.core.turns.ModelBusy: no answer within the timeout (the requests are cancelled).
            explorer.core.turns.Cancelled: the client went away while waiting (checked every
                :data:`CHECK_EVERY_S`); its sequences are cancelled in the manager, freeing their batch slots.
        """
        from explorer.core.turns import ModelBusy, raise_if_cancelled

        n = int(max_new_tokens)
        if n < 1:
            raise ValueError(f"max_new_tokens must be at least 1 (got {max_new_tokens}).")
        limits = get_limits()
        capacity = limits.batch_blocks * limits.batch_page_size
        for ids in prompts:
            if len(ids) + n > capacity:
                raise ValueError(f"A prompt of {len(ids)} tokens plus {n} new ones exceeds the batch cache "
                                 f"({capacity} tokens: LLM_EXPLORER_BATCH_BLOCKS x LLM_EXPLORER_BATCH_PAGE_SIZE).")
        manager = self._ensure_started()
        ids_out = [f"srv_{next(_IDS)}" for _ in prompts]
        waits = []
        with self._lock:
            for rid in ids_out:
                waits.append(self._pending.setdefault(rid, _Pending()))
        try:
            for rid, ids in zip(ids_out, prompts):
                manager.add_request(list(map(int, ids)), request_id=rid, max_new_tokens=n)
            deadline = time.monotonic() + (limits.max_wait_seconds + n if timeout_s is None else timeout_s)
            outputs = []
            for rid, pending in zip(ids_out, waits):
                while not pending.event.wait(min(CHECK_EVERY_S, max(0.0, deadline - time.monotonic()))):
                    raise_if_cancelled()  # a client that went away frees its share of the batch (finally below)
                    if time.monotonic() >= deadline:
                        break
                if not pending.event.is_set() or pending.output is None:
                    raise ModelBusy("The batched generation did not answer in time (the server is busy); "
                                    "please try again shortly.")
                if pending.output.error:
                    raise ValueError(f"Batched generation failed: {pending.output.error}")
                outputs.append(list(pending.output.generated_tokens))
            return outputs
        finally:
            with self._lock:
                for rid, pending in zip(ids_out, waits):
                    self._pending.pop(rid, None)
                    if not pending.event.is_set():
                        manager.cancel_request(rid)  # a caller that gave up frees its share of the batch

    def stop(self) -> None:
        """Stop the manager's thread (it starts again on the next request)."""
        with self._lock:
            manager, self._manager = self._manager, None
        if manager is not None and manager.is_running():
            manager.stop(block=True, timeout=5)


def _shadow(engine):
    """A :func:`shadow_copy` of ``engine.model`` with ``paged|sdpa`` attention, whose ``forward`` takes one
    interactive turn on the engine's lock per call and records the batch size."""
    shadow = shadow_copy(engine.model, attn_implementation=ATTENTION)
    inner = shadow.forward

    def locked_forward(*args, **kwargs):
        # the library's loop serves every client: it must not fail on a cap nor end with one client's cancellation
        with engine.turn(kind="interactive", wait_s=float("inf"), cancellable=False):
            out = inner(*args, **kwargs)
        cu = kwargs.get("cu_seq_lens_q")
        sequences = int(cu.numel() - 1) if cu is not None else 1
        logits_idx = kwargs.get("logits_indices")
        engine.record(tokens=int(logits_idx.numel()) if logits_idx is not None else sequences, batch_size=sequences)
        return out

    shadow.forward = locked_forward
    return shadow


_BATCHERS: dict[int, tuple[Any, Batcher]] = {}
_GUARD = threading.Lock()
_EXIT_HOOKED: list[bool] = [False]


def batcher_for(engine) -> Batcher:
    """The shared :class:`Batcher` of ``engine`` (built on first use).

    Raises:
        ValueError: the model is not a causal language model.
    """
    if not engine.is_causal:
        raise ValueError(f"{engine.name} is an encoder; batched generation needs a causal language model.")
    with _GUARD:
        entry = _BATCHERS.get(id(engine.model))
        if entry is None or entry[0] is not engine.model:
            entry = _BATCHERS[id(engine.model)] = (engine.model, Batcher(engine))
        return entry[1]


def queued_by_model() -> dict[str, int]:
    """``{model name: sequences waiting in or for a batch}``."""
    with _GUARD:
        batchers = [b for _, b in _BATCHERS.values()]
    return {b.engine.name: b.queued for b in batchers}


def stop_all() -> None:
    """Stop every batcher's background thread (tests and shutdown)."""
    with _GUARD:
        batchers = [b for _, b in _BATCHERS.values()]
    for batcher in batchers:
        batcher.stop()


def _stop_at_exit(batcher: Batcher) -> None:
    """The manager's thread is not a daemon: stop it before the interpreter waits for threads at exit."""
    if _EXIT_HOOKED[0]:
        return
    _EXIT_HOOKED[0] = True
    register = getattr(threading, "_register_atexit", None)  # runs before non-daemon threads are joined
    if register is not None:
        register(stop_all)
