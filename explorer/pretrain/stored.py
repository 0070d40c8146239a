"""Stored long runs (``data/pretrain/*.json``): a longer pretraining run and a longer induction run, with the
command that made them, shown beside the live runs with provenance ``stored``.

Write them again with ``python -m explorer.pretrain.stored [pretrain] [induction]`` (about 10 minutes on two
CPU cores).
"""
from __future__ import annotations

import json

import numpy as np

from explorer.core.config import data_path
from explorer.core.provenance import Provenance, meta_line, run_meta, stored
from explorer.pretrain.induction import PINNED, InductionCurve
from explorer.pretrain.loop import Curve
from explorer.pretrain.model import PretrainSettings

LONG_PRETRAIN = {"steps": 1000, "layers": 4, "d_model": 96, "heads": 4, "seq_len": 128, "batch_size": 16,
                 "lr": 3e-3, "warmup": 100, "eval_every": 25, "sample_every": 250}
LONG_INDUCTION = dict(PINNED, steps=2000, score_every=20)
FILES = {"pretrain": "long_pretrain.json", "induction": "long_induction.json"}
SCRIPT = "-m explorer.pretrain.stored"


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, PretrainSettings):
        return value.as_dict()
    return value


def write(kind: str, curve, path: str | None = None, argv: list[str] | None = None) -> str:
    """Write ``curve`` (kind ``pretrain`` or ``induction``) with :func:`run_meta` (``argv``: the command's
    arguments); returns the path."""
    path = path or data_path("pretrain", FILES[kind])
    record = {name: _jsonable(value) for name, value in vars(curve).items()}
    meta = run_meta(SCRIPT, list(argv or []), LONG_PRETRAIN if kind == "pretrain" else LONG_INDUCTION)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"meta": meta, "kind": kind, "curve": record}, handle)
    return path


def load(kind: str) -> tuple[object, Provenance, str]:
    """``(curve, provenance, how it was made)`` of the stored run ``kind`` (``pretrain`` or ``induction``).

    Raises:
        ValueError: an unknown kind. FileNotFoundError: the file is missing (write it with the command above).
    """
    if kind not in FILES:
        raise ValueError(f"kind must be one of {list(FILES)} (got {kind!r})")
    path = data_path("pretrain", FILES[kind])
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    record = data["curve"]
    if kind == "pretrain":
        record["settings"] = PretrainSettings(**record["settings"])
        record["samples"] = [tuple(s) for s in record["samples"]]
        curve = Curve(**record)
    else:
        record["scores"] = [np.asarray(s) for s in record["scores"]]
        curve = InductionCurve(**record)
    meta = data.get("meta") or {}
    return curve, stored(f"data/pretrain/{FILES[kind]}", meta.get("command", f"python {SCRIPT}")), meta_line(meta)


def main(kinds: list[str]) -> None:
    """Train the long runs ``kinds`` (``pretrain``, ``induction``; both when empty) on this machine, one thread
    each, one after the other, and write them."""
    import sys

    import torch

    from explorer.pretrain import induction
    from explorer.pretrain.data import corpus
    from explorer.pretrain.loop import new_curve, train_curve
    from explorer.pretrain.model import settings_from_dict

    torch.set_num_threads(1)
    kinds = kinds or list(FILES)
    if "pretrain" in kinds:
        data = corpus("clean")
        settings, _ = settings_from_dict(LONG_PRETRAIN)
        curve, model = new_curve("long run", settings, data)
        train_curve(curve, model, data)
        print(write("pretrain", curve, argv=sys.argv[1:]), curve.losses[-1])
    if "induction" not in kinds:
        return
    icurve = InductionCurve(settings=dict(LONG_INDUCTION), label="long induction run")
    induction.train(icurve)
    print(write("induction", icurve, argv=sys.argv[1:]), icurve.phase_change_step)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
