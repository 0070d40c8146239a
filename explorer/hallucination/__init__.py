"""Hallucination lens: probes that signal when the model is making things up, and how good each is.

Where a change goes:
- probes.py: the probe registry :data:`PROBES`, ``iter_run`` / ``run`` and the result. Adding a probe is one
  ``Probe(...)`` entry there (computation, summary line, figure kind, AUROC scores); its figure kind is drawn
  by ``components/tabs/hallucination/figures.py`` and ``tests/contracts/test_probes.py`` tests it.
- answer.py: the short-answer prompt and the greedy answer (``Engine.steps``); samples.py: sampled answers
  and semantic entropy; signals.py: logit lens, P(True), context reliance; attribution.py: captum attribution.
- evaluation.py: AUROC of every probe score on the labelled set in ``data/hallucination/``.
"""
from explorer.hallucination.attribution import Attribution, attribute
from explorer.hallucination.probes import (CONTEXT_RESERVE_TOKENS, DEFAULT_PROBES, PROBES, HallucinationResult, Probe,
                                           ProbeInput, cap_inputs, check_probes, compare_entities, iter_run, run,
                                           summary_lines, to_api)

__all__ = ["Attribution", "attribute", "CONTEXT_RESERVE_TOKENS", "DEFAULT_PROBES", "PROBES", "HallucinationResult",
           "Probe", "ProbeInput", "cap_inputs", "check_probes", "compare_entities", "iter_run", "run",
           "summary_lines", "to_api"]
