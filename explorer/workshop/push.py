"""Push: a room's view and result serialised once per change and handed, as the same bytes, to every follower.

A presenter's change (tab, prompt, settings: :meth:`PushHub.publish_view`) or new result (a tab's shown outputs,
already serialised the way the presenter's page receives them: :meth:`PushHub.publish_result`) builds one
:class:`Payload`: the JSON document ``{"version", "room", "published_at", "result_version", "state", "result"}``,
its gzip compression, the Server-Sent Events message that announces it (carrying the view itself), and a version
that increases by one per change. Followers never cause a render: a follower's push connection
(``components/room_routes.py``) waits in :meth:`PushHub.wait_newer` and is sent the newest version's prepared
message. A new result up to ``inline_bytes`` (JSON) travels inside that message, so a follower draws it with no
request of its own; a bigger one is announced and each follower fetches it once, one conditional GET (ETag = the
version) answered with the stored gzip bytes. (Measured with 200 followers: when every result was fetched, the
burst of 200 GETs per result through Gradio's ASGI stack held followers' views back by seconds at p95.) A follower that reads slowly, or reconnects after a drop, skips straight to the latest version (only the
latest is kept: that is the back-pressure rule), and a version from the future is treated as "nothing seen".

Caps (``Limits``): push connections per room (``room_max_followers``), per follower browser
(``room_push_per_client``) and per IP address (``room_push_per_ip``); a payload above ``room_push_bytes`` drops
its largest outputs with a note. Pure Python: no gradio, no web framework; waiting uses asyncio futures woken
thread-safely, because results are published from Gradio's worker threads and followers wait on the server's
event loop.
"""
from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable


class PushRefused(ValueError):
    """A push connection over a cap (per room, per client or per IP address); the message names the cap."""


@dataclass(frozen=True)
class Payload:
    """One published version of a room, serialised once.

    Attributes:
        version: 1, 2, ... per change of the room's view or result.
        body: the JSON document (UTF-8 bytes): ``{"version", "room", "published_at" (Unix s), "result_version",
            "state" (the
            presenter's ``{"tab", "params", "runs"}``), "result" (``None`` or ``{"tab", "published_at",
            "outputs": [{"id", "kind", "label", "value"}]}``)}``.
        gzip: ``body`` compressed once with gzip (level 6), sent as is to every follower that accepts gzip.
        published_at: Unix time (s) of the change.
        result_version: increases with each new result only; a follower fetches ``body`` when it moves, since
            a change of view alone travels whole in ``event``.
        event: the Server-Sent Events message announcing this version, built once: ``id: <version>``,
            ``event: version``, data ``{"version", "published_at", "result_version", "followers" (at the
            change), "state"}`` (ASCII JSON on one line), ``"quiz"`` (in ``body`` too) while the room has a
            question (:meth:`PushHub.publish_quiz`), and ``"result"`` (as in ``body``) when this version carries a
            new result of at most ``inline_bytes``.
    """

    version: int
    body: bytes
    gzip: bytes
    published_at: float
    result_version: int = 0
    event: bytes = b""

    @property
    def etag(self) -> str:
        """The HTTP entity tag of this version (quoted, as RFC 9110 writes it)."""
        return f'"v{self.version}"'


@dataclass(frozen=True)
class Subscription:
    """One open push connection, as :meth:`PushHub.subscribe` counted it (give it back to ``unsubscribe``)."""

    code: str
    client: str
    ip: str


@dataclass
class _Room:
    version: int = 0
    result_version: int = 0
    state: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)  # tab -> {"tab", "published_at", "outputs"}
    last_tab: str | None = None  # the tab of the newest result
    quiz: dict | None = None  # the room's question as followers see it (explorer/workshop/quiz.py), or None
    payload: Payload | None = None
    connections: dict = field(default_factory=dict)  # client id -> open push connections
    waiters: list = field(default_factory=list)  # (loop, future) of connections waiting for a newer version


def _size(output: dict) -> int:
    return len(json.dumps(output, separators=(",", ":"), default=str))


class PushHub:
    """Thread-safe versioned payloads and push connections of every live room (one per process: :func:`push_hub`).

    Args:
        max_followers: push connections one room serves at once.
        per_client: push connections one client id may hold at once (in any room).
        per_ip: push connections one IP address may hold at once (in all rooms).
        max_bytes: largest ``body`` of a payload (bytes); beyond it the largest outputs are left out with a note.
        inline_bytes: largest new result (JSON bytes) sent inside the push event itself (0: always fetched).
        clock: time source (seconds), injectable for tests.

    Raises:
        ValueError: a cap below 1.
    """

    def __init__(self, max_followers: int = 500, per_client: int = 4, per_ip: int = 600,
                 max_bytes: int = 16 * 2**20, clock: Callable[[], float] = time.time, inline_bytes: int = 512 * 2**10):
        for name, value in (("max_followers", max_followers), ("per_client", per_client), ("per_ip", per_ip),
                            ("max_bytes", max_bytes)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1 (got {value})")
        self.max_followers, self.per_client, self.per_ip = int(max_followers), int(per_client), int(per_ip)
        self.max_bytes, self._clock, self.inline_bytes = int(max_bytes), clock, max(0, int(inline_bytes))
        self._rooms: dict[str, _Room] = {}
        self._presenters: dict[str, str] = {}  # presenter's session hash -> room code
        self._by_client: dict[str, int] = {}
        self._by_ip: dict[str, int] = {}
        self._lock = threading.Lock()

    # presenter side ----------------------------------------------------------------------------------------
    def present(self, session: str, code: str) -> None:
        """Remember that the page session ``session`` presents room ``code`` (its results are then pushed)."""
        if session:
            with self._lock:
                self._presenters[str(session)] = _norm(code)
                self._rooms.setdefault(_norm(code), _Room())

    def room_of(self, session: str | None) -> str | None:
        """The room that session ``session`` presents, or ``None``."""
        if not session:
            return None
        with self._lock:
            return self._presenters.get(str(session))

    def publish_view(self, code: str, state: dict) -> Payload | None:
        """The presenter's view changed: a new version when ``state`` differs from the last one, else ``None``.

        Args:
            state: ``{"tab", "params", "runs"}`` as :class:`explorer.workshop.RoomStore` validated it.
        """
        with self._lock:
            room = self._rooms.setdefault(_norm(code), _Room())
            if state == room.state and room.payload is not None:
                return None
            room.state = json.loads(json.dumps(state))
            return self._bump(_norm(code), room)

    def publish_result(self, code: str, tab: str, outputs: list[dict]) -> Payload:
        """A new result on ``tab``: ``outputs`` (``[{"id", "kind", "label", "value"}]``, JSON-able, serialised as
        the presenter's page received them) become the room's result for that tab, and a new version.

        Raises:
            ValueError: ``outputs`` is not a list of dicts.
        """
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise ValueError("outputs must be a list of dicts")
        with self._lock:
            room = self._rooms.setdefault(_norm(code), _Room())
            room.results[str(tab)] = {"tab": str(tab), "published_at": self._clock(), "outputs": list(outputs)}
            room.last_tab = str(tab)
            room.result_version += 1
            return self._bump(_norm(code), room, new_result=True)

    def publish_quiz(self, code: str, quiz: dict | None) -> Payload:
        """The room's question changed (opened, a guess counted, revealed): ``quiz`` (what every follower may see:
        :meth:`explorer.workshop.QuizBook.tally` without ``raw``, or the reveal, plus ``"state"``: ``open`` or
        ``revealed``) travels in the announcement of a new version (``quiz`` in its data and in the body)."""
        with self._lock:
            room = self._rooms.setdefault(_norm(code), _Room())
            room.quiz = json.loads(json.dumps(quiz)) if quiz is not None else None
            return self._bump(_norm(code), room)

    def _bump(self, code: str, room: _Room, new_result: bool = False) -> Payload:
        now = self._clock()
        room.version += 1
        tab = room.state.get("tab")
        result = room.results.get(tab) or (room.results.get(room.last_tab) if room.last_tab else None)
        if result is not None:
            result = self._fit(result)
        doc = {"version": room.version, "room": code, "published_at": now, "result_version": room.result_version,
               "state": room.state, "result": result}
        announce = {"version": room.version, "published_at": now, "result_version": room.result_version,
                    "followers": len(room.connections), "state": room.state}
        if room.quiz is not None:
            doc["quiz"] = announce["quiz"] = room.quiz
        body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        if new_result and result is not None and _size(result) <= self.inline_bytes:
            announce["result"] = result  # the result rides in the event: no follower request for it
        data = json.dumps(announce, separators=(",", ":"), default=str)
        event = f"id: {room.version}\nevent: version\ndata: {data}\n\n".encode()
        room.payload = Payload(room.version, body, gzip.compress(body, 6), now, room.result_version, event)
        waiters, room.waiters = room.waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_wake, future)
        return room.payload

    def _fit(self, result: dict) -> dict:
        """``result`` whose outputs fit ``max_bytes`` together: the largest are replaced by notes."""
        outputs = list(result["outputs"])
        sizes = [_size(o) for o in outputs]
        while sum(sizes) > self.max_bytes and any(o.get("kind") != "note" for o in outputs):
            i = max((j for j, o in enumerate(outputs) if o.get("kind") != "note"), key=lambda j: sizes[j])
            outputs[i] = {"id": outputs[i].get("id"), "kind": "note", "label": outputs[i].get("label"),
                          "value": f"Left out: {sizes[i]:,} bytes is over this server's push limit "
                                   f"(LLM_EXPLORER_ROOM_PUSH_BYTES = {self.max_bytes:,})."}
            sizes[i] = _size(outputs[i])
        return {**result, "outputs": outputs}

    def end(self, code: str) -> None:
        """Forget a room (it ended): its payload and presenter; waiting connections wake and find it gone."""
        code = _norm(code)
        with self._lock:
            room = self._rooms.pop(code, None)
            for session in [s for s, c in self._presenters.items() if c == code]:
                del self._presenters[session]
        if room is not None:
            for loop, future in room.waiters:
                loop.call_soon_threadsafe(_wake, future)

    def retain(self, live_codes) -> None:
        """Forget every room whose code is not in ``live_codes`` (rooms that ended while nobody asked), with its
        presenter sessions; called when a room opens, so ended rooms never pile up."""
        keep = {_norm(c) for c in live_codes}
        for code in [c for c in list(self._rooms) if c not in keep]:
            self.end(code)

    # follower side -----------------------------------------------------------------------------------------
    def latest(self, code: str) -> Payload | None:
        """The room's newest payload (``None``: nothing published yet or no such room here)."""
        with self._lock:
            room = self._rooms.get(_norm(code))
            return room.payload if room is not None else None

    def subscribe(self, code: str, client: str, ip: str) -> Subscription:
        """Count one more push connection of ``client`` (a browser's id) from ``ip`` to room ``code``.

        Raises:
            PushRefused: the room, the client or the address is at its cap.
        """
        code, client, ip = _norm(code), str(client or "")[:64] or "anonymous", str(ip or "")[:64]
        with self._lock:
            room = self._rooms.setdefault(code, _Room())
            if sum(room.connections.values()) >= self.max_followers:
                raise PushRefused(f"This room is full: it serves {self.max_followers} follower pages at most "
                                  "(LLM_EXPLORER_ROOM_MAX_FOLLOWERS). Ask the presenter to share the screen.")
            if self._by_client.get(client, 0) >= self.per_client:
                raise PushRefused(f"This browser already follows with {self.per_client} pages "
                                  "(LLM_EXPLORER_ROOM_PUSH_PER_CLIENT); close one and reload.")
            if self._by_ip.get(ip, 0) >= self.per_ip:
                raise PushRefused(f"Too many follower pages from one address ({self.per_ip}, "
                                  "LLM_EXPLORER_ROOM_PUSH_PER_IP).")
            room.connections[client] = room.connections.get(client, 0) + 1
            self._by_client[client] = self._by_client.get(client, 0) + 1
            self._by_ip[ip] = self._by_ip.get(ip, 0) + 1
        return Subscription(code, client, ip)

    def unsubscribe(self, sub: Subscription) -> None:
        """A push connection closed: give back what :meth:`subscribe` counted (idempotent per count)."""
        with self._lock:
            room = self._rooms.get(sub.code)
            if room is not None and room.connections.get(sub.client):
                room.connections[sub.client] -= 1
                if not room.connections[sub.client]:
                    del room.connections[sub.client]
            for table, key in ((self._by_client, sub.client), (self._by_ip, sub.ip)):
                if table.get(key):
                    table[key] -= 1
                    if not table[key]:
                        del table[key]

    def connected(self, code: str, client: str) -> bool:
        """Whether ``client`` holds an open push connection to room ``code`` now."""
        with self._lock:
            room = self._rooms.get(_norm(code))
            return bool(room is not None and room.connections.get(str(client or "")[:64]))

    def followers(self, code: str) -> int:
        """Follower pages connected to room ``code`` by push now (distinct client ids)."""
        with self._lock:
            room = self._rooms.get(_norm(code))
            return len(room.connections) if room is not None else 0

    async def wait_newer(self, code: str, seen: int, timeout: float) -> Payload | None:
        """The room's payload once its version is above ``seen`` (at once if it already is), or ``None`` after
        ``timeout`` seconds or when the room ends. A ``seen`` above the room's version (a version from the
        future: a stale or forged ``Last-Event-ID``) counts as nothing seen. Must run on an event loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            room = self._rooms.get(_norm(code))
            if room is None:
                return None
            payload = room.payload
            if payload is not None and (payload.version > seen or seen > room.version):
                return payload
            room.waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            with self._lock:
                if (loop, future) in room.waiters:
                    room.waiters.remove((loop, future))
            return None
        with self._lock:
            room = self._rooms.get(_norm(code))
            payload = room.payload if room is not None else None
        return payload if payload is not None and payload.version > seen else None


def _wake(future) -> None:
    if not future.done():
        future.set_result(None)


def _norm(code) -> str:
    return str(code or "").strip().lower()


@lru_cache(maxsize=1)
def push_hub() -> PushHub:
    """The process-wide :class:`PushHub`, sized from :func:`explorer.core.config.get_limits`."""
    from explorer.core.config import get_limits

    limits = get_limits()
    return PushHub(max_followers=limits.room_max_followers, per_client=limits.room_push_per_client,
                   per_ip=limits.room_push_per_ip, max_bytes=limits.room_push_bytes,
                   inline_bytes=limits.room_push_inline_bytes)
