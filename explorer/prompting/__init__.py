"""Prompting & benchmarks lens: prompting patterns measured with intervals, benchmark scoring by log-likelihood,
and benchmark contamination caused by a LoRA run and caught by Min-K% Prob.

Endpoints: ``run`` / ``iter_run`` are the prompting-pattern run (``/prompting``); the benchmark scoring
(``/benchmark``) is ``benchmark.iter_run`` and the contamination demo (``/contamination``) is
``contamination.iter_run``; every result serialises with the one lens serialiser ``to_api(result)``.

Where a change goes:
- tasks.py: the task sets (``data/prompting/tasks.json`` is written from it); patterns.py: the prompts of each
  pattern and how an answer is read back; generate.py: continuations and the tree-of-thoughts search;
- lens.py: the pattern run and its result; stats.py: accuracy intervals; benchmark.py: multiple-choice scoring;
  contamination.py: the leak and its detection.
"""
from explorer.core.progress import run_to_end, to_api
from explorer.prompting import benchmark, contamination  # noqa: F401  (named endpoints)
from explorer.prompting.lens import PromptingResult, iter_run
from explorer.prompting.patterns import PATTERNS
from explorer.prompting.tasks import TASKS


def run(*args, **kwargs) -> PromptingResult:
    """:func:`iter_run` drained: the :class:`PromptingResult` of a prompting-pattern run."""
    return run_to_end(iter_run(*args, **kwargs))


__all__ = ["iter_run", "run", "to_api", "PromptingResult", "PATTERNS", "TASKS", "benchmark", "contamination"]
