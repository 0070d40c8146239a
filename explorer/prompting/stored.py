"""The stored prompting table: every pattern on every task's held-out items, written by
``python bench/bench_prompting.py --write`` to ``data/prompting/bench_results.jsonl`` (one line per task, model
and pattern, with the command, versions and settings that made it). Read here without a model."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from explorer.core.config import data_path
from explorer.core.provenance import Provenance

RESULTS_FILE = ("prompting", "bench_results.jsonl")


def load_rows(path: str | None = None) -> list[dict]:
    """The stored rows (dicts as the bench wrote them; the last line wins for a repeated key); ``[]`` if none."""
    path = path or data_path(*RESULTS_FILE)
    if not os.path.exists(path):
        return []
    rows = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                rows[(row["task"], row["model"], row["pattern"])] = row
    return list(rows.values())


@dataclass(frozen=True)
class StoredTable:
    """The stored rows and where they come from (``provenance`` kind ``stored``, the file and its command)."""

    rows: tuple[dict, ...]
    provenance: Provenance

    def for_model(self, model: str) -> list[dict]:
        """The rows of one model."""
        return [r for r in self.rows if r["model"] == model]


def load_stored(path: str | None = None) -> StoredTable | None:
    """The stored table, or None when the bench has not written any row."""
    rows = load_rows(path)
    if not rows:
        return None
    commands = sorted({r.get("command", "python bench/bench_prompting.py --write") for r in rows})
    source = f"data/prompting/bench_results.jsonl ({'; '.join(commands)})"
    when = max(float(r.get("when", 0) or 0) for r in rows) or os.path.getmtime(path or data_path(*RESULTS_FILE))
    return StoredTable(rows=tuple(rows), provenance=Provenance("stored", source, when=when))
