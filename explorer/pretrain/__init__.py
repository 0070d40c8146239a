"""Pretraining lens: a tiny Llama learns the grammar corpus from random weights; induction heads form; the
handbook's hyperparameters and data quality, each shown on live runs.

Where a change goes:
- lens.py: ``iter_run`` / ``run`` / ``to_api`` (``/pretrain`` JSON), job kinds and snapshots.
- corpus.py: the seeded grammar (SHA-256 of its first MB pinned); tokenizer.py: the byte-level BPE (shipped in
  data/pretrain/); data.py: token streams, corrupted variants, batches.
- model.py: settings and caps, the LlamaConfig model, the loss, samples; loop.py: the training loop.
- induction.py: the 2-layer attention-only run and its induction score; experiments.py: hyperparameter rows.
- runs.py: the run registry (cap, queue, one job per session, idle stop); stored.py: the stored long runs.
"""
from explorer.pretrain.lens import KINDS, PretrainResult, iter_run, run, snapshot, start, to_api
from explorer.pretrain.model import PretrainSettings, settings_from_dict
from explorer.pretrain.runs import active_job, get_job, jobs_for, stop, wait

__all__ = ["KINDS", "PretrainResult", "iter_run", "run", "snapshot", "start", "to_api", "PretrainSettings",
           "settings_from_dict", "active_job", "get_job", "jobs_for", "stop", "wait"]
