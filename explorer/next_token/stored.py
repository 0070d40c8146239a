"""Stored bench results of the Next token lens (``data/next_token/<kind>_<model>.json``): one writer, one reader.

Each file holds ``{"meta": {"command", "date", "unix_time", "versions", "machine", "settings"}, ...payload}``
as written by ``python bench/bench_next_token.py --write``.
"""
from __future__ import annotations

import json
import os

from explorer.core.config import data_path
from explorer.core.provenance import Provenance, stored

BENCH_COMMAND = "python bench/bench_next_token.py --write"


def path(kind: str, model: str) -> str:
    """``data/next_token/<kind>_<model>.json`` (``/`` in Hub ids becomes ``--``)."""
    return data_path("next_token", f"{kind}_{model.replace('/', '--')}.json")


def write(kind: str, model: str, payload: dict, meta: dict) -> str:
    """Write ``payload`` (a result's ``to_api()`` without provenance) with ``meta``; returns the path."""
    target = path(kind, model)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    body = {"meta": meta, **{k: v for k, v in payload.items() if k != "provenance"}}
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(body, handle, indent=1, ensure_ascii=False)
    return target


def read(kind: str, model: str) -> tuple[dict, Provenance] | None:
    """``(data, provenance "stored")`` of the stored file, or ``None`` when the bench never wrote one."""
    source = path(kind, model)
    if not os.path.exists(source):
        return None
    with open(source, encoding="utf-8") as handle:
        data = json.load(handle)
    meta = data.get("meta", {})
    prov = stored(os.path.relpath(source, data_path("..")), meta.get("command", BENCH_COMMAND),
                  when=meta.get("unix_time"), model=model)
    return data, prov
