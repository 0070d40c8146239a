"""The ordered list of tabs. Each entry names a module ``components/<key>_tab.py`` that defines
``build_<key>_tab(ctx) -> dict``; app.py builds them in this order."""
from __future__ import annotations

import importlib
import importlib.util

# (key, label) in page order.
TAB_ORDER: list[tuple[str, str]] = [
    ("tokens", "Tokens"),
    ("attention", "Attention"),
    ("kv_cache", "KV cache"),
    ("decoding", "Decoding"),
    ("quantization", "Quantisation"),
    ("lora", "LoRA"),
    ("hallucination", "Hallucination"),
]


def available_tabs() -> list[tuple[str, str, object]]:
    """``(key, label, build_fn)`` for each tab whose module exists, in page order."""
    tabs = []
    for key, label in TAB_ORDER:
        module_name = f"components.{key}_tab"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        tabs.append((key, label, getattr(module, f"build_{key}_tab")))
    return tabs
