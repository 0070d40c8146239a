"""Decoding lens: greedy, beam and sampling strategies side by side, step by step, and speculative decoding.

Where a change goes: strategies.py: the strategy registry and presets (add a strategy here); decode.py: run()/iter_runs(); beam.py: beam search; speculative.py: drafters; results.py: result types.
"""
from explorer.decoding.decode import *  # noqa: F401,F403  (re-exports run, iter_run, results, to_api)
