"""Live numbers of this server for the Serving lens and ``/serving_stats``.

Requests are counted by the app's serving wrapper (:func:`request_started` / :func:`request_finished`), model
turns and generated tokens by each model's :class:`explorer.core.turns.TurnLock`, batched passes by
:mod:`explorer.serving.batching`, hits by :mod:`explorer.serving.cache`.
"""
from __future__ import annotations

import collections
import threading

from explorer.core.step_batcher import step_batch_sizes
from explorer.core.turns import WINDOW_S, all_turn_locks

_LOCK = threading.Lock()
_RUNNING: collections.Counter = collections.Counter()  # model -> requests running now
_REQUESTS: collections.Counter = collections.Counter()  # model -> requests since start
_BY_SESSION: collections.Counter = collections.Counter()  # session -> requests in flight


class TooManyRequests(ValueError):
    """A session already has ``Limits.max_requests_per_session`` requests in flight."""


def request_started(model: str = "", session: str | None = None, limit: int | None = None) -> None:
    """Count a request as running (for ``model``; ``""`` when none is involved).

    Raises:
        TooManyRequests: ``session`` already has ``limit`` requests in flight (nothing is counted then).
    """
    with _LOCK:
        if session is not None and limit is not None and _BY_SESSION[session] >= limit:
            raise TooManyRequests(f"This session already has {_BY_SESSION[session]} requests running (the limit is "
                                  f"{limit}); wait for one to finish, then try again.")
        if session is not None:
            _BY_SESSION[session] += 1
        _RUNNING[model] += 1
        _REQUESTS[model] += 1


def request_finished(model: str = "", session: str | None = None) -> None:
    """The request counted by :func:`request_started` ended (answered, failed or cancelled)."""
    with _LOCK:
        _RUNNING[model] = max(0, _RUNNING[model] - 1)
        if session is not None:
            _BY_SESSION[session] = max(0, _BY_SESSION[session] - 1)
            if not _BY_SESSION[session]:
                del _BY_SESSION[session]


def in_flight(session: str) -> int:
    """Requests ``session`` has in flight now."""
    with _LOCK:
        return _BY_SESSION.get(session, 0)


def serving_stats() -> dict:
    """The ``/serving_stats`` answer.

    Returns:
        ``{"running": requests being computed now, "waiting": turns waiting for a model plus sequences queued
        for a batch, "batch_sizes": [sequences per forward pass, for each pass of the last 60 s],
        "tokens_per_s": generated tokens per second over the last 60 s, "cache_hits": requests answered from
        the result cache, "coalesced": requests that waited for an identical one in flight, "requests":
        requests since start, "per_model": {model: {"running", "waiting", "requests", "forward_passes",
        "training_steps", "tokens", "tokens_per_s", "batch_sizes", "step_batch_sizes"}}, "step_batch_sizes":
        [rows per shared decode pass of ``Engine.steps(share=True)`` (explorer/core/step_batcher.py), for each
        such pass of the last 60 s]}``; counts are cumulative since start.
    """
    from explorer.serving import batching
    from explorer.serving.cache import result_cache

    cache = result_cache()
    per_model: dict[str, dict] = {}
    sizes: list[int] = []
    rate = 0.0
    queued = batching.queued_by_model()
    with _LOCK:
        running = dict(_RUNNING)
        requests = dict(_REQUESTS)
    for lock in all_turn_locks():
        batch_sizes, tokens_per_s = lock.recent(WINDOW_S)
        sizes += batch_sizes
        rate += tokens_per_s
        row = per_model.setdefault(lock.name, {"running": 0, "waiting": 0, "requests": 0, "forward_passes": 0,
                                               "training_steps": 0, "tokens": 0, "tokens_per_s": 0.0,
                                               "batch_sizes": [], "step_batch_sizes": []})
        row["waiting"] += lock.waiting + queued.get(lock.name, 0)
        row["forward_passes"] += lock.granted["interactive"] + lock.granted["training"]
        row["training_steps"] += lock.granted["training"]
        row["tokens"] += lock.tokens
        row["tokens_per_s"] = round(row["tokens_per_s"] + tokens_per_s, 3)
        row["batch_sizes"] += batch_sizes
    for model, n in requests.items():
        if not model:
            continue
        row = per_model.setdefault(model, {"running": 0, "waiting": 0, "requests": 0, "forward_passes": 0,
                                           "training_steps": 0, "tokens": 0, "tokens_per_s": 0.0, "batch_sizes": [],
                                           "step_batch_sizes": []})
        row["requests"] = n
        row["running"] = running.get(model, 0)
    step_sizes: list[int] = []
    for model, shared in step_batch_sizes(WINDOW_S).items():
        step_sizes += shared
        if model in per_model:
            per_model[model]["step_batch_sizes"] = shared
    return {"running": sum(running.values()), "waiting": sum(r["waiting"] for r in per_model.values()),
            "batch_sizes": sizes, "tokens_per_s": round(rate, 3), "cache_hits": cache.hits,
            "coalesced": cache.coalesced, "requests": sum(requests.values()), "per_model": per_model,
            "step_batch_sizes": step_sizes}
