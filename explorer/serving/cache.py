"""Identical work once: a result cache bounded in bytes, with coalescing of identical requests in flight.

A request's key is everything that determines its result: the lens, the endpoint, the inputs and settings as
given (model name, quantisation method, prompt ...), the runtime variant (device and default dtype) and the
lens's **code version** (the package version plus a SHA-256 of the lens's source files, so it works without
git, e.g. on a Space). A request that differs in any of them gets its own computation; an entry made by an
older code version can never match, because the version is part of the key.

- :meth:`ResultCache.call` runs a function once per key: a second identical request that arrives while the
  first runs waits for it (``coalesced``); a later one gets the stored result (``cache_hits``).
- :meth:`ResultCache.stream` does the same for generator handlers (progressive redraws): the first caller
  sees every item, the others get the final one.
- Finished results live in an LRU bounded by ``Limits.result_cache_bytes`` (size measured as the pickled
  size); results cut short (an exception, a Stop) are never stored.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import pickle
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterator

from explorer.core.config import REPO_ROOT, get_limits


@lru_cache(maxsize=None)
def code_version(lens: str) -> str:
    """``"<package version>+<first 16 hex of SHA-256 over the lens's source files>"``.

    The files hashed are ``explorer/<lens>/``, ``components/tabs/<lens>/`` and ``explorer/core/`` (``*.py``),
    read in sorted path order. Missing folders are skipped.
    """
    digest = hashlib.sha256()
    for folder in (os.path.join("explorer", lens), os.path.join("components", "tabs", lens),
                   os.path.join("explorer", "core")):
        root = os.path.join(REPO_ROOT, folder)
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    digest.update(os.path.relpath(path, REPO_ROOT).encode())
                    with open(path, "rb") as handle:
                        digest.update(handle.read())
    return f"{package_version()}+{digest.hexdigest()[:16]}"


@lru_cache(maxsize=1)
def package_version() -> str:
    """The project's version from ``pyproject.toml`` (``"0"`` when it cannot be read)."""
    try:
        import tomllib

        with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "0"


@lru_cache(maxsize=1)
def runtime_variant() -> str:
    """``"cuda"`` or ``"cpu"``: the device the shared models run on (their default dtype follows from it)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _plain(value: Any) -> Any:
    """A JSON-able canonical form of a handler argument (DataFrames, arrays and dataclasses included)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # pandas DataFrame
        return {"columns": [str(c) for c in value.columns], "rows": _plain(value.values.tolist())}
    if hasattr(value, "tolist"):  # numpy array or scalar
        return _plain(value.tolist())
    if hasattr(value, "__dataclass_fields__"):
        return {"__type__": type(value).__name__,
                **{k: _plain(getattr(value, k)) for k in sorted(value.__dataclass_fields__)}}
    return {"__type__": type(value).__name__, "repr": repr(value)}


def make_key(lens: str, endpoint: str, args: tuple, kwargs: dict | None = None) -> str:
    """The cache key (SHA-256 hex) of one request: lens, endpoint, inputs and settings, runtime, code version."""
    payload = json.dumps({"lens": lens, "endpoint": endpoint, "args": _plain(list(args)),
                          "kwargs": _plain(kwargs or {}), "variant": runtime_variant(),
                          "code": code_version(lens)}, sort_keys=True, default=repr)
    return hashlib.sha256(payload.encode()).hexdigest()


def size_of(value: Any) -> int:
    """Approximate bytes of ``value``: its pickled size (its ``repr`` length when it cannot be pickled)."""
    try:
        return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 - some objects (locks, generators) do not pickle
        return len(repr(value).encode())


@dataclass
class Entry:
    """A stored result: ``value``, its ``size`` (bytes), when it was computed (Unix s), the code version."""

    value: Any
    size: int
    computed_at: float
    version: str


@dataclass
class _Flight:
    """A computation in progress that identical requests wait for."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None
    ok: bool = False


@dataclass(frozen=True)
class Served:
    """How a result was obtained: ``how`` is ``"computed"``, ``"cached"`` or ``"coalesced"``;
    ``computed_at`` is when (Unix seconds) the result was computed."""

    how: str
    computed_at: float

    @property
    def age_s(self) -> float:
        """Seconds since the result was computed."""
        return max(0.0, time.time() - self.computed_at)


class ResultCache:
    """LRU of finished results bounded in bytes, plus coalescing of identical requests in flight.

    Attributes:
        max_bytes: the byte budget (``Limits.result_cache_bytes`` by default).
        hits, coalesced, misses: counts since start.
    """

    def __init__(self, max_bytes: int | None = None):
        self.max_bytes = get_limits().result_cache_bytes if max_bytes is None else int(max_bytes)
        self._entries: collections.OrderedDict[str, Entry] = collections.OrderedDict()
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.coalesced = self.misses = 0

    def get(self, key: str) -> Entry | None:
        """The stored entry for ``key`` (most recently used afterwards), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: str, value: Any, version: str = "", computed_at: float | None = None) -> bool:
        """Store ``value``; evict least recently used entries beyond ``max_bytes``. Returns False when the value
        alone is over a quarter of the budget (not stored)."""
        size = size_of(value)
        if size > self.max_bytes // 4:
            return False
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            self._entries[key] = Entry(value, size, time.time() if computed_at is None else computed_at, version)
            self.bytes += size
            while self.bytes > self.max_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self.bytes -= dropped.size
        return True

    def discard(self, key: str) -> None:
        """Forget ``key``'s stored result (the next request computes it again)."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self.bytes -= entry.size

    def clear(self) -> None:
        """Forget every stored result."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _join_or_lead(self, key: str, refresh: bool) -> tuple[str, Any]:
        """``("hit", Entry)``, ``("wait", _Flight)`` or ``("lead", _Flight)`` for ``key``."""
        with self._lock:
            entry = None if refresh else self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return "hit", entry
            flight = self._flights.get(key)
            if flight is not None:
                self.coalesced += 1
                return "wait", flight
            flight = self._flights[key] = _Flight()
            self.misses += 1
            return "lead", flight

    def _land(self, key: str, flight: _Flight, version: str) -> None:
        with self._lock:
            self._flights.pop(key, None)
        if flight.ok and self.max_bytes > 0:
            self.put(key, flight.value, version)
        flight.done.set()

    def call(self, key: str, fn: Callable[[], Any], version: str = "", refresh: bool = False) -> tuple[Any, Served]:
        """``fn()`` once per ``key``: a stored result, the result of an identical request in flight, or computed.

        Args:
            refresh: ignore a stored result and compute again (the "recompute" action); the new result replaces it.
        Returns:
            ``(value, Served)``.
        Raises:
            whatever ``fn`` raised (identical requests waiting on it get the same exception).
            explorer.core.turns.Cancelled: this request waited for an identical one and its client went away
                (the computation goes on for the others).
        """
        while True:
            role, item = self._join_or_lead(key, refresh)
            if role == "hit":
                return item.value, Served("cached", item.computed_at)
            if role == "wait":
                _wait_for(item)
                if item.error is not None:
                    raise item.error
                if item.ok:
                    return item.value, Served("coalesced", time.time())
                continue  # the leader was cut short (or its client left): try again (lead or join a new flight)
            try:
                item.value = fn()
                item.ok = True
            except BaseException as exc:  # a leader whose client went away leaves the work to a waiter
                item.error = exc if isinstance(exc, Exception) and not _is_cancel(exc) else None
                raise
            finally:
                self._land(key, item, version)
            return item.value, Served("computed", time.time())

    def stream(self, key: str, gen_fn: Callable[[], Iterator[Any]], version: str = "",
               refresh: bool = False) -> Iterator[tuple[Any, Served]]:
        """Like :meth:`call` for a generator: the computing request yields every item, identical ones in flight
        and later ones get only the final item. A generator closed early (Stop) stores nothing.

        Yields:
            ``(item, Served)``.
        """
        while True:
            role, item = self._join_or_lead(key, refresh)
            if role == "hit":
                yield item.value, Served("cached", item.computed_at)
                return
            if role == "wait":
                _wait_for(item)
                if item.error is not None:
                    raise item.error
                if item.ok:
                    yield item.value, Served("coalesced", time.time())
                    return
                continue
            last, seen = None, False
            try:
                for last in gen_fn():
                    seen = True
                    yield last, Served("computed", time.time())
                item.value, item.ok = last, seen
            except Exception as exc:
                item.error = None if _is_cancel(exc) else exc
                raise
            finally:
                self._land(key, item, version)
            return


def _is_cancel(exc: BaseException) -> bool:
    """True for :class:`explorer.core.turns.Cancelled`: one client left, the identical requests still want it."""
    from explorer.core.turns import Cancelled

    return isinstance(exc, Cancelled)


def _wait_for(flight: _Flight, check_every_s: float = 0.25) -> None:
    """Wait for ``flight`` to land; a waiter whose client went away stops waiting (``Cancelled``)."""
    from explorer.core.turns import raise_if_cancelled

    while not flight.done.wait(check_every_s):
        raise_if_cancelled()


_CACHE: ResultCache | None = None
_CACHE_LOCK = threading.Lock()


def result_cache() -> ResultCache:
    """The process-wide :class:`ResultCache` (sized by ``Limits.result_cache_bytes``)."""
    global _CACHE
    with _CACHE_LOCK:
        if _CACHE is None:
            _CACHE = ResultCache()
        return _CACHE


def mark_served(value: Any, served: Served, source: str = "result cache") -> Any:
    """``value`` with its provenance saying how it was served, for a result not computed just now.

    A computed result is returned unchanged. Otherwise: a frozen dataclass with a ``provenance`` field gets
    ``provenance.as_cached()`` (kind ``cached``, ``when`` = when it was computed); a dict gets a
    ``"provenance"`` entry of kind ``cached`` (its own kind replaced when it had one); tuples and lists are
    handled element by element (a handler's several outputs).
    """
    import dataclasses

    from explorer.core.provenance import Provenance

    if served.how == "computed":
        return value
    if isinstance(value, tuple):
        return tuple(mark_served(v, served, source) for v in value)
    if isinstance(value, list):
        return [mark_served(v, served, source) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        prov = getattr(value, "provenance", None)
        if isinstance(prov, Provenance):
            try:
                return dataclasses.replace(value, provenance=prov.as_cached())
            except (TypeError, ValueError):
                return value
        return value
    if isinstance(value, dict) and ("provenance" in value or _looks_like_api(value)):
        prov = value.get("provenance")
        base = dict(prov) if isinstance(prov, dict) else {"source": source, "model": ""}
        base.update({"kind": "cached", "when": base.get("when", served.computed_at)})
        if served.how == "cached" and not isinstance(prov, dict):
            base["when"] = served.computed_at
        return {**value, "provenance": base}
    return value


def _looks_like_api(value: dict) -> bool:
    """A JSON API answer (string keys, no gradio update dict)."""
    return all(isinstance(k, str) for k in value) and "__type__" not in value
