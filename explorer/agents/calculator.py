"""The ``calculator`` tool: an arithmetic expression parsed with :mod:`ast` and evaluated by walking the tree.

Nothing is ever passed to ``eval``, ``exec`` or ``compile``: the text is parsed (``ast.parse(mode="eval")``) and every
node is checked against a whitelist (numbers, ``+ - * / ** %`` and unary signs; parentheses only group). Names,
attributes, calls, subscripts, comprehensions, strings and every other node are refused before any evaluation, so
no expression can reach the interpreter, the file system, the network or the environment. Arithmetic is exact:
integers stay ``int`` and every other value is a :class:`fractions.Fraction` (a decimal literal such as ``0.1`` is
read as exactly 1/10). Caps (``Limits.calc_*``): the expression's length, the tree's depth, the exponent's size and
the result's digits are checked before each power is computed, so an exponent bomb such as ``9**9**9`` is refused
without being evaluated.
"""
from __future__ import annotations

import ast
import math
from fractions import Fraction

from explorer.core.config import get_limits

# Unicode operators a question may use, rewritten to Python's before parsing ("^" is read as a power, as in maths).
SYMBOLS = {"×": "*", "÷": "/", "−": "-", "–": "-", "^": "**"}
BINARY = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod)
UNARY = (ast.UAdd, ast.USub)


class CalculatorRefusal(ValueError):
    """An expression the calculator will not evaluate; the message says why (shown as the tool's observation)."""


def _depth(node: ast.AST) -> int:
    children = list(ast.iter_child_nodes(node))
    return 1 + max((_depth(c) for c in children), default=0)


def _digits(value) -> int:
    """Decimal digits of the larger of a value's numerator and denominator."""
    value = Fraction(value)
    return max(len(str(abs(value.numerator))), len(str(value.denominator)))


def _check_tree(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp)):
            continue
        if isinstance(node, BINARY + UNARY):
            continue
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise CalculatorRefusal(f"only numbers are allowed (found the literal {node.value!r}).")
            if isinstance(node.value, float) and not math.isfinite(node.value):
                raise CalculatorRefusal("only finite numbers are allowed.")
            continue
        if isinstance(node, ast.Name):
            raise CalculatorRefusal(f"names are not allowed (found {node.id!r}); use numbers and + - * / ** only.")
        if isinstance(node, ast.Attribute):
            raise CalculatorRefusal("attribute access (a.b) is not allowed.")
        if isinstance(node, ast.Call):
            raise CalculatorRefusal("function calls are not allowed.")
        if isinstance(node, ast.Subscript):
            raise CalculatorRefusal("subscripts (a[b]) are not allowed.")
        if isinstance(node, ast.operator):
            raise CalculatorRefusal(f"the operator {type(node).__name__} is not allowed; use + - * / ** %.")
        raise CalculatorRefusal(f"{type(node).__name__} is not allowed in an arithmetic expression.")


def _number(value: float | int) -> int | Fraction:
    if isinstance(value, int):
        return value
    return Fraction(repr(value))  # the literal as written, exactly (0.1 -> 1/10)


def _tidy(value: Fraction | int) -> int | Fraction:
    value = Fraction(value)
    return value.numerator if value.denominator == 1 else value


def _power(base, exponent, limits) -> int | Fraction:
    exponent = Fraction(exponent)
    if exponent.denominator != 1:
        raise CalculatorRefusal("only whole-number exponents are allowed (the result must stay exact).")
    n = exponent.numerator
    if abs(n) > limits.calc_max_exponent:
        raise CalculatorRefusal(f"the exponent {n} is larger than {limits.calc_max_exponent} "
                                f"(LLM_EXPLORER_CALC_MAX_EXPONENT).")
    base = Fraction(base)
    if base == 0 and n < 0:
        raise CalculatorRefusal("zero cannot be raised to a negative power (division by zero).")
    if base not in (0, 1, -1) and _digits(base) * abs(n) > limits.calc_max_digits + abs(n):
        raise CalculatorRefusal(f"the result would have more than {limits.calc_max_digits} digits "
                                f"(LLM_EXPLORER_CALC_MAX_DIGITS).")
    return _tidy(base ** n)


def _evaluate(node: ast.AST, limits) -> int | Fraction:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, limits)
    if isinstance(node, ast.Constant):
        return _number(node.value)
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, limits)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, limits), _evaluate(node.right, limits)
        if isinstance(node.op, ast.Add):
            value = Fraction(left) + Fraction(right)
        elif isinstance(node.op, ast.Sub):
            value = Fraction(left) - Fraction(right)
        elif isinstance(node.op, ast.Mult):
            value = Fraction(left) * Fraction(right)
        elif isinstance(node.op, (ast.Div, ast.Mod)):
            if right == 0:
                raise CalculatorRefusal("division by zero.")
            value = Fraction(left) / Fraction(right) if isinstance(node.op, ast.Div) \
                else Fraction(left) % Fraction(right)
        else:
            value = _power(left, right, limits)
        if _digits(value) > limits.calc_max_digits:
            raise CalculatorRefusal(f"the result has more than {limits.calc_max_digits} digits "
                                    f"(LLM_EXPLORER_CALC_MAX_DIGITS).")
        return _tidy(value)
    raise CalculatorRefusal(f"{type(node).__name__} is not allowed.")  # unreachable after _check_tree


def evaluate(expression) -> int | Fraction:
    """The exact value of an arithmetic ``expression``.

    Args:
        expression: text such as ``"(3 + 4) * 2 ** 10 / 7"``; ``× ÷ −`` and ``^`` (power) are accepted.
    Returns:
        an ``int`` when the value is whole, else a :class:`fractions.Fraction`.
    Raises:
        CalculatorRefusal (a ``ValueError``): not a string, empty, longer than ``Limits.calc_max_chars``, not valid
            syntax, any node outside the whitelist (names, attributes, calls, subscripts, strings ...), deeper than
            ``Limits.calc_max_depth``, an exponent past ``Limits.calc_max_exponent``, a result past
            ``Limits.calc_max_digits`` digits, or a division by zero.
    """
    limits = get_limits()
    if not isinstance(expression, str):
        raise CalculatorRefusal(f"the expression must be a string (got {type(expression).__name__}).")
    text = expression.strip()
    if not text:
        raise CalculatorRefusal("the expression is empty.")
    if len(text) > limits.calc_max_chars:
        raise CalculatorRefusal(f"the expression is {len(text)} characters long; at most {limits.calc_max_chars} "
                                f"are accepted (LLM_EXPLORER_CALC_MAX_CHARS).")
    if "__" in text:
        raise CalculatorRefusal("dunder names are not allowed.")
    for symbol, python in SYMBOLS.items():
        text = text.replace(symbol, python)
    if text.count("(") > limits.calc_max_depth:
        raise CalculatorRefusal(f"the expression nests deeper than {limits.calc_max_depth} levels "
                                f"(LLM_EXPLORER_CALC_MAX_DEPTH).")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise CalculatorRefusal(f"not a valid arithmetic expression ({type(exc).__name__}).") from None
    _check_tree(tree)
    if _depth(tree) > limits.calc_max_depth + 1:
        raise CalculatorRefusal(f"the expression nests deeper than {limits.calc_max_depth} levels "
                                f"(LLM_EXPLORER_CALC_MAX_DEPTH).")
    return _evaluate(tree, limits)


def as_number(value: int | Fraction) -> int | float:
    """A JSON number for ``value``: the ``int`` itself, or the nearest float of a fraction."""
    return value if isinstance(value, int) else float(value)


def exact_text(value: int | Fraction) -> str:
    """``value`` written exactly: ``"84"`` or ``"1/3"``."""
    return str(value)
