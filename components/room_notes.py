"""Presenter notes: a short Markdown note per scene (per tab), shown to followers beside the view.

The presenter types the note for the tab on screen; each tab keeps its own note (a per-session ``gr.State``
dict), so going back to a tab brings its note back. The note travels in the room's published view as
``note_html``: Markdown rendered once on the server (``components.room_push.markdown_html``), cleaned with the
allow-list of ``components.room_push.clean_html`` and capped at ``Limits.room_note_chars`` characters of Markdown
(``LLM_EXPLORER_ROOM_NOTE_CHARS``); the follower's page inserts that HTML next to the view.
"""
from __future__ import annotations

import gradio as gr

from components.room_push import clean_html, markdown_html


def note_html(text, cap: int) -> str:
    """``text`` (Markdown) as cleaned HTML, at most ``cap`` characters of it (a longer note is cut, with a line
    saying so); ``""`` for an empty note."""
    text = str(text or "").strip()
    if not text:
        return ""
    cut = len(text) > cap
    out = clean_html(markdown_html(text[:cap]))
    return out + (f"<p><small>(the note was cut at {cap:,} characters)</small></p>" if cut else "")


def build(parts: dict, cap: int) -> None:
    """The note box (inside the Workshop accordion) and the per-tab notes state."""
    parts["note"] = gr.Textbox(label=f"Note for the audience on this tab (Markdown, at most {cap:,} characters)",
                               lines=2, max_length=cap, elem_id="room-note")
    parts["notes"] = gr.State({})


def wire(parts: dict, bar: dict) -> None:
    """Keep one note per tab: typing stores it under the tab on screen; a tab change shows that tab's note."""
    def keep(notes, tab, text):
        return {**(notes or {}), str(tab or ""): str(text or "")}

    parts["note"].input(keep, [parts["notes"], bar["current_tab"], parts["note"]], parts["notes"], queue=False,
                        show_progress="hidden", api_visibility="private")
    bar["current_tab"].change(lambda notes, tab: (notes or {}).get(str(tab or ""), ""),
                              [parts["notes"], bar["current_tab"]], parts["note"], queue=False,
                              show_progress="hidden", api_visibility="private")
