"""Push once: the HTTP routes a follower's page uses, mounted on Gradio's own FastAPI app.

:func:`mount` makes ``demo.launch`` add :func:`routes` to the ``app_kwargs`` it hands FastAPI (``routes=``), so
every way the app starts (``make run``, ``python app.py --share``, the Space, the tests' in-process launch)
serves them on the same port, ahead of Gradio's own catch-all routes, with no Gradio event per follower:

- ``GET /room_push/{code}/events?client=ID``: Server-Sent Events. ``retry:`` first (the reconnect delay,
  ``Limits.room_poll_seconds``), then the prepared ``event: version`` message of
  :class:`explorer.workshop.Payload` (``id:`` the version; data ``{"version", "published_at", "result_version",
  "followers", "state"}``) whenever the room has a version newer than the last one this connection sent, which
  on (re)connect is the ``Last-Event-ID`` header (or ``?since=``); ``event: followers`` (the count) after
  ``KEEPALIVE_S`` quiet seconds; ``event: ended`` with the reason when the room ends. 404 for a code that names no live room (the room's usual
  message), 429 over a cap (the cap's message).
- ``GET /room_push/{code}/payload``: the newest payload (:class:`explorer.workshop.Payload`), the stored gzip
  bytes when the client accepts gzip; ``If-None-Match`` with the current ETag answers 304 with no body, so a
  conditional GET costs nothing when nothing changed. 204 before anything is published.
- ``POST /room_push/{code}/guess`` with JSON ``{"question_id", "guess", "client"}``: a follower page's guess
  (``components/room_quiz.py``); the member is the push client id, which joined the room when its push
  connection opened. 200 ``{"accepted", "token", "n_tokens", "message"}``; 400 with the reason (never joined,
  a second guess is 200 with ``accepted: false``, too long, a closed or unknown question); 404 for an ended room.
- ``GET /room_push/assets/plotly``: plotly.js from the plotly package (the version the server's figures are
  written for), gzipped once and cached by the browser for a day.

The paths have no file extension, so Gradio's compression middleware leaves them alone (an event stream must
not be buffered; the payload is compressed once, here).
"""
from __future__ import annotations

import asyncio
import functools
import gzip
import json
import threading

from components.room_quiz import client_member, send_guess
from explorer.workshop import PushRefused, RoomGone, push_hub, quiz_book, room_store

PREFIX = "/room_push"
KEEPALIVE_S = 15.0  # an idle push connection gets a comment this often (proxies close silent connections)
_ASSET: dict = {}
_ASSET_LOCK = threading.Lock()


def _version_header(request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("since") or "0"
    try:
        return max(0, int(str(raw).strip()[:12]))
    except ValueError:
        return 0


def _live(code: str) -> str | None:
    """``None`` when ``code`` names a live room, else the reason (and the hub forgets it)."""
    try:
        room_store().view(code)
    except RoomGone as exc:
        push_hub().end(code)
        return str(exc)
    return None


async def events(request):
    """The push connection (see the module docstring)."""
    from starlette.responses import PlainTextResponse, StreamingResponse

    from explorer.core.config import get_limits

    code = request.path_params["code"]
    gone = _live(code)
    if gone:
        return PlainTextResponse(gone, status_code=404)
    hub = push_hub()
    client = request.query_params.get("client") or ""
    ip = request.client.host if request.client else ""
    try:
        sub = hub.subscribe(code, client, ip)
    except PushRefused as exc:
        return PlainTextResponse(str(exc), status_code=429)
    quiz_book().join(code, client_member(client))  # this page may now guess
    seen = _version_header(request)
    retry_ms = int(get_limits().room_poll_seconds * 1000)

    async def stream():
        try:
            yield f"retry: {retry_ms}\n: following {code}\n\n"
            nonlocal seen
            while True:
                payload = await hub.wait_newer(code, seen, KEEPALIVE_S)
                if payload is None:
                    reason = _live(code)
                    if reason:
                        yield f"event: ended\ndata: {json.dumps({'reason': reason})}\n\n"
                        return
                    yield f"event: followers\ndata: {hub.followers(code)}\n\n"  # also keeps proxies from closing it
                    continue
                seen = payload.version
                yield payload.event  # prepared once per version for every follower
        finally:
            hub.unsubscribe(sub)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def payload(request):
    """The newest payload, gzip once, ETag on the version (see the module docstring)."""
    from starlette.responses import PlainTextResponse, Response

    code = request.path_params["code"]
    gone = _live(code)
    if gone:
        return PlainTextResponse(gone, status_code=404)
    latest = push_hub().latest(code)
    if latest is None:
        return Response(status_code=204)
    headers = {"ETag": latest.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == latest.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(latest.gzip, media_type="application/json", headers={**headers, "Content-Encoding": "gzip"})
    return Response(latest.body, media_type="application/json", headers=headers)


async def guess(request):
    """A follower page's guess (see the module docstring)."""
    from starlette.responses import JSONResponse, PlainTextResponse

    code = request.path_params["code"]
    gone = _live(code)
    if gone:
        return PlainTextResponse(gone, status_code=404)
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object {question_id, guess, client}")
        client = str(body.get("client") or "")
        if push_hub().connected(code, client):  # a page that is following now counts as joined in any case
            quiz_book().join(code, client_member(client))
        out = await asyncio.to_thread(send_guess, code, str(body.get("question_id") or ""),
                                      client_member(client), body.get("guess"))
    except RoomGone as exc:
        return PlainTextResponse(str(exc), status_code=404)
    except ValueError as exc:  # also a body that is not JSON
        return PlainTextResponse(str(exc), status_code=400)
    return JSONResponse(out)


def _plotly_gzip() -> bytes:
    with _ASSET_LOCK:
        if "plotly" not in _ASSET:
            from plotly.offline import get_plotlyjs

            _ASSET["plotly"] = gzip.compress(get_plotlyjs().encode(), 6)
        return _ASSET["plotly"]


async def plotly_asset(request):
    """plotly.js for the follower's page, gzipped once (every browser accepts gzip)."""
    from starlette.responses import Response

    body = await asyncio.to_thread(_plotly_gzip)
    return Response(body, media_type="text/javascript", headers={"Content-Encoding": "gzip",
                                                                 "Cache-Control": "public, max-age=86400"})


def routes() -> list:
    """The push routes as Starlette routes (for FastAPI's ``routes=``)."""
    from starlette.routing import Route

    return [Route(f"{PREFIX}/assets/plotly", plotly_asset, methods=["GET"]),
            Route(PREFIX + "/{code}/events", events, methods=["GET"]),
            Route(PREFIX + "/{code}/payload", payload, methods=["GET"]),
            Route(PREFIX + "/{code}/guess", guess, methods=["POST"])]


def mount(demo) -> None:
    """Make every ``demo.launch(...)`` serve :func:`routes` on Gradio's FastAPI app (through ``app_kwargs``;
    routes already passed by the caller are kept). Idempotent."""
    if getattr(demo.launch, "_llmx_push", False):
        return
    launch = demo.launch

    @functools.wraps(launch)
    def launch_with_push(*args, app_kwargs=None, **kwargs):
        app_kwargs = dict(app_kwargs or {})
        app_kwargs["routes"] = list(app_kwargs.get("routes") or []) + routes()
        return launch(*args, app_kwargs=app_kwargs, **kwargs)

    launch_with_push._llmx_push = True
    demo.launch = launch_with_push
