"""LoRA lens benchmark: our instrumented, lock-per-step run vs a plain PEFT training loop, and LoRA vs QLoRA.

Prints (one line each, baselines measured in the same run):
- seconds per step of :func:`explorer.lora.run` vs a plain PEFT loop (``get_peft_model`` on a private
  copy of the model, same batches, AdamW, scheduler and clipping, no lock, no measurements); target ≤ 1.15×.
  The median step time after the first step is used; the two are interleaved to share the machine's noise.
- extra bytes one run holds (LoRA matrices + AdamW state) vs a private fp32 copy of the base.
- QLoRA (NF4 base) seconds per step vs LoRA, and the base weights' bytes NF4 vs fp32.
- peak resident memory of the process (bytes).

Run: ``python bench/bench_lora.py [--steps 6]``.
"""
from __future__ import annotations

import argparse
import copy
import resource
import statistics
import time

from common import report


def plain_peft_seconds(engine, dataset, settings_dict, steps: int) -> list[float]:
    """Per-step seconds of a plain PEFT loop on a private deep copy of the model (the baseline)."""
    import torch
    from peft import get_peft_model
    from transformers import get_scheduler

    from explorer.lora.data import batch_order, collate, tokenize_dataset, validate_dataset
    from explorer.lora.model import peft_config, settings_from_dict

    s, _ = settings_from_dict({**settings_dict, "steps": steps}, max_steps=10_000)
    tokenized = tokenize_dataset(engine.tokenizer, validate_dataset(dataset, None), 512)
    torch.manual_seed(s.seed)
    model = get_peft_model(copy.deepcopy(engine.model), peft_config(s))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=0.0)
    scheduler = get_scheduler(s.lr_scheduler_type, optimizer, num_warmup_steps=s.warmup_steps, num_training_steps=steps)
    times = []
    for indices in batch_order(len(tokenized), s.batch_size, steps, s.seed):
        batch = collate([tokenized[i] for i in indices], engine.tokenizer.pad_token_id)
        start = time.perf_counter()
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    del model, optimizer
    return times


def ours_seconds(dataset, settings_dict, steps: int, owner: str) -> tuple[list[float], object]:
    """Per-step wall seconds of :func:`explorer.lora.run` (lock per step, per-step measurements)."""
    import numpy as np

    from explorer import lora

    snap = lora.run(dataset, {**settings_dict, "steps": steps}, owner=owner, dataset_name="bench")
    return list(np.diff(np.concatenate([[0.0], snap.elapsed_s]))), snap


def _median_after_first(times: list[float]) -> float:
    return statistics.median(times[1:] if len(times) > 1 else times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from explorer.lora.data import builtin_dataset
    from explorer.lora.model import LoraSettings, base_engine

    dataset = builtin_dataset("Fictional facts (Veloria)")
    settings = {"seed": 0}
    engine = base_engine(LoraSettings())
    ours, plain = [], []
    for i in range(args.rounds):
        times, snap = ours_seconds(dataset, settings, args.steps, owner=f"bench-{i}")
        ours += times[1:]
        plain += plain_peft_seconds(engine, dataset, settings, args.steps)[1:]
    ours_s, plain_s = statistics.median(ours), statistics.median(plain)
    report("lora_seconds_per_step", ours_s, "s", baseline=plain_s, baseline_name="plain_peft_loop", target="<= 1.15x")

    run_bytes = snap.trainable_params * 4 * 3  # fp32 LoRA weights + AdamW exp_avg + exp_avg_sq
    copy_bytes = sum(p.numel() * p.element_size() for p in engine.model.parameters())
    report("lora_run_extra_bytes", run_bytes, "bytes", baseline=copy_bytes, baseline_name="private_fp32_copy")

    q_times, q_snap = ours_seconds(dataset, {**settings, "qlora": True}, args.steps, owner="bench-q")
    report("qlora_seconds_per_step", _median_after_first(q_times), "s", baseline=ours_s, baseline_name="lora")
    q_engine = base_engine(LoraSettings(qlora=True))
    report("qlora_base_weights_bytes", q_engine.model.get_memory_footprint(), "bytes",
           baseline=engine.model.get_memory_footprint(), baseline_name="fp32_base")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report("peak_resident_bytes", peak, "bytes")
    print(f"# threads={torch.get_num_threads()} steps={args.steps} rounds={args.rounds} "
          f"final_loss={snap.loss[-1]:.3f} qlora_final_loss={q_snap.loss[-1]:.3f}", flush=True)


if __name__ == "__main__":
    main()
