"""Serving a room, wired once for every tab: result cache and coalescing, request counts, per-session limits.

:func:`wire_serving` walks the built page's event handlers (as ``components/gpu.py`` does for ZeroGPU) and
wraps, for each tab, the handlers its ``TabSpec.cached`` names (deterministic: same inputs, same result) with
the result cache of :mod:`explorer.serving.cache`, and every public JSON API and cached handler with request
counting (``/serving_stats``) and the per-session limit on requests in flight. A tab opts in by naming its
handlers (``api_name`` or function name); nothing else in the tab changes.

A result served from the cache (or shared with an identical request in flight) carries provenance kind
``cached`` and the page says "cached, computed N s ago"; **Recompute** (beside the model picker) makes this
session's next request compute afresh and replace the stored result.
"""
from __future__ import annotations

import functools
import inspect
import threading
import time
import weakref

import gradio as gr

from explorer.core.config import get_limits
from explorer.core import turns
from explorer.serving import stats
from explorer.serving.cache import code_version, make_key, mark_served, result_cache

UNCOUNTED = {"serving_stats"}  # polling the numbers is not a request to count
_REFRESH: set[str] = set()  # sessions whose next cached request recomputes
_NOTICED: dict[str, float] = {}  # event id -> when the wait notice was shown
_GUARD = threading.Lock()
_EVENTS: "weakref.WeakValueDictionary[str, object]" = weakref.WeakValueDictionary()  # event id -> queue Event


def _request():
    from gradio.context import LocalContext

    return LocalContext.request.get(None)


def _session() -> str | None:
    request = _request()
    return getattr(request, "session_hash", None) if request is not None else None


def _plain_args(args: tuple) -> tuple:
    """Handler arguments without gradio's injected objects (progress, request, event data)."""
    skip = (gr.Progress, gr.Request, gr.EventData)
    return tuple(a for a in args if not isinstance(a, skip))


def _model_of(args: tuple) -> str:
    """The model a request runs on: the first argument naming an embedded model or a Hub id, else ``""``."""
    import re

    from models.registry import embedded_names

    names = set(embedded_names())
    for a in args:
        if isinstance(a, str) and (a in names or re.fullmatch(r"[\w.-]{1,96}/[\w.-]{1,96}", a)):
            return a
    return ""


def deterministic(args: tuple) -> bool:
    """False when the arguments ask for sampling without a seed (a fresh random seed each time): such a
    request is never cached. Looks at strategy dicts (``{"name": "sampling", "seed": ...}``) and at table rows
    whose first cell is ``sampling`` and last cell (the seed column) is blank."""
    def walk(value) -> bool:
        if isinstance(value, dict):
            if str(value.get("name", "")).lower() == "sampling" and value.get("seed") in (None, ""):
                return False
            return all(walk(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            if value and isinstance(value[0], str) and value[0].strip().lower() == "sampling":
                return str(value[-1]).strip() not in ("", "None")
            return all(walk(v) for v in value)
        if hasattr(value, "values") and hasattr(value, "columns"):  # DataFrame rows
            return walk(value.values.tolist())
        return True

    return walk(list(args))


def _notice(served, model: str) -> None:
    if served.how == "computed":
        return
    age = served.age_s
    when = f"{age:.0f} s ago" if age < 120 else f"{age / 60:.0f} min ago"
    what = "cached, computed " + when if served.how == "cached" else "shared with an identical request just computed"
    gr.Info(f"Result {what} for identical inputs{' on ' + model if model else ''}. Press Recompute (top of the page) "
            "to run it again.")


def client_gone() -> bool:
    """True when the Gradio event this thread serves lost its client: the browser tab closed or the connection
    dropped (Gradio marks the running job not ``alive``) or the user cancelled (``/cancel`` removes the event
    from the queue's table). Registered in :data:`explorer.core.turns.CANCEL_CHECKS`, so a waiting request
    frees its place in the line, its share of a batch and its wait on an identical request.
    False outside a Gradio event (direct calls, tests, the batching and training threads)."""
    from gradio.context import LocalContext

    event_id = LocalContext.event_id.get(None)
    queue = getattr(LocalContext.blocks.get(None), "_queue", None)
    if event_id is None or queue is None:
        return False
    live = queue.event_ids_to_events.get(event_id)
    seen = _EVENTS.get(event_id)
    if seen is None:
        if live is None:
            return False  # never seen in the queue's table: not ours to judge
        _EVENTS[event_id] = seen = live  # remembered, so that its later removal reads as a cancel
    return live is not seen or not getattr(seen, "alive", True)


def _wait_notice(model: str, ahead: int, estimate_s: float) -> None:
    """Tell a user waiting for a turn on the model their place, once per request."""
    from gradio.context import LocalContext

    event = LocalContext.event_id.get(None)
    if event is None:
        return
    with _GUARD:
        if event in _NOTICED:
            return
        _NOTICED[event] = time.time()
        if len(_NOTICED) > 5000:
            for key in sorted(_NOTICED, key=_NOTICED.get)[:2500]:
                _NOTICED.pop(key, None)
    try:
        gr.Info(f"Waiting for the model: {ahead} ahead, about {max(1, round(estimate_s))} s.")
    except Exception:  # noqa: BLE001 - outside a request context there is nobody to tell
        pass


def _served(value, served):
    """``value`` marked as served (``mark_served``); a cached answer's figures and table badges turn CACHED too."""
    from components.badge import mark_cached

    return value if served.how == "computed" else mark_cached(mark_served(value, served))


def serve(fn, lens: str, endpoint: str, cache: bool):
    """Wrap a handler: count it, apply the per-session limit, and (``cache``) answer identical requests once.

    The wrapper keeps ``fn``'s signature (gradio reads it for ``gr.Progress`` / ``gr.Request`` parameters) and
    its kind (plain function or generator).
    """
    version = code_version(lens) if cache else ""
    limit = get_limits().max_requests_per_session

    def begin(args):
        client_gone()  # remembers this event, so that its removal later reads as a cancel
        plain = _plain_args(args)
        model, session = _model_of(plain), _session()
        try:
            stats.request_started(model, session, limit)
        except stats.TooManyRequests as exc:
            raise gr.Error(str(exc)) from None
        use_cache = cache and get_limits().result_cache_bytes > 0 and deterministic(plain)
        key = make_key(lens, endpoint, plain) if use_cache else None
        refresh = False
        if use_cache and session is not None:
            with _GUARD:
                refresh = session in _REFRESH
                _REFRESH.discard(session)
        return model, session, key, refresh

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapped_gen(*args, **kwargs):
            model, session, key, refresh = begin(args)
            try:
                if key is None:
                    yield from fn(*args, **kwargs)
                    return
                for item, served in result_cache().stream(key, lambda: fn(*args, **kwargs), version, refresh):
                    _notice(served, model)
                    yield _served(item, served)
            except (turns.ModelBusy, stats.TooManyRequests) as exc:
                raise gr.Error(str(exc)) from None
            finally:
                stats.request_finished(model, session)

        wrapped_gen.serving_cached = cache
        return wrapped_gen

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        model, session, key, refresh = begin(args)
        try:
            if key is None:
                return fn(*args, **kwargs)
            value, served = result_cache().call(key, lambda: fn(*args, **kwargs), version, refresh)
            _notice(served, model)
            return _served(value, served)
        except (turns.ModelBusy, stats.TooManyRequests) as exc:
            raise gr.Error(str(exc)) from None
        finally:
            stats.request_finished(model, session)

    wrapped.serving_cached = cache
    return wrapped


def handler_id(fn) -> str:
    """``module.qualname`` of the handler: the endpoint part of its cache key. One function wired to several
    events (a Run button, a prompt change, the page load) gets gradio api names ``f``, ``f_1`` ... but computes
    the same thing, so its identical requests share one entry whichever event sent them."""
    inner = inspect.unwrap(fn)
    return f"{getattr(inner, '__module__', '')}.{getattr(inner, '__qualname__', getattr(inner, '__name__', ''))}"


def _tab_key(fn) -> str | None:
    module = getattr(inspect.unwrap(fn), "__module__", "") or ""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["components", "tabs"] else None


def wire_serving(demo, specs) -> int:
    """Wrap ``demo``'s handlers as the module docstring says; returns how many were wrapped.

    Args:
        specs: the tabs' :class:`components.registry.TabSpec` (``cached`` and ``api_names`` are read).
    """
    by_key = {spec.key: spec for spec in specs}
    wrapped = 0
    for block_fn in demo.fns.values():
        fn = block_fn.fn
        if fn is None or inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            continue
        key = _tab_key(fn)
        spec = by_key.get(key)
        if spec is None:
            continue
        names = {block_fn.api_name, getattr(inspect.unwrap(fn), "__name__", None)}
        cached = bool(names & set(getattr(spec, "cached", ())))
        public = block_fn.api_name in spec.api_names and block_fn.api_name not in UNCOUNTED
        if cached or public:
            block_fn.fn = serve(fn, key, handler_id(fn), cached)
            wrapped += 1
    if _wait_notice not in turns.WAIT_LISTENERS:
        turns.WAIT_LISTENERS.append(_wait_notice)
    if client_gone not in turns.CANCEL_CHECKS:
        turns.CANCEL_CHECKS.append(client_gone)
    return wrapped


def build_recompute() -> gr.Button:
    """The **Recompute** button: this session's next cached request computes afresh (and replaces the stored
    result)."""
    button = gr.Button("Recompute", size="sm", elem_id="serving-recompute", scale=0, min_width=110)

    def arm(request: gr.Request):
        session = getattr(request, "session_hash", None)
        if session:
            with _GUARD:
                _REFRESH.add(session)
        gr.Info("Your next run computes afresh instead of using a cached result.")

    button.click(arm, None, None, api_visibility="private")
    return button


# -- presenter scenes computed at start-up ----------------------------------------------------------------------
_CONTEXTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # demo -> its AppContext (for the scenes)
WARM_ENV = "LLM_EXPLORER_WARM_SCENES"


def remember_context(demo, ctx) -> None:
    """Keep ``demo``'s :class:`components.context.AppContext` for :func:`warm_scenes` (called by ``app.py``)."""
    _CONTEXTS[demo] = ctx


def _frontend_value(component, value=None, given: bool = False):
    """What the page sends for ``component``: its postprocessed value (the initial one unless ``given``)."""
    if not given:
        value = component.value
    else:
        value = component.postprocess(value)
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else value


def scene_requests(demo, tabs: set[str] | None = None) -> list[tuple[str, object, list]]:
    """``(scene title, block function, page payloads)`` for every cached page handler of each presenter scene's
    tab, with the inputs the page holds right after the scene is clicked (its settings applied to the opening
    values; ``components/scenes.py``). Identical handler + inputs pairs are listed once. ``tabs``: only scenes
    of these tab keys (default: all).

    Raises:
        ValueError: ``demo`` was not built by ``app.build_demo`` (no remembered context).
    """
    from components import scenes, share
    from components.registry import public_api_names

    public = public_api_names()
    ctx = _CONTEXTS.get(demo)
    if ctx is None:
        raise ValueError("demo has no remembered AppContext; build it with app.build_demo.")
    pairs = dict(ctx.extra.get("_share_pairs") or share.collect(ctx))
    out, seen = [], set()
    for scene in scenes.SCENES:
        params = dict(scene.params)
        params.setdefault("model", ctx.model.value)
        tab = params.pop("tab", None)
        if tabs is not None and tab not in tabs:
            continue
        given = {}
        for name, raw in params.items():
            component = pairs.get(name)
            value = None if component is None else share._convert(component, str(raw))
            if value is not None:
                given[component._id] = value
        for block_fn in demo.fns.values():
            fn = block_fn.fn
            if (fn is None or not getattr(fn, "serving_cached", False) or _tab_key(fn) != tab
                    or block_fn.api_name in public):
                continue  # the JSON APIs take their arguments from the caller, not from the page
            if any(getattr(c, "stateful", False) for c in block_fn.inputs):
                continue  # reads a previous result: not a first click
            payloads = [_frontend_value(c, given.get(c._id), c._id in given) for c in block_fn.inputs]
            ident = (handler_id(fn), repr(payloads))
            if ident not in seen:
                seen.add(ident)
                out.append((scene.title, block_fn, payloads))
    return out


def warm_scenes(demo, log=print, tabs: set[str] | None = None) -> dict:
    """Compute every :func:`scene_requests` entry once, through the same preprocessing and cached handler as a
    click, so a room's first click on a scene's Run is a cache hit. Failures are logged and skipped.

    Returns:
        ``{"warmed": handler calls computed or already cached, "failed": ["scene: error", ...], "seconds": s}``.
    """
    import asyncio

    from gradio.helpers import special_args
    from gradio.state_holder import SessionState

    start, warmed, failed = time.perf_counter(), 0, []
    for title, block_fn, payloads in scene_requests(demo, tabs):
        try:
            args = asyncio.run(demo.preprocess_data(block_fn, payloads, SessionState(demo)))
            args = special_args(block_fn.fn, list(args), None, None)[0]
            result = block_fn.fn(*args)
            if inspect.isgenerator(result):
                for _ in result:
                    pass
            warmed += 1
        except Exception as exc:  # noqa: BLE001 - a scene that cannot be computed now is computed on its first click
            failed.append(f"{title}: {type(exc).__name__}: {exc}"[:300])
    seconds = time.perf_counter() - start
    log(f"Presenter scenes warmed: {warmed} handler calls in {seconds:.0f} s" +
        (f"; {len(failed)} failed ({failed[0]})" if failed else ""))
    return {"warmed": warmed, "failed": failed, "seconds": seconds}


def start_scene_warm_up(demo, default: bool = True) -> threading.Thread | None:
    """Run :func:`warm_scenes` in a background thread unless ``LLM_EXPLORER_WARM_SCENES=0`` (``default`` when the
    variable is unset: ``python app.py`` passes True; tests never call this)."""
    import os

    raw = os.environ.get(WARM_ENV)
    if not (default if raw is None else raw.strip().lower() not in ("0", "false", "no", "off", "")):
        return None
    thread = threading.Thread(target=warm_scenes, args=(demo,), name="warm-scenes", daemon=True)
    thread.start()
    return thread
