"""Whose runs: the owner id that SFT and DPO runs belong to (shared by both sections of the Fine-tuning tab)."""
from __future__ import annotations


def owner_of(browser_id: str | None, request) -> str:
    """The session's owner id: the browser's stored id, else Gradio's session hash (``request``: a
    ``gr.Request`` or None); empty when neither is known."""
    return (browser_id or "").strip() or (getattr(request, "session_hash", None) or "")
