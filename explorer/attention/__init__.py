"""Attention lens: every layer x head's attention weights, captured with eager attention.

Where a change goes:
- the capture pass, the result and ``/attention``'s JSON: ``capture.py`` (``run``, ``iter_run``, ``to_api``);
- add a per-head statistic or a view: ``stats.py`` (``STATS``, ``VIEWS``);
- the generation timeline (one attention row per generated token, on ``Engine.steps``): ``timeline.py``;
- sliding-window (local) layers and the attention cap on windowed models: ``windows.py``.
"""
from explorer.attention.capture import (AttentionResult, api_payload, capture, check_layer_head, iter_run,
                                        kv_head_mapping, prompt_ids, run, to_api, token_label)
from explorer.attention.stats import STATS, VIEWS, head_stats, remove_sink, view_pattern
from explorer.attention.timeline import TIMELINE_VIEWS, TimelineResult, iter_timeline, run_timeline, timeline_rows

__all__ = ["AttentionResult", "STATS", "TIMELINE_VIEWS", "TimelineResult", "VIEWS", "api_payload", "capture",
           "check_layer_head", "head_stats", "iter_run", "iter_timeline", "kv_head_mapping", "prompt_ids",
           "remove_sink", "run", "run_timeline", "timeline_rows", "to_api", "token_label", "view_pattern"]
