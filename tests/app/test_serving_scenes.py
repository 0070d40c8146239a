"""Presenter scenes computed at start-up: a room's first click after opening a scene is a cache hit.

The page is replayed at the protocol level, independently of how the warm-up builds its requests: the opening
values come from the config the browser receives, the scene click runs the gallery's own event, and the Run
click sends the resulting values through Gradio's queue, as the browser does.
"""
import json
import uuid

import pytest


def _event(http, fn_index: int, data: list) -> tuple[list, list[str]]:
    """Send one event through the queue as the page does; return (output data, log messages shown)."""
    session = uuid.uuid4().hex[:11]
    http.post("gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                              "trigger_id": None}).raise_for_status()
    logs = []
    with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("msg") == "log":
                logs.append(msg.get("log", ""))
            if msg.get("msg") == "process_completed":
                assert msg.get("success"), msg
                return msg["output"]["data"], logs
    raise AssertionError("no answer")


@pytest.fixture(scope="module")
def warmed_app():
    from app import CSS, build_demo
    from components import serving
    from tests.conftest import _free_port

    demo = build_demo()
    report = serving.warm_scenes(demo, log=lambda _: None, tabs={"tokens"})
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=CSS)
    try:
        yield f"http://127.0.0.1:{port}/", report
    finally:
        demo.close()


def test_first_click_on_a_warmed_scene_is_served_from_cache(warmed_app):
    import httpx

    from components import scenes
    from explorer.serving.cache import result_cache

    url, report = warmed_app
    assert report["warmed"] >= 2 and not report["failed"]  # both token scenes
    with httpx.Client(base_url=url, timeout=120) as http:
        config = http.get("config").json()
        values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
        deps = config["dependencies"]
        gallery = next(d for d in deps if d.get("api_name") == "open_scene")
        scene = next(i for i, s in enumerate(scenes.SCENES) if s.params.get("tab") == "tokens")
        updates, _ = _event(http, gallery["id"], [scene])
        for target, update in zip(gallery["outputs"], updates):  # what the page holds after the scene click
            if isinstance(update, dict) and "value" in update:
                values[target] = update["value"]
        run = next(d for d in deps if str(d.get("api_name", "")).startswith("show_tokens")
                   and any(t[1] == "click" for t in d["targets"]))
        hits = result_cache().hits
        _, logs = _event(http, run["id"], [values[i] for i in run["inputs"]])
    assert result_cache().hits == hits + 1
    assert any("cached, computed" in log for log in logs), logs
