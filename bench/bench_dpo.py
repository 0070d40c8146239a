"""DPO benchmark: our instrumented, lock-per-step DPO run vs a plain TRL/PEFT DPO loop, memory, final margin.

Prints (one line each, the baseline measured in the same run):
- seconds per step of :func:`explorer.lora.dpo.run` vs a plain loop (``get_peft_model`` on a private copy of the
  model, the same pairs and batches through TRL's ``DataCollatorForPreference``, policy forward + backward, the
  reference forward with the adapter disabled, as TRL's ``DPOTrainer`` does for a PEFT model, TRL's
  ``selective_log_softmax`` and the sigmoid DPO loss, AdamW, clipping; no lock, no measurements); target ≤ 1.15×.
  Median step after the first; the two are interleaved to share the machine's noise. Our per-step time is the
  wall time between steps, so it includes the KL evaluations on the held-out prompts every ``kl_every`` steps.
- the same for whole runs: our wall time (reference log-probs once, KL evaluations, final accuracy over every pair)
  divided by the steps vs the plain loop's total.
- peak resident memory of the process (bytes); final batch margin, and reward accuracy and margin over every
  training pair after our run.

Run: ``python bench/bench_dpo.py [--steps 8] [--rounds 2]``.
"""
from __future__ import annotations

import argparse
import copy
import resource
import statistics
import time

from common import report


def plain_trl_peft_seconds(engine, pairs, settings, steps: int) -> list[float]:
    """Per-step seconds of a plain PEFT loop with TRL's DPO pieces on a private deep copy of the model."""
    import torch
    import torch.nn.functional as F
    from peft import get_peft_model
    from transformers import get_scheduler
    from trl.trainer.utils import selective_log_softmax

    from explorer.lora.data import batch_order
    from explorer.lora.dpo_data import collate_pairs, tokenize_pairs
    from explorer.lora.model import peft_config

    s = settings.lora()
    tokenized = tokenize_pairs(engine.tokenizer, pairs)
    model = get_peft_model(copy.deepcopy(engine.model), peft_config(s))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=0.0)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=0, num_training_steps=steps)

    def logps(logits, batch):
        per_token = selective_log_softmax(logits[:, :-1], batch["input_ids"][:, 1:])
        return (per_token * batch["completion_mask"][:, 1:]).sum(1).chunk(2)

    times = []
    for indices in batch_order(len(tokenized), s.batch_size, steps, s.seed):
        batch = collate_pairs([tokenized[i] for i in indices], engine.tokenizer.pad_token_id or 0)
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}
        start = time.perf_counter()
        chosen, rejected = logps(model(**inputs).logits, batch)
        with torch.no_grad(), model.disable_adapter():
            ref_chosen, ref_rejected = logps(model(**inputs).logits, batch)
        loss = -F.logsigmoid(settings.beta * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    del model, optimizer
    return times


def ours(pairs, settings: dict, owner: str):
    """``(per-step wall seconds, whole-run wall seconds, snapshot)`` of :func:`explorer.lora.dpo.run`."""
    import numpy as np

    from explorer.lora import dpo

    start = time.perf_counter()
    snap = dpo.run(pairs, settings, owner=owner, dataset_name="Concise vs rambling")
    return list(np.diff(snap.base.elapsed_s)), time.perf_counter() - start, snap


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from explorer.lora import dpo
    from explorer.lora.dpo_data import DEFAULT_SET, builtin_preferences
    from explorer.lora.model import base_engine

    pairs = builtin_preferences(DEFAULT_SET)
    settings = {"steps": args.steps}
    parsed = dpo.dpo_settings(settings, max_steps=10_000)
    engine = base_engine(parsed.lora())
    mine, plain, mine_total, plain_total = [], [], 0.0, 0.0
    for i in range(args.rounds):
        times, total, snap = ours(pairs, settings, owner=f"bench-dpo-{i}")
        mine += times
        mine_total += total
        base_times = plain_trl_peft_seconds(engine, pairs, parsed, args.steps)
        plain += base_times[1:]
        plain_total += sum(base_times)
    report("dpo_seconds_per_step", statistics.median(mine), "s", baseline=statistics.median(plain),
           baseline_name="plain_trl_peft_loop", target="<= 1.15x")
    report("dpo_run_seconds_per_step_all_in", mine_total / (args.rounds * args.steps), "s",
           baseline=plain_total / (args.rounds * args.steps), baseline_name="plain_trl_peft_loop")
    report("peak_resident_bytes", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "bytes")
    report("dpo_final_batch_margin", float(snap.margins[-1]), "beta*nats")
    report("dpo_train_reward_accuracy", snap.train_accuracy, "share")
    report("dpo_train_margin", snap.train_margin, "beta*nats")
    print(f"# threads={torch.get_num_threads()} steps={args.steps} rounds={args.rounds} beta={parsed.beta} "
          f"lr={parsed.learning_rate} rank={parsed.rank} batch={parsed.batch_size} kl_every={parsed.kl_every} "
          f"kl_last={snap.kl[-1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
