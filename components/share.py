"""Shareable views: the prompt, model, tab and the tab's main settings live in the page URL.

``?prompt=...&model=...&tab=attention&attention.layer=3&attention.head=5`` opens that view.
The "Share link" button writes the current view into the address bar (and the clipboard); opening
the link restores it on page load. Presenter scenes (``components.scenes``) use the same restore
path. Also here: "Download result (JSON)" for every tab, presentation mode and the theme switch.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile

import gradio as gr
import numpy as np

MAX_URL_PROMPT_CHARS = 4000

_PRESENT_JS = """(on) => { document.body.classList.toggle('llmx-present', on); return on; }"""
_THEME_JS = """() => { document.body.classList.toggle('dark'); }"""
CSS = """
body.llmx-present { --text-xxs: 13px; --text-xs: 15px; --text-sm: 18px; --text-md: 21px; --text-lg: 25px;
  --text-xl: 30px; --text-xxl: 38px; --block-label-text-size: 17px; --block-info-text-size: 16px;
  --section-header-text-size: 20px; --input-text-size: 21px; --button-large-text-size: 22px;
  --button-small-text-size: 18px; --prose-text-size: 21px; }
body.llmx-present .gradio-container { font-size: 135% !important; max-width: 100% !important; }
body.llmx-present .js-plotly-plot .main-svg text { font-size: 115% !important; }
body.llmx-present .gradio-container h1 { font-size: 2.6em !important; }
body.llmx-present .tok-chip { font-size: 1.35em; }
body.llmx-present textarea, body.llmx-present input { font-size: 1.2em !important; }
"""


def collect(ctx) -> list[tuple[str, object]]:
    """``(url_name, component)`` for every shareable setting that exists, prompt and model first."""
    pairs: list[tuple[str, object]] = [("prompt", ctx.prompt), ("model", ctx.model)]
    from components.registry import share_params

    for key, names in share_params().items():
        parts = ctx.extra.get(key) or {}
        for name in names:
            component = parts.get(name)
            if component is not None and hasattr(component, "value"):
                pairs.append((f"{key}.{name}", component))
    return pairs


def _convert(component, raw: str):
    """A URL string to the value type of ``component``; ``None`` when it does not fit."""
    if isinstance(component, gr.CheckboxGroup):
        values = [v for v in raw.split(",") if v]
        choices = [c[1] if isinstance(c, (list, tuple)) else c for c in (component.choices or [])]
        return [v for v in values if not choices or v in choices]
    if isinstance(component, gr.Checkbox):
        return raw.lower() in ("1", "true", "yes", "on")
    if isinstance(component, (gr.Slider, gr.Number)):
        try:
            number = float(raw)
        except ValueError:
            return None
        if not np.isfinite(number):
            return None
        minimum, maximum = getattr(component, "minimum", None), getattr(component, "maximum", None)
        if minimum is not None:
            number = max(number, minimum)
        if maximum is not None:
            number = min(number, maximum)
        step = getattr(component, "step", None)
        return int(number) if (step is not None and float(step).is_integer()) or getattr(component, "precision", None) == 0 else number
    if isinstance(component, (gr.Dropdown, gr.Radio)):
        choices = [c[1] if isinstance(c, (list, tuple)) else c for c in (component.choices or [])]
        if choices and raw not in choices and not getattr(component, "allow_custom_value", False):
            return None
        if getattr(component, "multiselect", False):
            return [v for v in raw.split(",") if v]
        return raw
    return raw


def apply_params(pairs, params: dict[str, str], tab_keys: list[str]) -> list:
    """Updates for ``[tabs, *components]`` from string ``params`` (a URL query or a scene).

    Unknown names are ignored; values that do not fit a component leave it unchanged.
    """
    updates = []
    tab = params.get("tab")
    updates.append(gr.Tabs(selected=tab) if tab in tab_keys else gr.update())
    for name, component in pairs:
        if name not in params:
            updates.append(gr.update())
            continue
        raw = str(params[name])
        if name == "prompt":
            raw = raw[:MAX_URL_PROMPT_CHARS]
        value = _convert(component, raw)
        updates.append(gr.update() if value is None else gr.update(value=value))
    return updates


def share_js(names: list[str]) -> str:
    """JavaScript that writes the current view into the URL and the clipboard, and returns the link."""
    return f"""(...values) => {{
  const names = {json.dumps(["tab"] + names)};
  const url = new URL(window.location.href);
  url.search = '';
  names.forEach((name, i) => {{
    let v = values[i];
    if (v === null || v === undefined) return;
    if (name.includes('.') && !name.startsWith(values[0] + '.')) return;  // only the open tab's settings
    if (Array.isArray(v)) v = v.join(',');
    v = String(v);
    if (name === 'prompt') v = v.slice(0, {MAX_URL_PROMPT_CHARS});
    url.searchParams.set(name, v);
  }});
  window.history.replaceState(null, '', url.toString());
  try {{ navigator.clipboard.writeText(url.toString()); }} catch (e) {{}}
  return url.toString();
}}"""


def to_jsonable(obj):
    """Dataclasses, numpy arrays and scalars, tuples, dicts -> plain JSON types (NaN/inf -> null)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if np.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    return repr(obj)


def result_file(result, key: str) -> str:
    """Write a tab's stored result to a JSON file and return its path.

    Raises:
        ValueError: nothing has been computed yet in this tab.
    """
    if result is None:
        raise ValueError("Nothing to download yet: run this tab first.")
    folder = tempfile.mkdtemp(prefix="llm-explorer-")
    path = os.path.join(folder, f"llm-explorer-{key}.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(to_jsonable(result), handle, ensure_ascii=False)
    return path


def add_download(key: str, parts: dict) -> None:
    """Under a tab: a button that downloads its stored result (``parts["result"]``, a ``gr.State``) as JSON.

    Raises:
        TypeError: the tab exposes no ``gr.State`` holding its result, so it would have no download.
    """
    state = parts.get("result")
    if not isinstance(state, gr.State):
        raise TypeError(f"Tab {key!r} must return its last result as a gr.State under \"result\" in its build "
                        "dict, for 'Download result (JSON)'.")
    button = gr.DownloadButton("Download result (JSON)", size="sm", elem_id=f"{key}-download")

    def download(result):
        try:
            return result_file(result, key)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    button.click(download, state, button, api_visibility="private")
    parts["download"] = button


def build_share_bar(ctx, tab_keys: list[str]):
    """The bar under the prompt: share link, presentation mode, theme. Wires URL restore on load."""
    current_tab = gr.Textbox(value=tab_keys[0] if tab_keys else "", visible=False, elem_id="current-tab")
    with gr.Row(equal_height=False):
        share = gr.Button("🔗 Share link to this view", size="sm", elem_id="share-link", scale=0, min_width=180)
        link = gr.Textbox(label="Link (also copied)", show_label=False, interactive=False, scale=3, lines=1, max_lines=1,
                          elem_id="share-url", placeholder="Press 'Share link' to put this view in the address bar")
        present = gr.Checkbox(False, label="Presentation mode (larger type)", elem_id="present-mode", scale=1)
        theme = gr.Button("🌓 Light / dark", size="sm", elem_id="theme-toggle", scale=0, min_width=140)
    present.change(None, present, None, js=_PRESENT_JS)
    theme.click(None, None, None, js=_THEME_JS)
    return {"current_tab": current_tab, "share": share, "link": link, "present": present, "theme": theme}


def wire(demo, ctx, bar: dict, tab_items: list[tuple[str, object]]) -> None:
    """Connect tab selection, the share button and restore-on-load once every tab is built."""
    pairs = collect(ctx)
    tab_keys = [key for key, _ in tab_items]
    for key, tab in tab_items:
        # bookkeeping, unqueued: never waits behind model work (a room publishes the tab at once)
        tab.select(lambda k=key: k, None, bar["current_tab"], queue=False, api_visibility="private")
    bar["share"].click(None, [bar["current_tab"]] + [c for _, c in pairs], bar["link"],
                       js=share_js([n for n, _ in pairs]))

    def restore(request: gr.Request):
        params = dict(request.query_params) if request is not None else {}
        updates = apply_params(pairs, params, tab_keys)
        tab = params.get("tab")
        return updates + [tab if tab in tab_keys else gr.update()]

    demo.load(restore, None, [ctx.tabs] + [c for _, c in pairs] + [bar["current_tab"]], api_visibility="private")
    ctx.extra["_share_pairs"] = pairs
