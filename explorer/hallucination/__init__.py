"""Hallucination lens: probes that signal when the model is making things up, and how good each is.

Where a change goes: probes.py: the probe registry and run()/iter_run() (add a probe here); answer.py: the short-answer prompt and greedy answer; samples.py, signals.py: probe computations; attribution.py: captum attribution; evaluation.py: AUROC on the labelled set.
"""
from explorer.hallucination.probes import *  # noqa: F401,F403  (re-exports run, iter_run, results, to_api)
