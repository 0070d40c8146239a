"""The tool-call format this project states, the prompt that teaches it, and the parser that reads it back.

SmolLM2's embedded chat template is plain ChatML with no tool support and Gemma 3 270M (base) has none, so the
format is the project's own: the tools' JSON schemas and three worked examples go first (the system message of a
chat model, the head of the text for a base model), then each step is either a call written in plain text as
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` or a final ``Answer: ...`` line. The application runs
a valid call and feeds back ``Observation: <result>`` (a user turn for chat models, a line for base models).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from explorer.agents.tools import SCHEMAS, validate_call

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
ANSWER = "Answer:"
OBSERVATION = "Observation:"
EXAMPLES = (
    ("What is 17 times 23?", "calculator", {"expression": "17*23"}, "391", "391"),
    ("How many kilometres is 5 miles?", "units", {"value": 5, "from": "mi", "to": "km"}, "8.04672 km", "8.04672 km"),
    ("What is the capital of Veloria?", "lookup", {"key": "capital of veloria"}, "Port Amberly", "Port Amberly"),
)
_CALL = re.compile(re.escape(CALL_OPEN) + r"(.*?)" + re.escape(CALL_CLOSE), re.S)


def call_text(name: str, arguments: dict) -> str:
    """A call written in the stated format."""
    return CALL_OPEN + json.dumps({"name": name, "arguments": arguments}) + CALL_CLOSE


def header(tools, examples: bool = True) -> str:
    """The instructions: the format, each enabled tool's JSON schema, and (``examples``) worked examples of the
    enabled tools as text (chat models get them as real turns instead, see :func:`transcript_ids`)."""
    schemas = [{"name": t, "description": SCHEMAS[t]["description"], "parameters": SCHEMAS[t]["parameters"]}
               for t in tools]
    lines = ["You can use tools. To call one, write exactly one line:",
             f'{CALL_OPEN}{{"name": <tool name>, "arguments": {{...}}}}{CALL_CLOSE}',
             f"then wait: the result comes back as '{OBSERVATION} ...'. When you know the answer, write "
             f"'{ANSWER} <answer>'.", "Tools (JSON schemas):", json.dumps(schemas, separators=(",", ":")), "",
             "Examples:" if examples else ""]
    for question, name, arguments, observation, answer in EXAMPLES:
        if name in tools and examples:
            lines += [f"Question: {question}", call_text(name, arguments), f"{OBSERVATION} {observation}",
                      f"{ANSWER} {answer}", ""]
    return "\n".join(lines).strip()


def transcript_ids(engine, question: str, turns: list[tuple[str, str]], tools, chat: bool) -> list[int]:
    """Prompt ids for the next step: the header, the question, then each earlier ``(model output, observation)``.

    Raises:
        ValueError: the prompt is longer than the token caps.
    """
    if chat:
        messages = [{"role": "system", "content": header(tools, examples=False)}]
        for q, name, arguments, observation, answer in EXAMPLES:  # worked examples as real turns
            if name in tools:
                messages += [{"role": "user", "content": f"Question: {q}"},
                             {"role": "assistant", "content": call_text(name, arguments)},
                             {"role": "user", "content": f"{OBSERVATION} {observation}"},
                             {"role": "assistant", "content": f"{ANSWER} {answer}"}]
        messages.append({"role": "user", "content": f"Question: {question}"})
        for output, observation in turns:
            messages += [{"role": "assistant", "content": output},
                         {"role": "user", "content": f"{OBSERVATION} {observation}"}]
        ids = engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                   return_dict=True)["input_ids"]
        engine.check_length(len(ids))
        return list(ids)
    text = header(tools) + f"\n\nQuestion: {question}\n"
    for output, observation in turns:
        text += f"{output}\n{OBSERVATION} {observation}\n"
    return engine.encode(text)


def finished_text(text: str) -> str | None:
    """``text`` cut where a step ends (after a call's close tag, at the end of an answer line, before an
    observation the model invents), or None while the step goes on."""
    close = text.find(CALL_CLOSE)
    if close >= 0:
        return text[:close + len(CALL_CLOSE)]
    invented = text.find(OBSERVATION)
    if invented > 0:
        return text[:invented].rstrip()
    match = re.search(re.escape(ANSWER) + r"[^\n]*\S[^\n]*\n", text)
    if match:
        return text[:match.end()].rstrip()
    return None


@dataclass(frozen=True)
class Parsed:
    """What one step's text says.

    Attributes:
        kind: "call" (a call in the format was found), "answer" (an ``Answer:`` line) or "none" (neither).
        name, arguments: the call's fields as written (None when missing or not parsed).
        valid: a call that parsed as JSON and matches its tool's schema. answer: the answer text.
        error: why the call is invalid (None when valid or not a call).
    """

    kind: str
    name: object = None
    arguments: object = None
    valid: bool = False
    answer: str | None = None
    error: str | None = None


def parse_step(text: str, tools) -> Parsed:
    """Read a step's text: the first call in the stated format (validated with jsonschema), else an answer."""
    match = _CALL.search(text)
    if match is None and CALL_OPEN in text:
        return Parsed("call", error=f"the call was not closed with {CALL_CLOSE}.")
    if match is not None:
        try:
            body = json.loads(match.group(1))
        except json.JSONDecodeError as exc:
            return Parsed("call", error=f"the call is not valid JSON ({exc.msg} at character {exc.pos}).")
        if not isinstance(body, dict) or set(body) != {"name", "arguments"}:
            return Parsed("call", error='the call must be an object with exactly "name" and "arguments".')
        problem = validate_call(body["name"], body["arguments"], tools)
        return Parsed("call", body["name"], body["arguments"], valid=problem is None, error=problem)
    if ANSWER in text:
        return Parsed("answer", answer=text.split(ANSWER, 1)[1].strip().split("\n")[0].strip())
    return Parsed("none", error=f"no call in the stated format and no '{ANSWER}' line.")
