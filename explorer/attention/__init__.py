"""Attention lens: every layer x head's attention weights, captured with eager attention.

Where a change goes: capture.py: run() and the result; stats.py: per-head statistics and views (add a statistic here); timeline.py: the generation timeline.
"""
from explorer.attention.capture import *  # noqa: F401,F403  (re-exports run, iter_run, results, to_api)
