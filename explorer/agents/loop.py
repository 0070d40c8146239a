"""The agent loop: think -> act -> observe, with a step cap, and the valid-call rates of free vs constrained decoding.

Each step the model writes (greedy, through :meth:`explorer.core.engine.Engine.steps`) either a call in the stated
format (:mod:`explorer.agents.format`) or an ``Answer:`` line. The application parses the call, validates it with
jsonschema and runs it only when valid (:func:`explorer.agents.tools.run_tool`); an invalid call is shown and its
observation says "refused" and why. The observation is fed back and the next step starts, until an answer or the
cap ``max_steps`` (the run then stops and says so).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

from explorer.agents import format as fmt
from explorer.agents.tools import check_tools, run_tool
from explorer.core.config import get_limits
from explorer.core.progress import Progress
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int, check_text
from explorer.prompting.lens import resolve_form
from explorer.prompting.stats import accuracy_interval

# The question set of the valid-call rate: each needs one tool (written for this project).
RATE_QUESTIONS = (
    "What is 348 times 27?", "What is 2 to the power of 20?", "What is 1/3 plus 1/6?",
    "How many feet are in 3 metres?", "Convert 100 F to C.", "How many grams are in 2.5 lb?",
    "What is the population of Veloria?", "How tall is Mount Calder?",
)


@dataclass(frozen=True)
class AgentStep:
    """One think -> act -> observe step.

    Attributes:
        model_output: the text the model wrote (cut at the step's end). tokens: its token count.
        kind: "call", "answer" or "none". call: ``{"name", "arguments"}`` as written (None when no call parsed).
        valid: the call parsed and matches its tool's schema. action: what the application did.
        observation: the text fed back (None after an answer).
    """

    model_output: str
    tokens: int
    kind: str
    call: dict | None
    valid: bool
    action: str
    observation: str | None

    def to_api(self) -> dict:
        """``{"model_output", "call": {"name", "arguments"}, "valid", "observation", "kind", "action", "tokens"}``."""
        return {"model_output": self.model_output, "call": self.call, "valid": bool(self.valid),
                "observation": self.observation, "kind": self.kind, "action": self.action, "tokens": self.tokens}


@dataclass(frozen=True)
class AgentResult:
    """An agent run. ``answer`` is None when the run ended without one (step cap or stop; said in notices)."""

    question: str
    model: str
    tools: tuple[str, ...]
    constrained: bool
    chat_template: bool
    steps: tuple[AgentStep, ...]
    answer: str | None
    notices: tuple[str, ...] = ()
    seconds: float = 0.0
    provenance: Provenance = field(default_factory=lambda: measured("agent loop"))

    def to_api(self) -> dict:
        """``/agent`` JSON: ``{"steps": [...], "answer", "notices"}`` plus what was run and the provenance."""
        return {"steps": [s.to_api() for s in self.steps], "answer": self.answer, "notices": list(self.notices),
                "question": self.question, "model": self.model, "tools": list(self.tools),
                "constrained": self.constrained, "chat_template": self.chat_template,
                "seconds": round(self.seconds, 3), "provenance": self.provenance.to_api()}


def generate_step(engine, ids: list[int], tools, constrained: bool, require_call: bool = False,
                  max_tokens: int | None = None) -> tuple[str, int]:
    """One step's text (greedy; grammar-constrained when ``constrained``) and its generated token count."""
    cap = max_tokens or get_limits().agent_step_tokens
    select = None
    if constrained:
        from explorer.agents.constrained import CALL_ROOM, constrained_select

        select, _ = constrained_select(engine, ids, tools, require_call)
        cap += CALL_ROOM
    out: list[int] = []
    text = ""
    for step in engine.steps(ids, cap, **({"select": select} if select else {})):
        if step.finished:
            break
        out.append(step.token)
        text = engine.tokenizer.decode(out, skip_special_tokens=True)
        cut = fmt.finished_text(text.lstrip())
        if cut is not None:
            return cut.strip(), len(out)
    return text.strip(), len(out)


def run_step(engine, ids, tools, constrained: bool) -> AgentStep:
    """Generate, parse and act on one step."""
    text, n = generate_step(engine, ids, tools, constrained)
    parsed = fmt.parse_step(text, tools)
    if parsed.kind == "answer":
        return AgentStep(text, n, "answer", None, False, "final answer", None)
    call = None if parsed.name is None else {"name": parsed.name, "arguments": parsed.arguments}
    if parsed.kind == "call" and parsed.valid:
        result = run_tool(parsed.name, parsed.arguments, tools)
        action = f"ran {parsed.name}" if result.ok else f"{parsed.name} refused the arguments"
        return AgentStep(text, n, "call", call, True, action, result.observation())
    action = "not executed: invalid call" if parsed.kind == "call" else "not executed: no call or answer"
    return AgentStep(text, n, parsed.kind, call, False, action, f"refused: {parsed.error}")


def check_agent(question, tools, max_steps) -> tuple[str, tuple[str, ...], int, list[str]]:
    """Validate an agent request; ``max_steps`` above ``Limits.agent_max_steps`` is capped with a notice.

    Raises:
        ValueError: empty question, unknown tool, ``max_steps`` below 1 or not a whole number.
    """
    question = check_text(question, "question").strip()
    tools = check_tools(tools)
    cap, notices = get_limits().agent_max_steps, []
    max_steps = check_int(max_steps, "max_steps", minimum=1)
    if max_steps > cap:
        notices.append(f"max_steps={max_steps} capped to {cap} (LLM_EXPLORER_AGENT_MAX_STEPS).")
        max_steps = cap
    return question, tools, max_steps, notices


def iter_run(question: str = "What is 348 times 27?", model: str | None = None, tools=None, max_steps: int = 3,
             constrained: bool = False, chat_template: bool | None = None, stop=None, engine=None) -> Iterator:
    """Run the agent loop on ``question``; yields Progress (with the partial result) per step, then the
    :class:`AgentResult`.

    Args:
        question: the user's question. model: an embedded model name or Hub id. tools: tool names (None: all).
        max_steps: the step cap (at most ``Limits.agent_max_steps``). constrained: grammar-constrained steps.
        chat_template: True: chat turns; False: plain text; None: chat for instruct models, text for base models.
        stop: a flag with ``is_set()``; the run then ends early and says so. engine: overrides ``model`` (tests).
    Raises:
        ValueError: see :func:`check_agent`; a prompt over the token caps.
    """
    from explorer.core.engine import get_engine

    question, tools, max_steps, notices = check_agent(question, tools, max_steps)
    engine = engine or get_engine(model or None)
    chat, form_notices = resolve_form(engine, chat_template)
    notices += form_notices
    if constrained:
        notices.append("Constrained: each step starts under a grammar (a schema-valid call, or the word 'Answer:' "
                       "after which the answer runs free), lm-format-enforcer; its tables are built on first use.")
    start, steps, turns, answer = time.perf_counter(), [], [], None

    def result():
        return AgentResult(question, engine.name, tools, bool(constrained), chat, tuple(steps), answer,
                           tuple(notices), time.perf_counter() - start, measured(
                               f"agent loop, greedy over Engine.steps{' (constrained)' if constrained else ''}",
                               engine.name))

    yield Progress(0.0, f"step 1 of at most {max_steps}")
    for index in range(max_steps):
        if stop is not None and stop.is_set():
            notices.append(f"Stopped after {len(steps)} steps.")
            break
        step = run_step(engine, fmt.transcript_ids(engine, question, turns, tools, chat), tools, constrained)
        steps.append(step)
        if step.kind == "answer":
            answer = fmt.parse_step(step.model_output, tools).answer
            break
        turns.append((step.model_output, step.observation))
        yield Progress((index + 1) / max_steps, f"step {index + 1} of at most {max_steps}: {step.action}",
                       partial=result())
    else:
        notices.append(f"Stopped at the step cap ({max_steps} steps) without an answer.")
    yield result()


@dataclass(frozen=True)
class CallRates:
    """Valid-call rate of free and constrained decoding on the first step of each question.

    Attributes:
        model, chat_template. rates: ``{"free": (rate, low, high), "constrained": (...)}`` with 95 % bootstrap
        intervals. items: per question ``{"question", "free", "constrained"}`` (the step's output and validity).
    """

    model: str
    chat_template: bool
    rates: dict
    items: tuple
    notices: tuple = ()
    provenance: Provenance = field(default_factory=lambda: measured("valid-call rate"))

    def to_api(self) -> dict:
        """``{"rates": {"free": {"rate", "interval"}, "constrained": {...}}, "items", "notices", "provenance"}``."""
        return {"rates": {k: {"rate": v[0], "interval": [v[1], v[2]]} for k, v in self.rates.items()},
                "items": list(self.items), "model": self.model, "chat_template": self.chat_template,
                "notices": list(self.notices), "provenance": self.provenance.to_api()}


def iter_call_rates(model: str | None = None, limit: int | None = None, chat_template: bool | None = None,
                    stop=None, engine=None) -> Iterator:
    """Ask each of :data:`RATE_QUESTIONS` once with free decoding and once constrained (a call required); count
    the first steps that are schema-valid calls. Yields Progress per question, then :class:`CallRates`.

    Raises:
        ValueError: ``limit`` below 1 or past the question set.
    """
    from explorer.core.engine import get_engine

    n = len(RATE_QUESTIONS) if limit in (None, "") else check_int(limit, "limit", minimum=1)
    if n > len(RATE_QUESTIONS):
        raise ValueError(f"limit must be at most {len(RATE_QUESTIONS)} questions (got {n}).")
    engine = engine or get_engine(model or None)
    chat, notices = resolve_form(engine, chat_template)
    items, tools = [], check_tools(None)
    for index, question in enumerate(RATE_QUESTIONS[:n]):
        if stop is not None and stop.is_set():
            notices.append(f"Stopped after {len(items)} of {n} questions.")
            break
        yield Progress(index / n, f"question {index + 1} of {n}")
        ids = fmt.transcript_ids(engine, question, [], tools, chat)
        row = {"question": question}
        for mode, constrained in (("free", False), ("constrained", True)):
            text, _ = generate_step(engine, ids, tools, constrained, require_call=constrained)
            parsed = fmt.parse_step(text, tools)
            row[mode] = {"output": text, "valid": parsed.kind == "call" and parsed.valid, "error": parsed.error}
        items.append(row)
    rates = {mode: accuracy_interval([r[mode]["valid"] for r in items]) for mode in ("free", "constrained")}
    yield CallRates(engine.name, chat, rates, tuple(items), tuple(notices),
                    measured(f"first step of {len(items)} tool questions, greedy over Engine.steps", engine.name))
