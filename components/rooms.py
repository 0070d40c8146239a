"""Workshop panel: a room that follows the presenter, and talk files for offline use.

**Rooms.** "Start a room" opens a room in :func:`explorer.workshop.room_store` and shows its code and a link
(``?room=CODE``). The presenter's page publishes its view (tab, prompt, model, the tabs' share-link settings, and a
stamp of each tab's last result) on every change of one of them, and every ``PUBLISH_S`` seconds through a
``gr.Timer`` (unqueued: a dict write, never behind the model queue); the token that allows the write lives in the
presenter's server-side ``gr.State`` only. The presenter's session is registered with the push hub
(:func:`explorer.workshop.push_hub`), so each result its page receives is pushed as it was serialised for that
page (``components/room_push.py``): render once. A follower's page runs ``room_follow.js`` (a page-load event
with no Python handler): it holds one push connection (``components/room_routes.py``), fetches the payload when
the version moves, and draws the presenter's view and figures with plotly.js in a stage that replaces the tabs:
push once, and no Gradio event per follower. The presenter's note for the tab on screen (``room_notes.py``) and
the room's "guess the next token" (``room_quiz.py``) travel the same way; "Take home" downloads, from the
follower's page alone, one JSON file of the scenes it was shown, their settings and notes, the results as shown
and its own guesses (capped at ``Limits.max_talk_bytes``). "Explore on my own" opens the presenter's view as a share link (the
normal page); "Rejoin" follows again and catches up by version.

**Talk files.** "Export talk file" writes every tab that has a result on this page (its main figure, the lens's
JSON, the settings) with :func:`explorer.workshop.write_talk`. "Load a talk file" (or ``python app.py --talk
FILE`` / ``LLM_EXPLORER_TALK``, for a machine where the model is missing or fails to load) opens the stored view:
the figures drawn from the file, each marked STORED.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time

import gradio as gr

from components import room_notes, room_quiz, share
from components.errors import ui_errors
from components.room_push import clean_html
from explorer.core.config import get_limits
from explorer.workshop import RoomGone, push_hub, quiz_book, read_talk, room_store, write_talk

API_NAMES = ("room_start", "room_publish", "room_state") + room_quiz.API_NAMES
PUBLISH_S = 1.0  # the presenter's page also sends its view this often (a heartbeat; changes go at once)

_LINK_JS = """(code) => code ? window.location.origin + window.location.pathname + '?room=' + code : ''"""
FOLLOW_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "room_follow.js")


def follow_js(labels: dict[str, str], take_home_bytes: int | None = None) -> str:
    """The follower's page script (``room_follow.js``) with the tabs' labels and the take-home file's size cap
    (bytes; default ``Limits.max_talk_bytes``) filled in."""
    with open(FOLLOW_JS, encoding="utf-8") as handle:
        source = handle.read()
    body = source[source.index("() => {"):]  # the leading comment lines are for readers of the file
    cap = int(take_home_bytes or get_limits().max_talk_bytes)
    return body.replace("__LABELS__", json.dumps(labels)).replace("__TAKE_HOME_BYTES__", str(cap))


def _text(value) -> str | None:
    """A component value as a share-link string (``None``: nothing to send)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def result_stamp(result) -> str | None:
    """A short fingerprint of a tab's stored result, equal for the same result and new for a new run
    (its type and provenance; the repr's SHA-256 for a result without provenance); ``None`` for no result."""
    if result is None:
        return None
    provenance = getattr(result, "provenance", None)
    if provenance is not None and getattr(provenance, "when", None) is not None:
        return f"{type(result).__name__}:{provenance.when:.6f}"
    return hashlib.sha256(repr(result)[:200_000].encode()).hexdigest()[:16]


def presenter_state(tab: str, pairs, values, results: dict) -> dict:
    """The view a presenter publishes: ``{"tab", "params": {url name: string}, "runs": {tab: stamp}}``."""
    params = {}
    for (name, _), value in zip(pairs, values):
        text = _text(value)
        if text is not None:
            params[name] = text[:share.MAX_URL_PROMPT_CHARS]
    runs = {key: stamp for key, result in results.items() if (stamp := result_stamp(result))}
    return {"tab": str(tab or ""), "params": params, "runs": runs}


def build_panel(ctx, talk_path: str | None = None) -> dict:
    """The presenter's room status, the follower's stage (an empty ``gr.HTML`` that ``room_follow.js`` fills with
    the pushed view, "Explore on my own" and "Rejoin") and the Workshop accordion below them (start a room, its
    code and link, export and load a talk file, the stored view); wired by :func:`wire`.

    ``talk_path``: a talk file to open in stored mode (refused files leave a note saying why and a normal page).
    """
    limits = ctx.limits
    talk, talk_note = None, ""
    if talk_path:
        try:
            talk = read_talk(talk_path, max_bytes=limits.max_talk_bytes)
            talk_note = (f"**Stored mode:** showing {len(talk.scenes)} scene(s) from `{os.path.basename(talk_path)}` "
                         f"(exported {talk.created}). Every figure below is STORED, not measured now.")
        except (ValueError, OSError) as exc:
            talk_note = f"**Talk file not loaded.** {exc}"
    parts: dict = {}
    parts["status"] = gr.Markdown("", elem_id="room-status")  # the presenter's room status
    parts["stage"] = gr.HTML("", elem_id="room-stage", padding=False)  # a follower's stage (room_follow.js)
    parts["figures_json"] = gr.Textbox(visible=False, elem_id="room-figures")
    with gr.Accordion("Workshop: follow the presenter, talk files", open=talk is not None or bool(talk_note),
                      elem_id="workshop-box"):
        _build_accordion(parts, talk, talk_note)
    parts["talk"] = gr.State(talk)
    parts["code_state"] = gr.State("")
    parts["token_state"] = gr.State("")
    parts["publish_timer"] = gr.Timer(PUBLISH_S, active=False)
    return parts


def _build_accordion(parts: dict, talk, talk_note: str) -> None:
    """Room start, code and link; talk file export and load; the stored view."""
    with gr.Row(equal_height=False):
        parts["start"] = gr.Button("Start a room", size="sm", elem_id="room-start", scale=0, min_width=140)
        parts["code"] = gr.Textbox(label="Room code", interactive=False, elem_id="room-code", scale=1, max_lines=1)
        parts["link"] = gr.Textbox(label="Link for the audience", interactive=False, elem_id="room-link", scale=3,
                                   max_lines=1, buttons=["copy"])
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=200):
            parts["export"] = gr.Button("Export talk file", size="sm", elem_id="room-export")
            parts["export_file"] = gr.File(label="Talk file", interactive=False, elem_id="room-export-file",
                                           height=90)
        parts["upload"] = gr.File(label="Load a talk file (.zip exported here)", file_types=[".zip"],
                                  type="binary", elem_id="talk-upload", scale=3, height=90)
    parts["talk_note"] = gr.Markdown(talk_note, elem_id="talk-note")
    with gr.Group(visible=talk is not None, elem_id="stored-view") as parts["stored_box"]:
        parts["stored_pick"] = gr.Dropdown(label="Stored scene", elem_id="stored-scene",
                                           choices=_scene_choices(talk), value=0 if talk else None, type="value")
        parts["stored_badge"] = gr.Markdown(_badge(talk.scenes[0]) if talk else "", elem_id="stored-badge")
        parts["stored_plot"] = gr.Plot(_figure(talk.scenes[0]) if talk else None, elem_id="stored-plot",
                                       label="Stored figure")
    room_notes.build(parts, get_limits().room_note_chars)
    room_quiz.build(parts)


def _scene_choices(talk) -> list:
    return [(f"{i + 1}. {scene.title}", i) for i, scene in enumerate(talk.scenes)] if talk else []


def _badge(scene) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(scene.provenance.when)) if scene.provenance.when else "?"
    return f"**STORED** (measured {when}) · {scene.provenance.source}"


def _figure(scene):
    """The stored figure for ``gr.Plot``: plotly JSON handed to plotly.js as it was exported."""
    from gradio.components.plot import PlotData

    return PlotData(type="plotly", plot=json.dumps(scene.figure))


def _stored_outputs(talk, index):
    if talk is None or not talk.scenes:
        return gr.Group(visible=False), gr.update(choices=[], value=None), "", None
    index = int(index or 0) if str(index or 0).isdigit() else 0
    scene = talk.scenes[min(index, len(talk.scenes) - 1)]
    return gr.Group(visible=True), gr.update(choices=_scene_choices(talk), value=index), _badge(scene), _figure(scene)


def _figures_js(keys: list[str]) -> str:
    """JavaScript for the export click: the second input becomes ``{tab: {"data", "layout"}}`` (JSON) of every
    main figure drawn on this page, typed arrays written as plain lists."""
    return f"""(...args) => {{
  const figures = {{}};
  for (const key of {json.dumps(keys)}) {{
    const el = document.querySelector('#' + key + '-main-plot .js-plotly-plot');
    if (el && Array.isArray(el.data) && el.data.length) figures[key] = {{data: el.data, layout: el.layout || {{}}}};
  }}
  args[1] = JSON.stringify(figures, (k, v) => ArrayBuffer.isView(v) ? Array.from(v) : (k.startsWith('_') ? undefined : v));
  return args;
}}"""


def _lens_json(key: str, result):
    import importlib

    try:
        lens = importlib.import_module(f"explorer.{key}")
        if hasattr(lens, "to_api"):
            return share.to_jsonable(lens.to_api(result))
    except Exception:  # noqa: BLE001 - a tab whose state is not its lens's result: keep the plain JSON
        pass
    return share.to_jsonable(result)


def export_scenes(keys, labels, params: dict, results: list, plots: list) -> list[dict]:
    """Scenes for :func:`explorer.workshop.write_talk`: one per tab with both a result and a drawn main figure
    (``plots``: per tab a plotly ``{"data", "layout"}`` dict, a ``PlotData``, or ``None``).

    ``params`` are the page's share-link parameters; each scene keeps the prompt, model and its own tab's ones.
    """
    from components.scenes import SCENES

    scenes = []
    for key, label, result, plot in zip(keys, labels, results, plots):
        if isinstance(plot, dict) and isinstance(plot.get("data"), list):
            figure = plot  # as drawn in the browser
        else:  # a gr.Plot value (PlotData), plotly JSON text
            text = getattr(plot, "plot", None)
            figure = json.loads(text) if isinstance(text, str) and text else None
        if result is None or not figure or not figure.get("data"):
            continue
        own = {k: v for k, v in params.items() if "." not in k or k.startswith(key + ".")}
        own["tab"] = key
        title = next((s.title for s in SCENES if s.params.get("tab") == key
                      and s.params.get("prompt") == own.get("prompt")), None)
        title = title or f"{label}: {own.get('prompt', '')[:60]}"
        provenance = getattr(result, "provenance", None)
        scenes.append({"title": title, "tab": key, "params": own, "figure": figure,
                       "provenance": provenance.to_api() if hasattr(provenance, "to_api") else {},
                       "result": _lens_json(key, result)})
    return scenes


def wire(demo, ctx, parts: dict, bar: dict, specs) -> None:
    """Connect the panel: presenter publishing (and its push registration), the follower's page script, export,
    load, and the APIs."""
    pairs = ctx.extra["_share_pairs"]
    keys = [spec.key for spec in specs]
    labels = [spec.label for spec in specs]
    result_states = [ctx.extra[k]["result"] for k in keys]
    store, hub = room_store(), push_hub()
    pair_components = [c for _, c in pairs]

    # presenter ---------------------------------------------------------------------------------------------
    @ui_errors
    def start(code, token, request: gr.Request):
        if code:
            try:
                store.close(code, token)
            except ValueError:
                pass
            hub.end(code)
        code, token = store.create()
        hub.retain(store.live_codes())
        quiz_book().retain(store.live_codes())
        hub.present(getattr(request, "session_hash", None), code)  # this page's results are pushed from now on
        return code, token, code, gr.Timer(active=True), _presenter_status(code, 0)

    parts["start"].click(start, [parts["code_state"], parts["token_state"]],
                         [parts["code_state"], parts["token_state"], parts["code"], parts["publish_timer"],
                          parts["status"]], queue=False, api_visibility="private").then(
        None, parts["code"], parts["link"], js=_LINK_JS)

    def publish(code, token, tab, note, *values):
        if not code:
            return gr.skip(), gr.Timer(active=False)
        n = len(pair_components)
        state = presenter_state(tab, pairs, values[:n], dict(zip(keys, values[n:])))
        if note_text := room_notes.note_html(note, ctx.limits.room_note_chars):
            state["note_html"] = note_text
        try:
            view = store.publish(code, token, state)
        except ValueError as exc:  # the room ended (idle) or was replaced
            hub.end(code)
            return f"The room has ended: {exc}", gr.Timer(active=False)
        hub.publish_view(code, view.state)
        return _presenter_status(code, view.followers + hub.followers(code)), gr.skip()

    # published at once on every change of the view, and by the timer as a heartbeat and for new results.
    # The result states are read, not listened to: a .change listener on a gr.State makes gradio deep-hash its
    # value after every event that writes it, and a lens result (a frozen dataclass holding numpy arrays) is not
    # hashable, so every Run of that tab failed in postprocessing.
    changes = [c.change for c in pair_components + [bar["current_tab"], parts["note"]] if hasattr(c, "change")]
    gr.on([parts["publish_timer"].tick] + changes, publish, [parts["code_state"], parts["token_state"],
                                                             bar["current_tab"], parts["note"]]
          + pair_components + result_states,
          [parts["status"], parts["publish_timer"]], queue=False, show_progress="hidden", trigger_mode="always_last",
          api_visibility="private")

    # follower: the page's own script, no Python handler (it follows by push, components/room_routes.py) -----
    demo.load(None, None, None, js=follow_js(dict(zip(keys, labels))))

    # talk files --------------------------------------------------------------------------------------------
    def export(code, figures_json, *values):
        n = len(pair_components)
        params = {name: text for (name, _), value in zip(pairs, values[:n]) if (text := _text(value)) is not None}
        try:
            drawn = json.loads(figures_json or "{}")
        except ValueError:
            drawn = {}
        scenes = export_scenes(keys, labels, params, list(values[n:]), [drawn.get(k) for k in keys])
        folder = tempfile.mkdtemp(prefix="llm-explorer-talk-")
        path = os.path.join(folder, f"llm-explorer-talk{('-' + code) if code else ''}.zip")
        try:
            return write_talk(scenes, path, room=code or "", max_bytes=ctx.limits.max_talk_bytes)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    # the figures travel as drawn on the page (plotly's own data and layout), read in the browser
    parts["export"].click(export, [parts["code_state"], parts["figures_json"]] + pair_components + result_states,
                          parts["export_file"], js=_figures_js(keys), api_visibility="private")

    stored_outputs = [parts["stored_box"], parts["stored_pick"], parts["stored_badge"], parts["stored_plot"]]

    def load_talk(data):
        if not data:
            return [gr.skip()] * 5
        try:
            talk = read_talk(bytes(data), max_bytes=ctx.limits.max_talk_bytes, name="the uploaded file")
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        note = (f"**Stored mode:** {len(talk.scenes)} scene(s) exported {talk.created}. Every figure here is "
                "STORED, read from the file, not measured now.")
        return [talk, note, *_stored_outputs(talk, 0)]

    parts["upload"].upload(load_talk, parts["upload"], [parts["talk"], parts["talk_note"]] + stored_outputs,
                           api_visibility="private")
    parts["stored_pick"].input(lambda talk, index: _stored_outputs(talk, index)[2:],
                               [parts["talk"], parts["stored_pick"]], [parts["stored_badge"], parts["stored_plot"]],
                               api_visibility="private")

    # JSON APIs (scripts, the load bench): unqueued, no model -------------------------------------------------
    def room_start(request: gr.Request) -> dict:
        """Open a room. Returns ``{"code", "token"}``; the token is the only key that can change the room. The
        calling session presents it: results it receives from then on are pushed to the room's followers."""
        code, token = store.create()
        hub.retain(store.live_codes())
        quiz_book().retain(store.live_codes())
        hub.present(getattr(request, "session_hash", None), code)
        return {"code": code, "token": token}

    def room_publish(code: str, token: str, state: dict) -> dict:
        """Publish the presenter's view ``state`` (``{"tab", "params", "runs"}``). Returns ``{"version",
        "followers"}``. Refused (error) with a wrong token or an ended room. A ``note_html`` in ``state`` is
        cleaned (``components.room_push.clean_html``) and capped before it reaches followers' pages."""
        if isinstance(state, dict) and "note_html" in state:
            state = {**state, "note_html": clean_html(str(state["note_html"])[:8 * ctx.limits.room_note_chars])}
        try:
            view = store.publish(code, token, state)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        hub.publish_view(code, view.state)
        return {"version": view.version, "followers": view.followers + hub.followers(code)}

    def room_state(code: str, follower: str = "", request: gr.Request = None) -> dict:
        """A follower's poll: ``{"code", "version", "state", "followers", "published_at" (Unix s)}``; the calling
        session joins the room (it may then send ``/room_guess``)."""
        try:
            view = store.view(code, follower=follower or None)
        except RoomGone as exc:
            raise gr.Error(str(exc)) from None
        quiz_book().join(code, room_quiz.session_member(getattr(request, "session_hash", None)))
        return {"code": view.code, "version": view.version, "state": view.state, "followers": view.followers,
                "published_at": view.published_at}

    for fn in (room_start, room_publish, room_state):
        gr.api(fn, api_name=fn.__name__, queue=False)
    room_quiz.wire(parts)
    room_notes.wire(parts, bar)


def _presenter_status(code: str, followers: int) -> str:
    return (f"Room **{code}** is open: **{followers} following**. Share the link; it ends after "
            f"{room_store().idle_s / 60:.0f} min without this page.")
