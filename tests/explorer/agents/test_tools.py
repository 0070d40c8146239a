"""The agents' tools: the calculator refuses code and bombs and is exact; calls are validated with jsonschema."""
import ast
import json
from fractions import Fraction

import jsonschema
import pytest

from explorer.agents import calculator, tools
from explorer.agents.tools import SCHEMAS, run_tool, tool_api, validate_call

ATTACKS = [
    '__import__("os").system("echo pwned")', "().__class__.__bases__[0].__subclasses__()", "open('/etc/passwd')",
    "exec('1')", "eval('1+1')", "x", "a.b", "globals()", "[1, 2][0]", "(1).real", "lambda: 1", "[i for i in (1,)]",
    "9**9**9", "10**1000", "2**(10**6)", "(" * 40 + "1" + ")" * 40, "-" * 60 + "1", "1" * 250, "'a' * 3", "True + 1",
    "1 if 1 else 0", "1 < 2", "1 & 1", "{1: 2}", "f'{1}'", "1; 2", "import os", "1/0", "0**-1", "2**0.5", "",
    "10**150 * 10**150",
]


@pytest.mark.parametrize("expression", ATTACKS)
def test_calculator_refuses_code_and_bombs(expression):
    with pytest.raises(calculator.CalculatorRefusal):
        calculator.evaluate(expression)
    result = run_tool("calculator", {"expression": expression})
    assert not result.ok and result.result is None and result.error.startswith("refused")


def test_calculator_never_evaluates_python(tmp_path, monkeypatch):
    """A refused attack has no side effect: a file-writing expression leaves nothing behind, eval/exec never run."""
    import builtins

    monkeypatch.setattr(builtins, "eval", lambda *a, **k: pytest.fail("eval called"))
    monkeypatch.setattr(builtins, "exec", lambda *a, **k: pytest.fail("exec called"))
    target = tmp_path / "pwned"
    attack = f"open({str(target)!r}, 'w').write('x')"
    assert not run_tool("calculator", {"expression": attack}).ok
    assert calculator.evaluate("(3 + 4) * 2 ** 10 / 7") == 1024
    assert not target.exists()


@pytest.mark.parametrize("expression", ["1+2", "(3+4)*2**10/7", "1/3+1/6", "0.1+0.2", "2**-3", "-(5-8)*4",
                                        "7 % 3", "123456789*987654321", "2**200", "3.5/7", "((1+2)*(3+4))**2"])
def test_calculator_is_exact_against_fractions(expression):
    """Reference: the same tree evaluated in Python's own arithmetic on Fractions (numbers parsed from the text)."""
    tree = ast.parse(expression, mode="eval")
    value = calculator.evaluate(expression)
    exact = _fraction_eval(tree.body)
    assert Fraction(value) == exact
    assert isinstance(value, int) == (exact.denominator == 1)


def _fraction_eval(node):
    ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Mod: lambda a, b: a % b, ast.Pow: lambda a, b: a ** int(b)}
    if isinstance(node, ast.Constant):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp):
        return -_fraction_eval(node.operand) if isinstance(node.op, ast.USub) else _fraction_eval(node.operand)
    return Fraction(ops[type(node.op)](_fraction_eval(node.left), _fraction_eval(node.right)))


def test_calculator_accepts_maths_symbols_and_reports_exact_text():
    assert calculator.evaluate("6 × 7 − 2 ÷ 2") == 41
    assert calculator.evaluate("2^10") == 1024
    assert tool_api("calculator", {"expression": "1/3"}) == {"ok": True, "result": 1 / 3, "error": None,
                                                             "exact": "1/3"}


def test_caps_are_settings(monkeypatch):
    from explorer.core.config import get_limits

    monkeypatch.setenv("LLM_EXPLORER_CALC_MAX_EXPONENT", "4")
    get_limits.cache_clear()
    try:
        assert calculator.evaluate("2**4") == 16
        with pytest.raises(ValueError, match="CALC_MAX_EXPONENT"):
            calculator.evaluate("2**5")
    finally:
        monkeypatch.delenv("LLM_EXPLORER_CALC_MAX_EXPONENT")
        get_limits.cache_clear()


CALLS = [("calculator", {"expression": "1+1"}), ("calculator", {"expression": 5}), ("calculator", {}),
         ("calculator", {"expression": "1", "extra": 1}), ("units", {"value": 3, "from": "mi", "to": "km"}),
         ("units", {"value": "3", "from": "mi", "to": "km"}), ("units", {"value": 3, "from": "parsec", "to": "km"}),
         ("lookup", {"key": "speed of light"}), ("lookup", {"key": "nope"}), ("lookup", ["speed of light"])]


@pytest.mark.parametrize("name,arguments", CALLS)
def test_validation_agrees_with_jsonschema(name, arguments):
    try:
        jsonschema.validate(arguments, SCHEMAS[name]["parameters"])
        expected = True
    except jsonschema.ValidationError:
        expected = False
    assert (validate_call(name, arguments) is None) == expected
    result = run_tool(name, arguments)
    if not expected:
        assert not result.ok and "schema" in result.error


def test_unknown_or_disabled_tools_and_bad_json_are_refused():
    assert "unknown tool" in tool_api("shell", {"cmd": "ls"})["error"]
    assert "not enabled" in run_tool("units", {"value": 1, "from": "m", "to": "ft"}, tools=("calculator",)).error
    assert "not valid JSON" in tool_api("calculator", "{expression: 1}")["error"]
    with pytest.raises(ValueError, match="tools"):
        tools.check_tools(["calculator", "shell"])


def test_units_against_the_stated_table():
    assert run_tool("units", {"value": 100, "from": "C", "to": "F"}).result == 212
    assert run_tool("units", {"value": 0, "from": "C", "to": "K"}).result == pytest.approx(273.15)
    assert run_tool("units", {"value": 5, "from": "mi", "to": "km"}).result == pytest.approx(8.04672)
    assert run_tool("units", {"value": 1, "from": "lb", "to": "g"}).result == pytest.approx(453.59237)
    assert "cannot convert" in run_tool("units", {"value": 1, "from": "m", "to": "kg"}).error


def test_lookup_reads_the_shipped_table_case_insensitively():
    from explorer.core.config import data_path

    with open(data_path("agents", "lookup.json"), encoding="utf-8") as handle:
        table = json.load(handle)["entries"]
    result = run_tool("lookup", {"key": "Population of Veloria?"})
    assert result.ok and result.result["value"] == table["population of veloria"]["value"]


def test_tool_modules_import_nothing_that_reaches_outside():
    """The tools' modules import only pure modules (no os, subprocess, socket, importlib, builtins) and call no
    eval/exec/compile/open except the one read of the shipped lookup table."""
    allowed = {"__future__", "ast", "math", "fractions", "json", "dataclasses", "functools", "jsonschema",
               "explorer.agents", "explorer.core.config"}
    for module in (calculator, tools):
        tree = ast.parse(open(module.__file__, encoding="utf-8").read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= allowed, module.__name__
            elif isinstance(node, ast.ImportFrom):
                assert node.module in allowed, (module.__name__, node.module)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec", "compile", "__import__", "getattr"}, node.func.id
                if node.func.id == "open":
                    assert module is tools
