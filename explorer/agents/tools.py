"""The tools the application runs for an agent: ``calculator``, ``units`` and ``lookup``, each with a JSON schema.

"The model does not run tools; the application does" (handbook, function calling): a model only writes a call;
:func:`run_tool` validates it with :mod:`jsonschema` against the tool's schema and, only when valid, runs the
tool's pure Python function. No tool reads files at call time (the lookup table is loaded once from the shipped
``data/agents/lookup.json``), opens a connection, reads the environment or reaches the interpreter.

``/tool(name, arguments)`` is :func:`run_tool`'s :meth:`ToolResult.to_api`: ``{"ok", "result", "error"}``; an
invalid or refused call has ``ok`` False, ``result`` None and ``error`` starting "refused:" with the reason.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import jsonschema

from explorer.agents import calculator
from explorer.core.config import data_path

# Units: factor to the dimension's base unit (exact fractions; international yard and pound, US gallon).
UNITS: dict[str, tuple[str, Fraction]] = {
    "m": ("length", Fraction(1)), "km": ("length", Fraction(1000)), "cm": ("length", Fraction(1, 100)),
    "mm": ("length", Fraction(1, 1000)), "in": ("length", Fraction(254, 10000)),
    "ft": ("length", Fraction(3048, 10000)), "yd": ("length", Fraction(9144, 10000)),
    "mi": ("length", Fraction(1609344, 1000)),
    "kg": ("mass", Fraction(1)), "g": ("mass", Fraction(1, 1000)), "lb": ("mass", Fraction(45359237, 10**8)),
    "oz": ("mass", Fraction(45359237, 16 * 10**8)),
    "s": ("time", Fraction(1)), "min": ("time", Fraction(60)), "h": ("time", Fraction(3600)),
    "day": ("time", Fraction(86400)),
    "l": ("volume", Fraction(1)), "ml": ("volume", Fraction(1, 1000)), "gal": ("volume", Fraction(3785411784, 10**9)),
    "C": ("temperature", Fraction(1)), "F": ("temperature", Fraction(1)), "K": ("temperature", Fraction(1)),
}

# The characters an expression may hold (digits, operators, parentheses, spaces): the schema says so, so a
# constrained decoder can only write arithmetic, and the calculator's own whitelist still checks the tree.
EXPRESSION_PATTERN = r"^[0-9+\-*/().% ^]{1,40}$"


@lru_cache(maxsize=1)
def lookup_table() -> dict:
    """The shipped lookup table ``{"source", "entries": {key: {"value", "unit", "note"}}}`` (keys lower case)."""
    with open(data_path("agents", "lookup.json"), encoding="utf-8") as handle:
        return json.load(handle)


def lookup_keys() -> list[str]:
    """The lookup table's keys, sorted (the ``key`` argument's enum)."""
    return sorted(lookup_table()["entries"])


def normal_key(key) -> object:
    """A lookup key as the table spells it (lower case, single spaces, no "?"); other types unchanged."""
    return " ".join(key.lower().replace("?", "").split()) if isinstance(key, str) else key


SCHEMAS: dict[str, dict] = {
    "calculator": {
        "description": "Evaluate an arithmetic expression exactly (numbers and + - * / ** only).",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string",
                                                                         "pattern": EXPRESSION_PATTERN}},
                       "required": ["expression"], "additionalProperties": False}},
    "units": {
        "description": "Convert a value between units of length, mass, time, volume or temperature.",
        "parameters": {"type": "object", "properties": {"value": {"type": "number"},
                                                        "from": {"type": "string", "enum": sorted(UNITS)},
                                                        "to": {"type": "string", "enum": sorted(UNITS)}},
                       "required": ["value", "from", "to"], "additionalProperties": False}},
    "lookup": {
        "description": "Look up a fact in the local table by its key.",
        "parameters": {"type": "object", "properties": {"key": {"type": "string", "enum": lookup_keys()}},
                       "required": ["key"], "additionalProperties": False}},
}
TOOLS = tuple(SCHEMAS)


@dataclass(frozen=True)
class ToolResult:
    """What the application did with one call.

    Attributes:
        ok: the call was valid and the tool ran. result: the value (a JSON number for calculator and units, the
        entry for lookup), None when refused. error: None, or "refused: <why>". exact: the exact value as text
        (``"1/3"``) for calculator and units.
    """

    ok: bool
    result: object = None
    error: str | None = None
    exact: str | None = None

    def to_api(self) -> dict:
        """``/tool`` JSON: ``{"ok", "result", "error"}`` (plus ``exact`` for numeric tools)."""
        out = {"ok": self.ok, "result": self.result, "error": self.error}
        if self.exact is not None:
            out["exact"] = self.exact
        return out

    def observation(self) -> str:
        """The text fed back to the model: the result, or "refused: <why>"."""
        if not self.ok:
            return self.error or "refused"
        if isinstance(self.result, dict):
            return f"{self.result['value']} {self.result.get('unit', '')}".strip()
        return str(self.exact if self.exact is not None else self.result)


def call_schema(tools=TOOLS) -> dict:
    """The JSON schema of a whole call ``{"name", "arguments"}`` over ``tools`` (one branch per tool)."""
    return {"anyOf": [{"type": "object", "properties": {"name": {"const": name},
                                                        "arguments": SCHEMAS[name]["parameters"]},
                       "required": ["name", "arguments"], "additionalProperties": False} for name in tools]}


def check_tools(tools) -> tuple[str, ...]:
    """``tools`` as a tuple of known tool names (None or empty: all).

    Raises:
        ValueError: not a list of strings, or an unknown tool (the message lists the known ones).
    """
    if tools is None or tools == [] or tools == ():
        return TOOLS
    if isinstance(tools, str):
        tools = [t.strip() for t in tools.split(",") if t.strip()]
    if not isinstance(tools, (list, tuple)) or not all(isinstance(t, str) for t in tools):
        raise ValueError(f"tools must be a list of tool names (got {type(tools).__name__}).")
    unknown = [t for t in tools if t not in SCHEMAS]
    if unknown:
        raise ValueError(f"tools: unknown tool {unknown[0]!r}; choose from {list(TOOLS)}.")
    return tuple(dict.fromkeys(tools))


def validate_call(name, arguments, tools=TOOLS) -> str | None:
    """None when ``name(arguments)`` is a valid call of one of ``tools``, else why not (for the observation)."""
    if not isinstance(name, str) or name not in SCHEMAS:
        return f"unknown tool {name!r}; the tools are {list(tools)}."
    if name not in tools:
        return f"the tool {name!r} is not enabled for this run."
    if name == "lookup" and isinstance(arguments, dict) and "key" in arguments:
        arguments = {**arguments, "key": normal_key(arguments["key"])}
    try:
        jsonschema.validate(arguments, SCHEMAS[name]["parameters"])
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
        return f"arguments do not match the {name} schema ({where}: {exc.message})."
    return None


def _units(value, src: str, dst: str) -> ToolResult:
    (dim_a, fa), (dim_b, fb) = UNITS[src], UNITS[dst]
    if dim_a != dim_b:
        return ToolResult(False, error=f"refused: cannot convert {dim_a} ({src}) to {dim_b} ({dst}).")
    if isinstance(value, float) and not math.isfinite(value):
        return ToolResult(False, error="refused: the value must be a finite number.")
    exact = Fraction(repr(value)) if isinstance(value, float) else Fraction(value)
    if dim_a == "temperature":
        kelvin = {"K": exact, "C": exact + Fraction(27315, 100), "F": (exact - 32) * Fraction(5, 9) +
                  Fraction(27315, 100)}[src]
        out = {"K": kelvin, "C": kelvin - Fraction(27315, 100),
               "F": (kelvin - Fraction(27315, 100)) * Fraction(9, 5) + 32}[dst]
    else:
        out = exact * fa / fb
    out = out.numerator if out.denominator == 1 else out
    return ToolResult(True, result=calculator.as_number(out),
                      exact=f"{calculator.exact_text(out)} {dst}" if isinstance(out, int) else
                      f"{float(out):.12g} {dst}")


def run_tool(name, arguments, tools=TOOLS) -> ToolResult:
    """Validate ``name(arguments)`` and run it when valid; never raises for a bad call.

    Args:
        name: a tool name from :data:`TOOLS`. arguments: a dict matching the tool's schema.
        tools: the tools enabled for this run (a call of another is refused).
    Returns:
        :class:`ToolResult`; ``ok`` False with ``error`` "refused: <why>" for an unknown tool, arguments outside
        the schema, an expression the calculator refuses, incompatible units or an unknown lookup key.
    """
    if name == "lookup" and isinstance(arguments, dict) and "key" in arguments:
        arguments = {**arguments, "key": normal_key(arguments["key"])}
    problem = validate_call(name, arguments, tools)
    if problem:
        return ToolResult(False, error=f"refused: {problem}")
    if name == "calculator":
        try:
            value = calculator.evaluate(arguments["expression"])
        except calculator.CalculatorRefusal as exc:
            return ToolResult(False, error=f"refused: {exc}")
        return ToolResult(True, result=calculator.as_number(value), exact=calculator.exact_text(value))
    if name == "units":
        return _units(arguments["value"], arguments["from"], arguments["to"])
    key = arguments["key"]
    return ToolResult(True, result={"key": key, **lookup_table()["entries"][key]})


def tool_api(name, arguments) -> dict:
    """JSON API ``/tool``: run one tool directly with the same validation as an agent's call.

    ``arguments`` may be a dict or its JSON text. Returns ``{"ok", "result", "error"}``; nothing raises for a
    refused call (``ok`` False and ``error`` says why).
    """
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            return ToolResult(False, error=f"refused: arguments are not valid JSON ({exc.msg}).").to_api()
    return run_tool(name, arguments).to_api()
