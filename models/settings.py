"""Settings the model layer reads itself: where converted models are cached and which Hub ids may load.

``models`` sits below ``explorer`` (the layering is checked by import-linter, see ``pyproject.toml``),
so it reads these two settings from the environment here instead of importing ``explorer.core.config``;
``explorer.core.config`` re-exports :func:`cache_dir` and parses the same allow-list variable into
``Limits.hub_allow_list``.
"""
from __future__ import annotations

import os

HUB_ALLOW_LIST_ENV = "LLM_EXPLORER_HUB_ALLOW_LIST"


def cache_dir() -> str:
    """Folder for converted models and other derived files.

    ``LLM_EXPLORER_CACHE`` if set, else ``~/.cache/llm-explorer`` (``XDG_CACHE_HOME`` respected).
    """
    root = os.environ.get("LLM_EXPLORER_CACHE")
    if root:
        return root
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "llm-explorer")


def split_list(raw: str | None) -> tuple[str, ...]:
    """``"a/b, c/d"`` -> ``("a/b", "c/d")`` (empty parts dropped): how every list-valued setting is written."""
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def hub_allow_list() -> tuple[str, ...]:
    """The Hub ids this server may load (``LLM_EXPLORER_HUB_ALLOW_LIST``, comma-separated); empty = any valid id."""
    return split_list(os.environ.get(HUB_ALLOW_LIST_ENV))
