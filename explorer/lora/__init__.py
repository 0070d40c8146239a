"""LoRA lens: live PEFT fine-tunes on a shadow of the shared model, one owner per run.

Where a change goes: train.py: runs, snapshots and the training loop; model.py: settings and the shadow model; data.py: datasets; infer.py: base vs adapted answers; adapter_io.py: adapter download/upload.
"""
from explorer.lora.train import *  # noqa: F401,F403  (re-exports run, iter_run, results, to_api)
