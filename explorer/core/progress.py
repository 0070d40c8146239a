"""The one contract every lens's ``iter_run`` follows: yield :class:`Progress` items, then the result.

``for item in lens.iter_run(...)``: each item is either a :class:`Progress` (how far, what is running) or the
lens's frozen result (the last item). The UI maps ``Progress`` to ``gr.Progress``; a streaming tab may also
draw partial results that a lens yields as ``Progress(partial=...)``. :func:`run_to_end` drains an iterator and
returns the result, which is what every lens's blocking ``run`` does. :func:`to_api` is every lens's serialiser:
the result's own ``to_api(**view)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator


@dataclass(frozen=True)
class Progress:
    """How far a long task is.

    Attributes:
        fraction: share done, in [0, 1].
        message: what is running now ("probe 2 of 4: P(True)", "step 12 of 40").
        partial: an optional partial result the UI may draw while the task goes on.
    """

    fraction: float
    message: str = ""
    partial: Any = None


def run_to_end(items: Iterator[Any]) -> Any:
    """Drain ``items`` (an ``iter_run`` iterator) and return its last non-:class:`Progress` item.

    Raises:
        RuntimeError: the iterator ended without yielding a result.
    """
    result, seen = None, False
    for item in items:
        if not isinstance(item, Progress):
            result, seen = item, True
    if not seen:
        raise RuntimeError("the lens ended without a result")
    return result


def to_api(result: Any, **view: Any) -> dict:
    """The JSON of a lens result: ``result.to_api(**view)`` (``view``: keyword view options such as the attention
    lens's ``layer`` / ``head`` / ``decimals``). Every lens package exports this one function as ``to_api``.

    Raises:
        ValueError: a view option the result rejects (it names the option).
    """
    return result.to_api(**view)
