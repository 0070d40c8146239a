"""LoRA lens: live PEFT fine-tunes on a shadow of the shared model, one owner (session) per run.

Where a change goes:
- lens.py: ``iter_run`` / ``run`` (Progress while training, then the snapshot) and ``to_api`` (``/lora_train`` JSON).
- train.py: starting and following runs, snapshots; registry.py: LoraRun, the registry SFT and DPO share (on
  explorer/core/runs.py) and the adapter patch; steps.py: the optimiser steps (one locked step at a time).
- model.py: settings (PEFT / transformers names), the weight-sharing shadow, parameter counts, ‖BA‖, merge check.
- data.py: datasets and the loss mask; infer.py: base vs adapted answers (adapter on inside its passes only);
  adapter_io.py: adapter export and upload; chunks.py: a run as ZeroGPU-sized calls (state in and out on the CPU).
"""
from explorer.lora.lens import iter_run, run, to_api
from explorer.lora.model import LoraSettings, settings_from_dict
from explorer.lora.train import (MAX_SEQ_TOKENS, RUNNING, LoraRun, RunSnapshot, active_run, adapter_active, get_run,
                                 preview, register, runs_for, snapshot, start_run, stop, wait)

__all__ = ["iter_run", "run", "to_api", "LoraSettings", "settings_from_dict", "MAX_SEQ_TOKENS", "RUNNING", "LoraRun",
           "RunSnapshot", "active_run", "adapter_active", "get_run", "preview", "register", "runs_for", "snapshot",
           "start_run", "stop", "wait"]
