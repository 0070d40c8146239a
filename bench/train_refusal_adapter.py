"""Train the ``refusal_adapter`` injection defence once and store it in PEFT format with its manifest.

Usage::

    nice -n 5 python bench/train_refusal_adapter.py            # writes data/agents/refusal_adapter/

DPO (the Fine-tuning tab's machinery, :mod:`explorer.lora.dpo`: a LoRA adapter on a weight-sharing shadow of
SmolLM2, the shared model never mutated) on ``data/agents/refusal_pairs.jsonl`` with
:data:`explorer.agents.refusal_adapter.TRAIN_SETTINGS` (r=8 on q/v/o, 8 steps of 2 pairs: a few CPU minutes). Saves PEFT's
``save_pretrained`` output (``adapter_model.safetensors``, ``adapter_config.json``) and ``manifest.json``: the command,
library versions, settings, the final DPO figures and the SHA-256 of the adapter file and of the pairs file, which
the defence checks before every use.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from explorer.agents import refusal_adapter as ra  # noqa: E402
from explorer.lora import dpo, train  # noqa: E402


def versions() -> dict:
    """Versions of the libraries that made the adapter."""
    import peft
    import torch
    import transformers
    import trl

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "trl": trl.__version__}


def main(argv=None) -> int:
    """Train, save, write the manifest; prints where and how big. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=ra.ADAPTER_DIR, help="folder for the adapter and its manifest")
    args = parser.parse_args(argv)
    with open(ra.PAIRS_PATH, encoding="utf-8") as handle:
        pairs = [json.loads(line) for line in handle if line.strip()]
    run = dpo.start_dpo("bench-refusal-adapter", pairs, ra.TRAIN_SETTINGS, dataset_name="refusal_pairs")
    train.wait(run)
    snap = dpo.snapshot(run)
    print(f"status {snap.status}: {snap.steps_done} steps, last loss {float(snap.losses[-1]):.4f}, "
          f"train reward accuracy {snap.train_accuracy:.2f}, margin {snap.train_margin:.3f}")
    if snap.status != "done":
        print(run.message)
        if snap.status != "stopped" or snap.steps_done == 0:
            return 1
        print(f"storing the adapter as it stands after {snap.steps_done} steps (the manifest says so)")
    tmp = tempfile.mkdtemp(prefix="refusal-adapter-")
    try:
        with run.engine.turn():
            run.peft_model.save_pretrained(tmp, selected_adapters=[run.adapter_name])
        os.makedirs(args.out, exist_ok=True)
        for root, _dirs, files in os.walk(tmp):
            for name in files:
                if name in (ra.WEIGHTS, ra.CONFIG):
                    shutil.copyfile(os.path.join(root, name), os.path.join(args.out, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    config_path = os.path.join(args.out, ra.CONFIG)
    config = json.load(open(config_path, encoding="utf-8"))
    config["base_model_name_or_path"] = run.engine.spec.hub_id
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
    weights = os.path.join(args.out, ra.WEIGHTS)
    manifest = {
        "command": "nice -n 5 python bench/train_refusal_adapter.py",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": ra.ADAPTER_MODEL, "hub_id": run.engine.spec.hub_id, "versions": versions(),
        "settings": ra.TRAIN_SETTINGS, "pairs": os.path.relpath(ra.PAIRS_PATH, ra.ROOT), "n_pairs": len(pairs),
        "pairs_sha256": ra.sha256_file(ra.PAIRS_PATH), "adapter_file": ra.WEIGHTS,
        "adapter_bytes": os.path.getsize(weights), "adapter_sha256": ra.sha256_file(weights),
        "status": snap.status, "steps_done": snap.steps_done, "final_loss": float(snap.losses[-1]), "train_reward_accuracy": float(snap.train_accuracy),
        "train_margin": float(snap.train_margin),
    }
    with open(os.path.join(args.out, ra.MANIFEST), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
    print(f"stored {weights}: {manifest['adapter_bytes']:,} bytes, sha256 {manifest['adapter_sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
