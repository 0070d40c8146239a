"""Circuits lens: head detectors, activation patching, ablation and direct logit attribution on the real model.

Where a change goes:
- a head detector's definition (previous-token, duplicate-token, induction): ``heads.py`` (pure numpy);
- running the detector on a model and ``/heads``'s JSON: ``detect.py``.
"""
from explorer.circuits.detect import DEFAULT_N, HeadsResult, detector_ids, heads_to_api, run_heads
from explorer.circuits.heads import (KINDS, check_kind, detection_pattern, head_scores, repeated_random_tokens,
                                     top_heads)

__all__ = ["DEFAULT_N", "HeadsResult", "KINDS", "check_kind", "detection_pattern", "detector_ids", "head_scores",
           "heads_to_api", "repeated_random_tokens", "run_heads", "top_heads"]
