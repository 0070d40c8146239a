"""Turning engine errors into messages a person understands, never a stack trace."""
from __future__ import annotations

import functools
import logging
import traceback

import gradio as gr

log = logging.getLogger("llm_explorer")


def ui_errors(fn):
    """Decorate a Gradio handler so that errors become ``gr.Error`` pop-ups.

    ``ValueError`` (bad input the user can fix) shows its own message; any other exception is
    logged with its traceback on the server and shown as a short generic message. ``gr.Error``
    raised by the handler passes through unchanged. Works for plain functions and generators.
    """
    import inspect

    def convert(exc: BaseException) -> gr.Error:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, ValueError):
            return gr.Error(str(exc))
        log.error("handler %s failed:\n%s", fn.__name__, traceback.format_exc())
        return gr.Error(f"Something went wrong in {fn.__name__.lstrip('_')} ({type(exc).__name__}). "
                        "The shared model is unchanged; try again or shorten the input.")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - converted for the UI
                raise convert(exc) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - converted for the UI
            raise convert(exc) from None
    return wrapper
