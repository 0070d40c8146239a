"""GPU smoke test: every lens once on CUDA in bf16, compared with CPU fp32 on the same weights.

Run ``python bench/gpu_smoke.py [--random-weights] [--tokenizer DIR] [--new-tokens N]``. It prints one line per
lens (``lens: OK|FAIL  details``) and exits 1 if a check failed. On a machine without CUDA it prints
``gpu_smoke: no CUDA device (torch.cuda.is_available() is False); nothing to compare`` and exits 0.

Checks (issue 12): top-1 agreement of the greedy text between CUDA bf16 and CPU fp32 (decoding,
quantisation), attention rows summing to 1, KV cache bytes equal to the formula with 2-byte elements, the
LoRA loss falling over a few steps, hallucination probe values finite, and the tokenizers answering.

``--random-weights`` builds the embedded model's architecture from its config with random weights (the GGUF
does not travel to a GPU machine); the tokenizer comes from the converted embedded folder, or ``--tokenizer
DIR`` (a copy of its tokenizer files, about 4 MB). Needs only torch, transformers and peft (bitsandbytes for
the int8/NF4 rows, reported as FAIL with the reason when it is missing).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

PROMPT = "What is the capital of France?"
FAILED: list[str] = []


def line(lens: str, ok: bool, details: str) -> None:
    """Print one result line and remember failures."""
    print(f"{lens}: {'OK' if ok else 'FAIL'}  {details}", flush=True)
    if not ok:
        FAILED.append(lens)


def _tokenizer(directory: str | None):
    from transformers import AutoTokenizer

    if directory:
        return AutoTokenizer.from_pretrained(directory)
    from models.loading import smollm2_folder

    return AutoTokenizer.from_pretrained(str(smollm2_folder()))


def build_engines(random_weights: bool, tokenizer_dir: str | None, device: str = "cuda"):
    """``(cpu_engine fp32, cuda_engine bf16)`` over the same weights (the embedded model's, or random ones)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from explorer.core.engine import Engine
    from models.loading import LoadedModel
    from models.registry import ModelSpec

    tokenizer = _tokenizer(tokenizer_dir)
    if random_weights:
        from models.shapes import get_shape

        shape = get_shape("SmolLM2 135M")
        from transformers import LlamaConfig

        config = LlamaConfig(vocab_size=shape.vocab_size, hidden_size=shape.hidden_size, intermediate_size=1536,
                             num_hidden_layers=shape.num_layers, num_attention_heads=shape.num_heads,
                             num_key_value_heads=shape.num_kv_heads, head_dim=shape.head_dim,
                             max_position_embeddings=8192, rope_theta=100000.0, tie_word_embeddings=True,
                             bos_token_id=1, eos_token_id=2, pad_token_id=2, rms_norm_eps=1e-5)
        if tokenizer_dir is None:
            try:
                from models.loading import smollm2_folder

                config = AutoConfig.from_pretrained(str(smollm2_folder()))
            except Exception:  # noqa: BLE001 - the published shape above is the same architecture
                pass
        torch.manual_seed(0)
        cpu_model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
        name = "smollm2-random-weights"
    else:
        from models.loading import load_model

        cpu_model = copy.deepcopy(load_model("smollm2-135m-instruct", dtype="float32").model).float().to("cpu")
        name = "smollm2-135m-instruct"
    cpu_model.requires_grad_(False)
    gpu_model = copy.deepcopy(cpu_model).to(device=device, dtype=torch.bfloat16).eval()
    spec = ModelSpec(name, "causal-lm", "hub", name, "GPU smoke test copy")
    cpu = Engine(LoadedModel(spec=spec, model=cpu_model, tokenizer=tokenizer, device=torch.device("cpu"),
                             dtype=torch.float32))
    gpu = Engine(LoadedModel(spec=dataclasses.replace(spec, name=name + "-cuda"), model=gpu_model,
                             tokenizer=tokenizer, device=torch.device(device), dtype=torch.bfloat16))
    return cpu, gpu


def _agreement(a, b) -> float:
    n = min(len(a), len(b))
    return sum(int(x == y) for x, y in zip(a[:n], b[:n])) / n if n else 0.0


def check_tokens(cpu, gpu, args) -> None:
    ids = gpu.chat_ids(PROMPT)
    line("tokens", ids == cpu.chat_ids(PROMPT) and len(ids) > 3, f"{len(ids)} chat-template ids, same on both engines")


def check_attention(cpu, gpu, args) -> None:
    import numpy as np

    from explorer import attention

    result = attention.run(PROMPT, engine=gpu, chat=True)
    sums = result.attn.sum(-1)
    worst = float(np.abs(sums - 1.0).max())
    timeline = attention.run_timeline(PROMPT, engine=gpu, max_new_tokens=3, chat=True)
    tl_worst = float(np.abs(timeline.rows[-1].sum(-1) - 1.0).max())
    line("attention", worst < 2e-2 and tl_worst < 2e-2,
         f"shape {result.shape}, max |row sum - 1| {worst:.2e} (bf16), timeline {tl_worst:.2e}")


def check_kv_cache(cpu, gpu, args) -> None:
    from explorer import kv_cache

    result = kv_cache.run(PROMPT, engine=gpu, max_new_tokens=args.new_tokens)
    shape = result.shape
    ok = shape.bytes_per_element == 2 and result.matches_formula
    timing = kv_cache.compare_no_cache(PROMPT, engine=gpu, max_new_tokens=args.new_tokens)
    line("kv_cache", ok and timing.identical_tokens,
         f"{shape.bytes_per_token} B/token (2-byte elements), measured == formula at {len(result.steps)} steps: "
         f"{result.matches_formula}; cached {timing.cached_tokens_per_s:.0f} vs uncached "
         f"{timing.uncached_tokens_per_s:.0f} tokens/s, same tokens {timing.identical_tokens}")


def check_decoding(cpu, gpu, args) -> None:
    from explorer import decoding

    strategies = [{"name": "greedy"}, {"name": "beam", "num_beams": 2}, {"name": "sampling", "seed": 1}]
    on_gpu = decoding.run(PROMPT, strategies=strategies, max_new_tokens=args.new_tokens, engine=gpu)
    on_cpu = decoding.run(PROMPT, strategies=strategies[:1], max_new_tokens=args.new_tokens, engine=cpu)
    agree = _agreement(on_gpu.runs[0].token_ids.tolist(), on_cpu.runs[0].token_ids.tolist())
    first = on_gpu.runs[0].token_ids[0] == on_cpu.runs[0].token_ids[0]
    line("decoding", bool(first) and all(len(r.token_ids) for r in on_gpu.runs),
         f"greedy top-1 agreement CUDA bf16 vs CPU fp32 {agree:.0%} (first token equal: {bool(first)}); "
         f"beam and seeded sampling ran ({len(on_gpu.runs[1].token_ids)}, {len(on_gpu.runs[2].token_ids)} tokens)")


def check_quantization(cpu, gpu, args) -> None:
    from explorer import quantization

    result = quantization.run(PROMPT, engine=gpu, methods=["reference", "bf16", "int8", "nf4"],
                              max_new_tokens=args.new_tokens)
    parts, ok = [], True
    for run in result.methods:
        if run.error:
            parts.append(f"{run.name} error: {run.error[:80]}")
            ok = ok and run.name not in ("reference", "bf16")
            continue
        parts.append(f"{run.name} {run.bits_per_param:.1f} bits, same top-1 {run.stats.same_top_pct:.0f}%")
    line("quantization", ok, "; ".join(parts))


def check_lora(cpu, gpu, args) -> None:
    from explorer.lora import train
    from explorer.lora.data import builtin_dataset, BUILTIN_DATASETS

    dataset = builtin_dataset(sorted(BUILTIN_DATASETS)[0])
    snapshot = train.run(dataset, {"steps": 8, "learning_rate": 3e-3}, owner="gpu-smoke", engine=gpu)
    loss = snapshot.loss
    falls = len(loss) >= 2 and float(loss[-1]) < float(loss[0])
    line("lora", falls, f"{len(loss)} steps, loss {float(loss[0]):.3f} -> {float(loss[-1]):.3f} ({snapshot.status})")


def check_hallucination(cpu, gpu, args) -> None:
    import math

    from explorer import hallucination

    result = hallucination.run("Who wrote the novel Middlemarch?", engine=gpu, n_samples=3, seed=0)
    values = {name: probe.get("score") for name, probe in result.probes.items()}
    finite = {name: v for name, v in values.items() if isinstance(v, (int, float))}
    ok = bool(finite) and all(math.isfinite(float(v)) for v in finite.values())
    line("hallucination", ok, ", ".join(f"{k}={float(v):.3g}" for k, v in finite.items()) or str(values))


CHECKS = [check_tokens, check_attention, check_kv_cache, check_decoding, check_quantization, check_lora,
          check_hallucination]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--random-weights", action="store_true", help="random weights with the embedded config")
    parser.add_argument("--tokenizer", default=None, help="folder with the embedded model's tokenizer files")
    parser.add_argument("--new-tokens", type=int, default=8, help="tokens generated per lens")
    parser.add_argument("--dry-run-on-cpu", action="store_true",
                        help="run the bf16 side on the CPU (checks the script itself, not CUDA)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.dry_run_on_cpu:
        print("gpu_smoke: no CUDA device (torch.cuda.is_available() is False); nothing to compare", flush=True)
        return 0
    start = time.perf_counter()
    device = "cpu" if args.dry_run_on_cpu else "cuda"
    cpu, gpu = build_engines(args.random_weights, args.tokenizer, device)
    where = "CPU bf16 dry run" if args.dry_run_on_cpu else torch.cuda.get_device_name(0)
    print(f"gpu_smoke: {where}, torch {torch.__version__}, "
          f"{'random weights' if args.random_weights else 'embedded weights'}", flush=True)
    for check in CHECKS:
        lens = check.__name__.removeprefix("check_")
        try:
            check(cpu, gpu, args)
        except Exception as exc:  # noqa: BLE001 - one line per lens, the others still run
            line(lens, False, f"{type(exc).__name__}: {str(exc)[:300]}")
    print(f"gpu_smoke: {len(CHECKS) - len(FAILED)}/{len(CHECKS)} lenses OK in {time.perf_counter() - start:.0f} s",
          flush=True)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
