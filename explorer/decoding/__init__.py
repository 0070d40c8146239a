"""Decoding lens: greedy, beam and sampling strategies side by side, step by step, and speculative decoding.

Where a change goes:
- add or change a strategy: ``strategies.py`` (the registry :data:`STRATEGIES`: label, explanation, parameters,
  its own loop; the contract test runs every entry); its loop lives in ``sampling.py`` (greedy/sampling on
  ``Engine.steps``) or ``beam.py`` (beam search on ``Engine.forward``) or a new module beside them;
- transformers' logits processors and their order: ``processors.py``;
- the request (validation, caps) and the result/JSON: ``decode.py`` (``run``, ``iter_run``, ``to_api``);
- the sampler chain at one step of a column and ``/sampler_chain``: ``chain.py``;
- speculative decoding and its drafters: ``speculative.py``; result types: ``results.py``.
"""
from explorer.decoding.chain import ChainResult, run_sampler_chain
from explorer.decoding.decode import (decode_batch, decode_one, iter_run, iter_runs, loop_start, prepare, run, stage_distributions,
                                      temperature_distribution, to_api, token_loop, token_text)
from explorer.decoding.results import BeamRecords, DecodeResult, DecodeRun, StepRecords
from explorer.decoding.speculative import DRAFTERS, SpeculativeResult, run_speculative
from explorer.decoding.strategies import MAX_STRATEGIES, PRESETS, STRATEGIES, Strategy, StrategySpec, parse_strategy

__all__ = ["BeamRecords", "ChainResult", "run_sampler_chain", "DRAFTERS", "DecodeResult", "DecodeRun", "MAX_STRATEGIES", "PRESETS", "STRATEGIES",
           "SpeculativeResult", "StepRecords", "Strategy", "StrategySpec", "decode_batch", "decode_one", "iter_run", "iter_runs",
           "loop_start", "parse_strategy", "prepare", "run", "run_speculative", "stage_distributions",
           "temperature_distribution", "to_api", "token_loop", "token_text"]
