"""The stored top induction heads of the embedded models, with the command that found them and the causal check.

``python bench/find_induction_heads.py --write`` runs the head detector (:func:`explorer.circuits.run_heads`,
n = 50, seed 0) on each embedded model, then checks the heads causally: the mean next-token loss on the repeated
half of the detector sequence with the top 3 induction heads zero-ablated, against 3 random heads (a private
generator, seed 0) and against no ablation. It writes ``data/circuits/induction_heads.json``; the tab shows it
with a STORED badge (the file and command) until a live run replaces it.
"""
from __future__ import annotations

import json
import os

from explorer.core.config import data_path
from explorer.core.provenance import Provenance, stored

STORED_FILE = data_path("circuits", "induction_heads.json")
STORE_COMMAND = "python bench/find_induction_heads.py --write"


def load_stored(path: str = STORED_FILE) -> dict | None:
    """The stored table ``{model: {"top": [{"layer", "head", "score"}], "loss": {"none", "top3", "random3"},
    "random_heads": [...], "n", "seed"}, "meta": {...}}``, or None when the file is missing."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def stored_provenance(path: str = STORED_FILE, model: str = "") -> Provenance:
    """STORED provenance of the table: its path, the command that wrote it, the file's time."""
    return stored(os.path.relpath(path, os.path.dirname(os.path.dirname(path))), STORE_COMMAND,
                  when=os.path.getmtime(path) if os.path.exists(path) else None, model=model)
