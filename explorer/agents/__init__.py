"""Tools, agents and safety lens: a stated tool-call format, real safe tools the application runs, the agent loop
(think -> act -> observe), free vs grammar-constrained decoding of a call, prompt injection and jailbreaks measured
against defences, and constitutional self-critique turned into DPO pairs.

Endpoints: ``run`` / ``iter_run`` are the agent loop (``/agent``); ``/tool`` is ``tools.tool_api``; the
valid-call rates are ``loop.iter_call_rates``; every result serialises with the one lens serialiser
``to_api(result)``.

Where a change goes:
- calculator.py: the expression whitelist and its caps; tools.py: the tools, their JSON schemas and ``run_tool``;
- format.py: the stated call format, the prompt that teaches it and its parser; constrained.py: the
  lm-format-enforcer grammar applied as a token mask; loop.py: the agent loop and the valid-call rates;
- injection.py: indirect injection and jailbreak templates with defences; critique.py: constitutional self-critique
  and its DPO JSONL.
"""
from explorer.agents.loop import AgentResult, iter_call_rates, iter_run
from explorer.agents.tools import TOOLS, run_tool, tool_api
from explorer.core.progress import run_to_end, to_api


def run(*args, **kwargs) -> AgentResult:
    """:func:`iter_run` drained: the :class:`AgentResult` of an agent run."""
    return run_to_end(iter_run(*args, **kwargs))


__all__ = ["iter_run", "run", "to_api", "AgentResult", "TOOLS", "run_tool", "tool_api", "iter_call_rates"]
