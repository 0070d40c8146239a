"""Quantisation lens: the reference model against its bf16/fp16/int8/NF4/FP4 copies.

Where a change goes:
- add or change a method: ``methods.py`` (the registry :data:`METHODS`: label, explanation, its own builder on
  ``transformers.BitsAndBytesConfig``; the cache of copies and the shared QLoRA NF4 base ``nf4_base``); the
  contract test ``tests/contracts/test_quant_methods.py`` builds and runs every entry;
- the prompt comparison and ``/quantize``'s JSON: ``compare.py`` (``run``, ``iter_run``, ``to_api``);
- KL / perplexity statistics and the stored table: ``quality.py``; where the error is: ``error.py``;
- which layers are quantised: ``layers.py``.
"""
from explorer.quantization.compare import (MethodRun, PassageQuality, QuantizeResult, api_dict, greedy_generate,
                                           iter_run, run, run_passage, to_api, token_strings)
from explorer.quantization.methods import (METHODS, QLORA_OPTIONS, Method, QuantOptions, Variant, bnb_config,
                                           check_methods, clear_variants, get_variant, nf4_base)
from explorer.quantization.quality import QualityStats, load_precomputed, reference_passage

__all__ = ["METHODS", "Method", "MethodRun", "PassageQuality", "QLORA_OPTIONS", "QualityStats", "QuantOptions",
           "QuantizeResult", "Variant", "api_dict", "bnb_config", "check_methods", "clear_variants",
           "get_variant", "greedy_generate", "iter_run", "load_precomputed", "nf4_base",
           "reference_passage", "run", "run_passage", "to_api", "token_strings"]
