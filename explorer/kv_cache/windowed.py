"""The KV cache of models with sliding-window (local) layers, such as Gemma 2/3 and Mistral 7B v0.1.

A local layer attends to the last ``sliding_window`` positions only (the query itself plus
``sliding_window - 1`` before it; Beltagy et al. 2020, arXiv:2004.05150; Gemma Team 2025, "Gemma 3
Technical Report", arXiv:2503.19786), so its cache need not keep more. transformers'
``DynamicCache(config=...)`` builds a ``DynamicSlidingWindowLayer`` for each such layer, which keeps the
last ``sliding_window - 1`` keys and values (``cache_utils.py``), while a global layer keeps every token.
Per layer and batch 1 the cache therefore holds

    2 x num_kv_heads x head_dim x bytes_per_element x (min(tokens, sliding_window - 1) if local else tokens)

bytes, and the model's total is the sum over layers. For Gemma 3 270M (15 local + 3 global layers, one KV
head of dim 256) the local layers stop growing at 511 tokens and only the 3 global layers keep growing.
"""
from __future__ import annotations


def cached_tokens(tokens: int, window: int) -> int:
    """Tokens one layer's cache holds after ``tokens`` positions: ``min(tokens, window - 1)`` for a local layer
    with a ``window``-token sliding window, ``tokens`` for a global layer (``window == 0``)."""
    tokens = int(tokens)
    return min(tokens, int(window) - 1) if window else tokens


def windowed_kv_bytes(windows, num_kv_heads: int, head_dim: int, bytes_per_element: float, tokens: int) -> int:
    """KV cache bytes for ``tokens`` positions with per-layer ``windows`` (0 = global), batch 1.

    ``sum over layers of 2 x num_kv_heads x head_dim x bytes_per_element x cached_tokens(tokens, window)``;
    with every window 0 this is the usual ``2 x layers x kv_heads x head_dim x bytes x tokens``.
    Fractional ``bytes_per_element`` (4-bit caches: 0.5) is allowed; the result is rounded down to whole bytes.
    """
    per_token = 2 * int(num_kv_heads) * int(head_dim)
    return int(sum(per_token * bytes_per_element * cached_tokens(tokens, w) for w in windows))


def window_note(windows) -> str:
    """One sentence for beside the growth figure, given per-layer ``windows`` (0 = global); ``""`` if none is local."""
    windows = tuple(windows or ())
    local = [w for w in windows if w]
    if not local:
        return ""
    window = max(local)
    return (f"{len(local)} of {len(windows)} layers are local (sliding window {window:,}): transformers' "
            f"`DynamicCache` keeps only the last {window - 1:,} keys and values there (a query sees itself plus "
            f"{window - 1:,} before it), so those layers stop growing at {window - 1:,} tokens and only the "
            f"{len(windows) - len(local)} global layers keep growing. Bytes per step = sum over layers of "
            f"2 x KV heads x head dim x bytes x (min(tokens, {window - 1:,}) for a local layer, tokens for a global one).")
