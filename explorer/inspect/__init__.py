"""Token inspector lens: one token through every lens, computed once per text and read per position.

Where a change goes:
- the passes run once per (text, model, chat template), what is kept and the caching: ``analysis.py``
  (``iter_analyse``, ``analysis``, :class:`TokenAnalysis`);
- what one position shows and ``/inspect``'s JSON: ``position.py`` (``iter_run``, ``run``, ``read``, ``to_api``).
Every model pass goes through ``Engine.forward`` (``explorer/core/engine.py``); the quantised copies come from
``explorer.quantization.get_variant`` and the answer from ``explorer.hallucination``.
"""
from explorer.inspect.analysis import TokenAnalysis, analyse, analysis, iter_analyse
from explorer.inspect.position import InspectResult, check_position, iter_run, read, run, to_api

__all__ = ["InspectResult", "TokenAnalysis", "analyse", "analysis", "check_position", "iter_analyse", "iter_run",
           "read", "run", "to_api"]
