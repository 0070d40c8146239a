"""Tokens lens: how text becomes token ids under several tokenizers.

Where a change goes: tokenize.py: run(), the result types and /tokenize's JSON; backends.py: one class per tokenizer family (add a tokenizer here).
"""
from explorer.tokens.tokenize import *  # noqa: F401,F403  (re-exports run, iter_run, results, to_api)
