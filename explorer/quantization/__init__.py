"""Quantisation lens: the reference model against its bf16/fp16/int8/NF4/FP4 copies.

Where a change goes: methods.py: the method registry and copy builders (add a method here); compare.py: run() and /quantize's JSON; quality.py: KL/perplexity statistics; error.py: where the error is.
"""
from explorer.quantization.compare import *  # noqa: F401,F403  (re-exports run, iter_run, results, to_api)
