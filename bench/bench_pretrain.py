"""Pretraining lens benchmark: a run through the registry vs a plain PyTorch loop on the same model and batches.

Prints (one line each, baselines measured in the same run, interleaved to share the machine's noise):
- seconds per step of :func:`explorer.pretrain.run` (queue, per-step records, validation every ``eval_every``
  steps, samples, yielding to interactive work) over its whole wall time, vs a plain loop (same LlamaConfig model,
  same batches, AdamW, schedule and clipping; no evaluation, no records) in a thread with one intra-op thread,
  as the run's own thread has; target <= 1.15x.
- tokens per second of both.
- seconds from pressing start to the first loss point (stage rule: within 3 s).

Run: ``python bench/bench_pretrain.py [--steps 60] [--repeats 3]`` (through ``/work/shared/tools/bench-quiet``).
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid

from common import report


def plain_seconds(settings: dict) -> float:
    """Wall seconds of a plain PyTorch loop for ``settings`` in a fresh thread with one intra-op thread."""
    out = {}

    def work():
        import torch

        from explorer.pretrain.data import batch, corpus
        from explorer.pretrain.loop import lr_at, optimizer_for
        from explorer.pretrain.model import build_model, lm_loss, settings_from_dict
        from explorer.pretrain.tokenizer import VOCAB_SIZE

        torch.set_num_threads(1)
        s, _ = settings_from_dict(settings)
        data = corpus("clean")
        model = build_model(s, VOCAB_SIZE)
        opt = optimizer_for(model, s)
        gen = torch.Generator().manual_seed(s.seed)
        model.train()
        start = time.perf_counter()
        for step in range(s.steps):
            x = batch(data.train, s.batch_size, s.seq_len, gen)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, s)
            lm_loss(model(input_ids=x).logits, x).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
        out["s"] = time.perf_counter() - start

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out["s"]


def ours_seconds(settings: dict) -> tuple[float, float]:
    """``(wall seconds of the run's steps, seconds to the first loss point)`` of :func:`explorer.pretrain` (from
    start to the job's end, so model building counts in neither; the first point counts from pressing start)."""
    from explorer import pretrain

    t0 = time.perf_counter()
    job = pretrain.start("bench-" + uuid.uuid4().hex[:6], "pretrain", settings)
    first = None
    while job.thread.is_alive():
        if first is None and job.curves and job.curves[0].losses:
            first = time.perf_counter() - t0
            steps_start = first - job.curves[0].step_s[0]
        job.thread.join(0.005)
    result = pretrain.snapshot(job)
    assert result.status == "done", result.message
    return time.perf_counter() - t0 - steps_start, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from explorer.pretrain.data import corpus

    corpus("clean")  # encoded once per process, before either timing
    settings = {"steps": args.steps, "seed": 0}
    plain_seconds({**settings, "steps": 3})  # warm-up (imports, first allocations)
    ours, plain, firsts = [], [], []
    for _ in range(args.repeats):
        wall, first = ours_seconds(settings)
        ours.append(wall)
        firsts.append(first)
        plain.append(plain_seconds(settings))
    ours_s, plain_s = statistics.median(ours) / args.steps, statistics.median(plain) / args.steps
    report("pretrain_seconds_per_step", ours_s, "s", plain_s, "plain PyTorch loop", target="<= 1.15x")
    from explorer.pretrain.model import PretrainSettings

    tokens = PretrainSettings().batch_size * PretrainSettings().seq_len
    report("pretrain_tokens_per_second", tokens / ours_s, "tokens/s", tokens / plain_s, "plain PyTorch loop")
    report("pretrain_first_loss_point", statistics.median(firsts), "s", target="<= 3 s")


if __name__ == "__main__":
    main()
