"""Render once: a presenter's results, as the presenter's page received them, become the room's pushed result.

:func:`hook_results` wraps the built page's ``process_api`` and ``postprocess_data`` (Gradio's own steps that
run a handler and serialise its outputs for the browser) once, in ``app.py``. When the session that runs an
event presents a room (:meth:`explorer.workshop.PushHub.present`), the event's displayed outputs (figures,
HTML, Markdown, tables, JSON) are taken from the data Gradio already serialised for the presenter's page, so no
handler runs again and nothing is rendered twice; they are published to the room's hub under the tab that owns
the handler (the tab package's handlers, or a tab's JSON API by its ``api_names``). A streaming handler's
result is published when it ends, and at most once a second while it runs. Markdown is turned into HTML here,
once, and HTML is cleaned (an allow-list of tags and attributes) before it reaches followers' pages.

Every call of ``process_api`` is counted (:func:`handler_calls`), so tests can show that followers cause none.
The push routes are ``components/room_routes.py``; the follower's page script is ``components/room_follow.js``.
"""
from __future__ import annotations

import asyncio
import contextvars
import html
import math
import threading
import time
from html.parser import HTMLParser

from explorer.workshop import push_hub

STREAM_PUBLISH_S = 1.0  # a running (streaming) result is pushed at most this often
_CALLS = {"n": 0}
_CALLS_LOCK = threading.Lock()
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("llmx_room_event", default=None)
_KINDS = (("Plot", "plot"), ("HighlightedText", "highlighted"), ("Dataframe", "table"), ("JSON", "json"),
          ("Label", "label"), ("Markdown", "markdown"), ("HTML", "html"), ("Api", "json"))


def handler_calls() -> int:
    """Events the server has run (``process_api`` calls) since it started: a follower's push adds none."""
    with _CALLS_LOCK:
        return _CALLS["n"]


def kind_of(component) -> str | None:
    """The pushed kind of an output component (``plot``, ``table``, ``markdown``, ``html``, ``json``, ...), or
    ``None`` for what a follower does not see (states, settings, hidden helpers)."""
    if component is None or getattr(component, "visible", True) is False:
        return None
    names = {cls.__name__ for cls in type(component).__mro__}
    return next((kind for name, kind in _KINDS if name in names), None)


def _plain(value):
    """JSON-safe copy: pydantic models dumped, NaN and infinities as ``None``, tuples as lists."""
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def serialise_outputs(components, data: list) -> list[dict]:
    """The follower's view of one event's outputs: ``[{"id", "kind", "label", "value"}]``.

    Args:
        components: the event's output components (``block_fn.outputs``).
        data: Gradio's postprocessed output values for them (what the presenter's page receives). An update
            without a value and a skipped output are left out; Markdown becomes cleaned HTML (kind ``html``).

    The list is in page order (components are numbered as they are laid out), so a table's badge slot comes
    just before its table, as on the presenter's page.
    """
    out = []
    pairs = sorted(zip(components, data), key=lambda pair: getattr(pair[0], "_id", 0))
    for component, value in pairs:
        kind = kind_of(component)
        if kind is None:
            continue
        if isinstance(value, dict) and value.get("__type__") == "update":
            if "value" not in value:
                continue
            value = value["value"]
        if value is None:
            continue
        value = _plain(value)
        if kind == "markdown":
            kind, value = "html", clean_html(markdown_html(str(value)))
        elif kind == "html":
            value = clean_html(str(value))
        out.append({"id": getattr(component, "elem_id", None) or f"output-{getattr(component, '_id', len(out))}",
                    "kind": kind, "label": getattr(component, "label", None), "value": value})
    return out


def markdown_html(text: str) -> str:
    """Markdown (CommonMark with tables, raw HTML kept for badges) as HTML; clean it with :func:`clean_html`."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


_TAGS = {"a", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li",
         "mark", "ol", "p", "pre", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "th",
         "thead", "tr", "u", "ul", "details", "summary", "abbr", "kbd", "caption", "colgroup", "col", "tfoot"}
_VOID = {"br", "hr", "col"}
_ATTRS = {"class", "title", "style", "data-kind", "colspan", "rowspan", "align", "href", "open"}


class _Cleaner(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0  # inside <script>/<style>: drop the text too

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "iframe", "object", "svg", "math", "template"):
            self.skip += tag not in _VOID
            return
        if tag not in _TAGS or self.skip:
            return
        kept = []
        for name, value in attrs:
            value = value or ""
            low = value.lower().replace(" ", "")
            if name not in _ATTRS or "javascript:" in low or "expression(" in low or "url(" in low:
                continue
            if name == "href" and not low.startswith(("http://", "https://", "#")):
                continue
            kept.append(f' {name}="{html.escape(value, quote=True)}"')
        if tag == "a":
            kept.append(' target="_blank" rel="noopener noreferrer"')
        self.parts.append(f"<{tag}{''.join(kept)}>")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "iframe", "object", "svg", "math", "template"):
            self.skip = max(0, self.skip - 1)
            return
        if tag in _TAGS and tag not in _VOID and not self.skip:
            self.parts.append(f"</{tag}>")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(html.escape(data, quote=False))


def clean_html(text: str) -> str:
    """``text`` with only allow-listed tags and attributes (no scripts, event handlers, ``javascript:`` or
    ``url(...)``); text is re-escaped. What reaches a follower's page through ``innerHTML``."""
    cleaner = _Cleaner()
    cleaner.feed(str(text))
    cleaner.close()
    return "".join(cleaner.parts)


def _tab_of(block_fn, by_api: dict) -> str | None:
    from components.serving import _tab_key

    fn = getattr(block_fn, "fn", None)
    key = _tab_key(fn) if fn is not None else None
    return key or by_api.get(getattr(block_fn, "api_name", None))


def hook_results(demo, specs) -> None:
    """Count every event and push a presenting session's results (see the module docstring). Idempotent.

    Args:
        demo: the built ``gr.Blocks``.
        specs: the tabs' :class:`components.registry.TabSpec` (``api_names`` map a JSON API to its tab).
    """
    if getattr(demo, "_llmx_push_hooked", False):
        return
    demo._llmx_push_hooked = True
    by_api = {name: spec.key for spec in specs for name in spec.api_names}
    hub = push_hub()
    run, postprocess = demo.process_api, demo.postprocess_data
    last_push: dict[str, float] = {}

    async def postprocess_data(block_fn, predictions, state, *args, **kwargs):
        data = await postprocess(block_fn, predictions, state, *args, **kwargs)
        event = _CURRENT.get()
        if event is not None:
            event["data"] = data  # full values, before Gradio turns a stream's later chunks into diffs
        return data

    async def process_api(*args, **kwargs):
        with _CALLS_LOCK:
            _CALLS["n"] += 1
        session = kwargs.get("session_hash")
        code = hub.room_of(session)
        if code is None:
            return await run(*args, **kwargs)
        event = {"data": None}
        token = _CURRENT.set(event)
        try:
            out = await run(*args, **kwargs)
        finally:
            _CURRENT.reset(token)
        block_fn = kwargs.get("block_fn", args[0] if args else None)
        if isinstance(block_fn, int):
            block_fn = demo.fns[block_fn]
        tab = _tab_of(block_fn, by_api)
        if tab and event["data"] is not None and not getattr(block_fn, "batch", False):
            key = f"{session}:{getattr(block_fn, '_id', id(block_fn))}"
            now = time.monotonic()
            if not out.get("is_generating") or now - last_push.get(key, 0.0) >= STREAM_PUBLISH_S:
                last_push[key] = now
                # off the event loop, which also serves every follower's push connection
                outputs = await asyncio.to_thread(serialise_outputs, block_fn.outputs, list(event["data"]))
                if outputs:
                    await asyncio.to_thread(hub.publish_result, code, tab, outputs)
            if not out.get("is_generating"):
                last_push.pop(key, None)
        return out

    demo.postprocess_data = postprocess_data
    demo.process_api = process_api
