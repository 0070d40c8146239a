"""Foundation benchmark: model load from the cache vs from the GGUF, /tokenize latency, resident memory.

Prints:
- load_from_cache vs load_from_gguf (seconds, each in a fresh process after the imports; target >= 10x faster)
- tokenize_api p50/p95 over 100 calls on 2,000 characters vs the in-process function (ms)
- rss_after_start with the default model loaded and the app serving (MB; target <= 1,536 MB)
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

from common import ROOT, percentile, report

TEXT_2000 = ("Tokenizers split text into pieces: common words stay whole, rare ones break apart. "
             "Emoji 🍓 and scripts like 日本語 or العربية cost more bytes per character. ") * 12
TEXT_2000 = TEXT_2000[:2000]


# Library code paths are imported before timing in both children, so the figure is the load itself.
_WARM = """
import time, json
import torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers import PreTrainedTokenizerFast
LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                             num_attention_heads=2, num_key_value_heads=1))
"""
_LOAD_CACHE = _WARM + """
from models.loading import load_model
t = time.perf_counter()
m = load_model("smollm2-135m-instruct")
print("RESULT", json.dumps({"s": time.perf_counter() - t}))
"""
_LOAD_GGUF = _WARM + """
from models.registry import smollm2_gguf_path
t = time.perf_counter()
g = smollm2_gguf_path()
AutoTokenizer.from_pretrained(str(g.parent), gguf_file=g.name)
AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name, dtype=torch.float32)
print("RESULT", json.dumps({"s": time.perf_counter() - t}))
"""
_RSS = """
import json, os, psutil, socket
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
from app import build_demo, CSS
from explorer.core.engine import get_engine
from explorer import tokens
demo = build_demo()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
demo.launch(server_port=port, prevent_thread_lock=True, quiet=True, css=CSS)
get_engine()
tokens.run("warm up")
print("RESULT", json.dumps({"rss": psutil.Process().memory_info().rss}))
demo.close()
"""


def _child(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ROOT})
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    from models.loading import smollm2_folder

    smollm2_folder()  # make sure the cache exists before timing the cached load
    cache_s = min(_child(_LOAD_CACHE)["s"] for _ in range(2))
    gguf_s = _child(_LOAD_GGUF)["s"]
    report("load_from_cache", cache_s, "s", baseline=gguf_s, baseline_name="load_from_gguf", target="ratio <= 0.10")
    report("load_speedup_cache_vs_gguf", gguf_s / cache_s, "x", target=">= 10x")

    from app import CSS, build_demo
    from explorer import tokens
    from gradio_client import Client

    tokens.run(TEXT_2000)
    direct = []
    for _ in range(100):
        start = time.perf_counter()
        tokens.to_api(tokens.run(TEXT_2000))
        direct.append((time.perf_counter() - start) * 1000)
    demo = build_demo()
    demo.launch(server_port=7899, prevent_thread_lock=True, quiet=True, css=CSS)
    try:
        client = Client("http://127.0.0.1:7899/", verbose=False)
        api = []
        for _ in range(100):
            start = time.perf_counter()
            client.predict(TEXT_2000, None, api_name="/tokenize")
            api.append((time.perf_counter() - start) * 1000)
    finally:
        demo.close()
    report("tokenize_api_p50", percentile(api, 50), "ms", baseline=percentile(direct, 50), baseline_name="in_process_p50")
    report("tokenize_api_p95", percentile(api, 95), "ms", baseline=percentile(direct, 95), baseline_name="in_process_p95")
    rss = _child(_RSS)["rss"] / 2**20
    report("rss_after_start", rss, "MB", target="<= 1,536 MB")  # a target, not a measured baseline


if __name__ == "__main__":
    main()
