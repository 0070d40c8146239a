"""Circuits lens: head detectors, activation patching, ablation and direct logit attribution on the real model.

Interventions run as nnsight traces on a shadow module tree (``explorer/core/intervene.py``, ``shadow.py``), one
model turn per pass; the shared model is never wrapped or edited.

Where a change goes:
- a head detector's definition (previous-token, duplicate-token, induction): ``heads.py`` (pure numpy);
- running the detector on a model, ``/heads``'s JSON, the stored top induction heads: ``detect.py``, ``stored.py``;
- prompts, one-token answers, built-in pairs, component names (``L3H2``): ``prompts.py``;
- where a patching site reads and writes (resid, attn_head, mlp): ``sites.py``;
- activation and attribution patching, the causal cone, ``/patch``: ``patching.py`` (``iter_run`` / ``run``);
- branching (force another token at a step, continue, the session's tree) and ``/branch``: ``branch.py``;
- steering vectors (contrastive activation addition) and ``/steer``: ``steering.py``;
- the strength × layer steering sweep and ``/steer_sweep``: ``sweep.py``;
- where each greedy token is decided (the commitment strip) and ``/commitment``: ``commitment.py``;
- ablation and ``/ablate``: ``ablation.py``; direct logit attribution and ``/dla``: ``dla.py``.
"""
from explorer.circuits.ablation import AblationResult, ablate_to_api, iter_ablate, loss_on_repeat, run_ablate
from explorer.circuits.branch import BranchNode, BranchTrees, alternatives, run_branch
from explorer.circuits.detect import DEFAULT_N, HeadsResult, detector_ids, heads_to_api, run_heads
from explorer.circuits.dla import DLAResult, dla_to_api, iter_dla, run_dla
from explorer.circuits.heads import (KINDS, check_kind, detection_pattern, head_scores, repeated_random_tokens,
                                     top_heads)
from explorer.circuits.patching import PatchResult, causal_cone, iter_patch, patch_to_api, run_patch
from explorer.circuits.prompts import PAIRS, parse_components
from explorer.circuits.sites import SITES
from explorer.circuits.steering import SteerResult, SteeringVector, run_steer, steering_vector
from explorer.core.progress import to_api

iter_run = iter_patch
run = run_patch


__all__ = ["AblationResult", "BranchNode", "BranchTrees", "alternatives", "run_branch", "SteerResult", "SteeringVector", "run_steer", "steering_vector", "DEFAULT_N", "DLAResult", "HeadsResult", "KINDS", "PAIRS", "PatchResult", "SITES",
           "ablate_to_api", "causal_cone", "check_kind", "detection_pattern", "detector_ids", "dla_to_api",
           "head_scores", "heads_to_api", "iter_ablate", "iter_dla", "iter_patch", "iter_run", "loss_on_repeat",
           "parse_components", "patch_to_api", "repeated_random_tokens", "run", "run_ablate", "run_dla",
           "run_heads", "run_patch", "to_api", "top_heads"]
