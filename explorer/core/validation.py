"""One validation helper for the arguments every lens shares, with one wording per error.

Errors a user can cause raise ``ValueError`` whose message names the argument; the UI turns them into
``gr.Error`` (``components.errors``) and the JSON APIs into a clear error. Values above a cap are not
refused: they are capped and a notice says so (the caller shows it with ``gr.Warning`` / ``notices``).
"""
from __future__ import annotations

import math
from typing import Any


def check_text(value: Any, name: str = "text", allow_empty: bool = False) -> str:
    """Return ``value`` if it is a string (non-blank unless ``allow_empty``).

    Raises:
        ValueError: not a string ("The text must be a string (got list).") or empty/whitespace-only.
    """
    if not isinstance(value, str):
        raise ValueError(f"The {name} must be a string (got {type(value).__name__}).")
    if "\x00" in value:
        raise ValueError(f"The {name} contains a NUL character; remove it.")
    if not allow_empty and not value.strip():
        raise ValueError(f"The {name} is empty; type some text.")
    return value


def check_optional_text(value: Any, name: str) -> str | None:
    """``value`` if it is a string, ``None`` for ``None`` or ``""`` (an optional model name, context, target).

    Raises:
        ValueError: neither ``None`` nor a string ("The model must be a string (got list).").
    """
    if value is None:
        return None
    return check_text(value, name, allow_empty=True) or None


def check_records(value: Any, name: str) -> list[dict]:
    """``value`` as a list of dicts (JSON objects), e.g. decoding strategies or a LoRA dataset.

    Raises:
        ValueError: not a list, or an entry that is not a dict (message names ``name``).
    """
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{name} must be a list of objects (dicts) (got {type(value).__name__}).")
    return list(value)


def check_mapping(value: Any, name: str) -> dict:
    """``value`` as a dict; ``None`` is an empty dict (all defaults).

    Raises:
        ValueError: not a dict (message names ``name``).
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict of settings (got {type(value).__name__}).")
    return value


def check_int(value: Any, name: str, minimum: int | None = None, cap: int | None = None,
              notices: list[str] | None = None) -> int:
    """``value`` as an int, refused below ``minimum`` and capped at ``cap`` (a notice is appended to ``notices``).

    Accepts ints and integral floats (JSON clients send 8.0); refuses booleans, strings and NaN.

    Raises:
        ValueError: not an integer, or below ``minimum`` (message names ``name``).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be an integer (got {type(value).__name__}).")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise ValueError(f"{name} must be an integer (got {value!r}).")
    number = int(value)
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be at least {minimum} (got {number}).")
    if cap is not None and number > cap:
        if notices is not None:
            notices.append(f"{name} was capped at {cap} (asked for {number}).")
        number = cap
    return number


def check_float(value: Any, name: str, minimum: float | None = None, maximum: float | None = None,
                strict_minimum: bool = False) -> float:
    """``value`` as a finite float within ``[minimum, maximum]`` (``(minimum, ...`` when ``strict_minimum``).

    Raises:
        ValueError: not a number, NaN/inf, or out of range (message names ``name``).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number (got {type(value).__name__}).")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number (got {value!r}).")
    if minimum is not None and (number <= minimum if strict_minimum else number < minimum):
        raise ValueError(f"{name} must be {'above' if strict_minimum else 'at least'} {minimum} (got {number}).")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum} (got {number}).")
    return number


def check_max_new_tokens(value: Any, cap: int, notices: list[str] | None = None) -> int:
    """``max_new_tokens``: tokens to generate (not counting the prompt), at least 1, capped at ``cap``.

    Raises:
        ValueError: not an integer or below 1.
    """
    return check_int(value, "max_new_tokens", minimum=1, cap=cap, notices=notices)


def check_choices(values: Any, name: str, allowed: list[str] | tuple[str, ...] | None) -> list[str]:
    """``values`` as a list of strings, each one of ``allowed`` (any string when ``allowed`` is None: the
    caller checks the names with its own wording).

    Raises:
        ValueError: not a list of strings, or an unknown entry (the message lists the allowed ones).
    """
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{name} must be a list of names (got {type(values).__name__}).")
    unknown = [v for v in values if allowed is not None and v not in allowed]
    if unknown:
        raise ValueError(f"Unknown {name}: {', '.join(unknown)}. Choose from: {', '.join(allowed)}.")
    return list(values)


def require_causal(engine, what: str = "This view") -> None:
    """Refuse an encoder (MiniLM) where a lens needs a decoder that predicts the next token.

    Raises:
        ValueError: "<what> needs a decoder (causal language model); all-minilm-l6-v2 is a bidirectional encoder ..."
    """
    if not engine.is_causal:
        raise ValueError(f"{what} needs a decoder (causal language model); {engine.name} is a bidirectional encoder, which "
                         f"does not predict the next token. Pick a decoder such as smollm2-135m-instruct.")
