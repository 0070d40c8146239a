"""Workshop mode: rooms that follow a presenter, and talk files that keep a room's results for offline use.

- :mod:`explorer.workshop.rooms`: the room store (pure Python): unguessable codes from ``secrets``, the
  presenter's write token, follower heartbeats and counts, idle expiry (``Limits.room_idle_seconds``).
- :mod:`explorer.workshop.export`: the talk file (a zip with ``manifest.json``: format, schema version and the
  SHA-256 of every member) written from a room's scenes and read back, refused with the reason when a checksum
  or the schema does not match; loaded scenes carry provenance kind ``stored``.

- :mod:`explorer.workshop.push`: the push hub: a room's view and shown result serialised once per change into a
  versioned, gzip-compressed payload; followers' push connections wait for a newer version (caps per room, per
  client, per IP address). The HTTP side is ``components/room_push.py``.
- :mod:`explorer.workshop.quiz`: "guess the next token" together: a room's question (one forward pass), one
  guess per member scored by its first token, the histogram over the model's top-10 + other, the reveal.

A change to how rooms behave goes in ``rooms.py``; a change to the file format goes in ``export.py`` (raise
``SCHEMA_VERSION`` when old files can no longer be read). The UI is ``components/rooms.py``.
"""
from explorer.workshop.export import SCHEMA_VERSION, StoredScene, Talk, read_talk, write_talk
from explorer.workshop.push import Payload, PushHub, PushRefused, Subscription, push_hub
from explorer.workshop.quiz import QuizBook, next_token_distribution, quiz_book
from explorer.workshop.rooms import RoomGone, RoomStore, RoomView, room_store

__all__ = ["SCHEMA_VERSION", "StoredScene", "Talk", "read_talk", "write_talk",
           "RoomGone", "RoomStore", "RoomView", "room_store",
           "QuizBook", "next_token_distribution", "quiz_book",
           "Payload", "PushHub", "PushRefused", "Subscription", "push_hub"]
