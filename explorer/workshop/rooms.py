"""Rooms: an audience follows a presenter's tab, scene, prompt and settings.

A presenter creates a room and gets a short **code** (``CODE_LENGTH`` characters from ``ALPHABET``, drawn with
``secrets``: 31^10 ≈ 8e14 codes, so guessing one of a few hundred live rooms is hopeless) and a private **token**
(``secrets.token_urlsafe(32)``) that stays in the presenter's server-side session. Only a write carrying that token
changes the room (compared with ``hmac.compare_digest``); followers only read, so a follower can never change the
presenter's state. Each read by a follower is a heartbeat: the presenter sees how many followers were seen within
``follower_ttl_s``. A room that its presenter has not touched for ``idle_s`` seconds (``Limits.room_idle_seconds``)
ends and its code then answers "does not exist or has ended".

Nothing here touches a model: polling a room costs a dict lookup under a lock.
"""
from __future__ import annotations

import copy
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: read aloud and typed from a slide
CODE_LENGTH = 10
MAX_STATE_BYTES = 64 * 1024  # a room's published state (tab, prompt, settings) as JSON


class RoomGone(ValueError):
    """The code names no live room (never existed, mistyped, or ended after its idle time)."""


@dataclass(frozen=True)
class RoomView:
    """What a follower reads.

    Attributes:
        code: the room's code.
        version: increases by one each time the presenter publishes a different state (starts at 0: nothing yet).
        state: the presenter's last published state (a JSON-able dict: ``tab``, ``params``, ``runs``); a copy.
        followers: followers seen within the last ``follower_ttl_s`` seconds.
        published_at: Unix time (s) of the last change of ``state`` (0.0 before the first).
    """

    code: str
    version: int
    state: dict
    followers: int
    published_at: float


@dataclass
class _Room:
    token: str
    created: float
    touched: float
    version: int = 0
    state: dict = field(default_factory=dict)
    published_at: float = 0.0
    followers: dict[str, float] = field(default_factory=dict)  # follower id -> last seen


class RoomStore:
    """Thread-safe store of live rooms (one per process; see :func:`room_store`).

    Args:
        idle_s: seconds without a presenter write or heartbeat after which a room ends.
        max_rooms: live rooms at most; :meth:`create` refuses beyond it.
        follower_ttl_s: a follower not seen for this long no longer counts.
        clock: time source (seconds), injectable for tests.
    """

    def __init__(self, idle_s: float = 1800.0, max_rooms: int = 200, follower_ttl_s: float = 5.0,
                 clock: Callable[[], float] = time.time):
        if idle_s <= 0:
            raise ValueError(f"idle_s must be > 0 (got {idle_s})")
        self.idle_s, self.max_rooms, self.follower_ttl_s, self._clock = idle_s, max_rooms, follower_ttl_s, clock
        self._rooms: dict[str, _Room] = {}
        self._lock = threading.Lock()

    def _purge(self, now: float) -> None:
        for code in [c for c, r in self._rooms.items() if now - r.touched > self.idle_s]:
            del self._rooms[code]

    def _live(self, code: str, now: float) -> _Room:
        self._purge(now)
        room = self._rooms.get(str(code or "").strip().lower())
        if room is None:
            minutes = self.idle_s / 60
            raise RoomGone(f"Room {str(code)[:20]!r} does not exist or has ended (rooms end after "
                           f"{minutes:.0f} min without the presenter). Check the code, or ask the presenter for a "
                           "new link.")
        return room

    def create(self) -> tuple[str, str]:
        """Open a room; returns ``(code, token)``. Keep the token private to the presenter's session.

        Raises:
            ValueError: ``max_rooms`` rooms are live already.
        """
        now = self._clock()
        with self._lock:
            self._purge(now)
            if len(self._rooms) >= self.max_rooms:
                raise ValueError(f"{self.max_rooms} rooms are open on this server already; try again later.")
            while True:
                code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
                if code not in self._rooms:
                    break
            token = secrets.token_urlsafe(32)
            self._rooms[code] = _Room(token=token, created=now, touched=now)
        return code, token

    def publish(self, code: str, token: str, state: dict) -> RoomView:
        """The presenter's write: store ``state`` (``{"tab", "params": {name: value}, "runs": {tab: stamp}}``),
        bumping ``version`` only when it differs from the last; every call also keeps the room alive.

        Raises:
            RoomGone: no live room has this code.
            ValueError: ``token`` is not this room's presenter token, or ``state`` is not a JSON-able dict of at
                most ``MAX_STATE_BYTES``.
        """
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict (got {type(state).__name__})")
        try:
            size = len(json.dumps(state, sort_keys=True).encode())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"state must be JSON-able: {exc}") from None
        if size > MAX_STATE_BYTES:
            raise ValueError(f"state is {size} bytes; a room carries at most {MAX_STATE_BYTES}")
        now = self._clock()
        with self._lock:
            room = self._live(code, now)
            if not isinstance(token, str) or not hmac.compare_digest(room.token.encode(), token.encode()):
                raise ValueError("token: only the presenter's session can change this room")
            room.touched = now
            if state != room.state:
                room.state, room.version, room.published_at = copy.deepcopy(state), room.version + 1, now
            return self._view(code, room, now)

    def authorise(self, code: str, token: str, what: str = "change this room") -> None:
        """Check that ``token`` is the presenter's (and keep the room alive), for a presenter-only action.

        Raises:
            RoomGone: no live room has this code.
            ValueError: ``token`` is not this room's presenter token (the message says ``what`` was refused).
        """
        now = self._clock()
        with self._lock:
            room = self._live(code, now)
            if not isinstance(token, str) or not hmac.compare_digest(room.token.encode(), token.encode()):
                raise ValueError(f"token: only the presenter's session can {what}")
            room.touched = now

    def view(self, code: str, follower: str | None = None) -> RoomView:
        """A follower's read (``follower``: an id such as the session hash, counted as a heartbeat).

        Raises:
            RoomGone: no live room has this code.
        """
        now = self._clock()
        with self._lock:
            room = self._live(code, now)
            if follower:
                if follower not in room.followers and len(room.followers) >= 10_000:
                    self._drop_stale(room, now)
                room.followers[str(follower)[:128]] = now
            return self._view(str(code).strip().lower(), room, now)

    def leave(self, code: str, follower: str) -> None:
        """A follower stops following ("explore on my own"); unknown rooms and followers are ignored."""
        with self._lock:
            room = self._rooms.get(str(code or "").strip().lower())
            if room is not None:
                room.followers.pop(str(follower)[:128], None)

    def close(self, code: str, token: str) -> None:
        """The presenter ends the room now.

        Raises:
            RoomGone: no live room has this code.
            ValueError: ``token`` is not the presenter's.
        """
        now = self._clock()
        with self._lock:
            room = self._live(code, now)
            if not isinstance(token, str) or not hmac.compare_digest(room.token.encode(), token.encode()):
                raise ValueError("token: only the presenter's session can end this room")
            del self._rooms[str(code).strip().lower()]

    def live_codes(self) -> list[str]:
        """The codes of the rooms live now."""
        with self._lock:
            self._purge(self._clock())
            return list(self._rooms)

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._rooms)

    def _drop_stale(self, room: _Room, now: float) -> None:
        for who in [w for w, seen in room.followers.items() if now - seen > self.follower_ttl_s]:
            del room.followers[who]

    def _view(self, code: str, room: _Room, now: float) -> RoomView:
        self._drop_stale(room, now)
        return RoomView(code=code, version=room.version, state=copy.deepcopy(room.state),
                        followers=len(room.followers), published_at=room.published_at)


@lru_cache(maxsize=1)
def room_store() -> RoomStore:
    """The process-wide :class:`RoomStore`, sized from :func:`explorer.core.config.get_limits` (first made when
    the page is built)."""
    from explorer.core.config import get_limits

    limits = get_limits()
    return RoomStore(idle_s=limits.room_idle_seconds, max_rooms=limits.max_rooms)
