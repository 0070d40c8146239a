"""Second embedded model: start-up with SmolLM2 and Gemma 3 270M both loaded, and decode speed of each.

Prints (each start-up figure measured in a fresh process, after the library imports, from the converted caches):
- startup_both_models vs startup_smollm2_only (seconds to load the models; Gemma from its cache, ~1 s target)
- rss_both_models vs rss_smollm2_only (MB resident after loading and one forward pass of each, so the
  memory-mapped weights are all touched; target <= 3,072 MB with both)
- gemma_decode vs smollm2_decode (greedy tokens/s through Engine.steps, 32 new tokens after a short prompt)
"""
from __future__ import annotations

import json
import subprocess
import sys

from common import ROOT, report

_CHILD = """
import json, time, psutil
import torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
from models.loading import load_model
t = time.perf_counter()
models = [load_model(name) for name in NAMES]
seconds = time.perf_counter() - t
for loaded in models:  # one forward each, so every weight page is resident before RSS is read
    with torch.inference_mode():
        loaded.model(input_ids=torch.tensor([[2, 818, 5279]]), logits_to_keep=1)
print("RESULT", json.dumps({"s": seconds, "rss": psutil.Process().memory_info().rss}))
"""
PROMPT = "The capital of France is"
NEW_TOKENS = 32


def _child(names: list[str]) -> dict:
    code = f"NAMES = {names!r}\n" + _CHILD
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ROOT})
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def decode_tokens_per_s(name: str) -> float:
    """Greedy tokens/s of ``name`` over ``NEW_TOKENS`` decode steps (prefill excluded), end-of-sequence ignored."""
    from explorer.core.engine import get_engine

    engine = get_engine(name)
    ids = engine.encode(PROMPT)
    list(engine.steps(ids, 4, stop_at_eos=False))  # warm-up
    times = [step.ms for step in engine.steps(ids, NEW_TOKENS + 1, stop_at_eos=False)][1:]
    return len(times) / (sum(times) / 1000.0)


def main() -> None:
    from models.loading import gemma_folder, smollm2_folder

    smollm2_folder(), gemma_folder()  # conversions happen once, before anything is timed
    smol = min((_child(["smollm2-135m-instruct"]) for _ in range(2)), key=lambda r: r["s"])
    both = min((_child(["smollm2-135m-instruct", "gemma-3-270m"]) for _ in range(2)), key=lambda r: r["s"])
    report("startup_both_models", both["s"], "s", baseline=smol["s"], baseline_name="startup_smollm2_only",
           target="Gemma from its cache in about 1 s")
    report("rss_both_models", both["rss"] / 2**20, "MB", baseline=smol["rss"] / 2**20,
           baseline_name="rss_smollm2_only", target="<= 3,072 MB")
    smol_tps = decode_tokens_per_s("smollm2-135m-instruct")
    gemma_tps = decode_tokens_per_s("gemma-3-270m")
    report("gemma_decode", gemma_tps, "tokens/s", baseline=smol_tps, baseline_name="smollm2_decode")


if __name__ == "__main__":
    main()
