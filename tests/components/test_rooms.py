"""Rooms: codes, the presenter-only write, follower counts, idle expiry; the panel's state and export helpers;
the room APIs through gradio_client (unqueued, no model)."""
import re

import pytest

from explorer.workshop import RoomGone, RoomStore, read_talk, write_talk
from explorer.workshop.rooms import ALPHABET, CODE_LENGTH


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_codes_are_unique_and_from_the_alphabet():
    store = RoomStore(max_rooms=500)
    codes = {store.create()[0] for _ in range(300)}
    assert len(codes) == 300
    assert all(re.fullmatch(f"[{ALPHABET}]{{{CODE_LENGTH}}}", c) for c in codes)
    with pytest.raises(ValueError, match="500 rooms are open"):
        for _ in range(201):
            store.create()


def test_only_the_presenter_token_writes_and_followers_are_counted():
    clock = Clock()
    store = RoomStore(idle_s=60, follower_ttl_s=5, clock=clock)
    code, token = store.create()
    state = {"tab": "attention", "params": {"prompt": "hi"}, "runs": {}}
    assert store.publish(code, token, state).version == 1
    assert store.publish(code, token, dict(state)).version == 1  # same view: no new version
    with pytest.raises(ValueError, match="token: only the presenter"):
        store.publish(code, "x" + token[1:], {"tab": "tokens"})
    with pytest.raises(ValueError, match="token: only the presenter"):
        store.publish(code, "", {"tab": "tokens"})
    view = store.view(code.upper(), follower="a")
    assert (view.version, view.state, view.followers) == (1, state, 1)
    view.state["tab"] = "changed by a follower"  # a follower's copy cannot reach the room
    assert store.view(code, follower="b").state["tab"] == "attention"
    assert store.view(code).followers == 2
    clock.now += 6  # followers not seen for longer than the ttl no longer count
    store.view(code, follower="b")
    assert store.view(code).followers == 1
    store.leave(code, "b")
    assert store.view(code).followers == 0


def test_idle_rooms_end_and_unknown_codes_say_so():
    clock = Clock()
    store = RoomStore(idle_s=60, clock=clock)
    code, token = store.create()
    clock.now += 50
    store.publish(code, token, {"tab": "tokens"})  # the presenter keeps it alive
    clock.now += 50
    store.view(code, follower="f")  # followers alone do not
    clock.now += 11
    with pytest.raises(RoomGone, match="does not exist or has ended"):
        store.view(code)
    with pytest.raises(RoomGone, match="'nosuchroom' does not exist"):
        store.view("nosuchroom")
    assert len(store) == 0 and store.live_codes() == []


def test_presenter_state_and_stamps():
    import gradio as gr

    from components.rooms import presenter_state, result_stamp
    from explorer.core.provenance import measured

    class Result:
        def __init__(self):
            self.provenance = measured("x")

    pairs = [("prompt", gr.Textbox()), ("model", gr.Dropdown()), ("attention.methods", gr.CheckboxGroup()),
             ("lora.qlora", gr.Checkbox())]
    first, second = Result(), Result()
    second.provenance = measured("x")
    object.__setattr__(second.provenance, "when", first.provenance.when + 1)
    state = presenter_state("attention", pairs, ["p", None, ["a", "b"], False], {"attention": first, "kv": None})
    assert state == {"tab": "attention", "params": {"prompt": "p", "attention.methods": "a,b", "lora.qlora": "false"},
                     "runs": {"attention": result_stamp(first)}}
    assert result_stamp(first) == result_stamp(first) != result_stamp(second)


def test_export_scenes_from_a_real_tokens_result(tmp_path):
    import json

    from gradio.components.plot import PlotData

    from components.rooms import export_scenes
    from components.tabs.tokens.tab import render_tokens
    from explorer import tokens

    text = "Hello room 🍓"
    result, _, figure = render_tokens(text, ["smollm2-135m-instruct"], None, False, False,
                                      "smollm2-135m-instruct", 100)[:3]
    plot = PlotData(type="plotly", plot=figure.to_json())  # what gr.Plot hands a handler as input
    scenes = export_scenes(["tokens", "attention"], ["Tokens", "Attention"],
                           {"prompt": text, "model": "m", "attention.layer": "3", "tokens.show_ids": "true"},
                           [result, None], [plot, None])
    assert [s["tab"] for s in scenes] == ["tokens"]  # a tab without a result is not exported
    assert scenes[0]["params"] == {"prompt": text, "model": "m", "tokens.show_ids": "true", "tab": "tokens"}
    stored = read_talk(write_talk(scenes, str(tmp_path / "t.zip"))).scenes[0]
    fresh = tokens.to_api(tokens.run(text, ["smollm2-135m-instruct"]))  # the lens's own API, computed again
    assert stored.result.pop("provenance")["kind"] == fresh.pop("provenance")["kind"] == "measured"
    assert stored.result == json.loads(json.dumps(fresh))
    assert stored.figure == json.loads(figure.to_json())
    assert stored.provenance.kind == "stored" and stored.measured["kind"] == result.provenance.kind


def test_room_apis_through_the_client(client):
    from gradio_client.exceptions import AppError

    room = client.predict(api_name="/room_start")
    state = {"tab": "kv_cache", "params": {"prompt": "Room test"}, "runs": {}}
    assert client.predict(room["code"], room["token"], state, api_name="/room_publish")["version"] == 1
    seen = client.predict(room["code"], "follower-1", api_name="/room_state")
    assert (seen["state"], seen["followers"], seen["version"]) == (state, 1, 1)
    with pytest.raises(AppError, match="only the presenter"):
        client.predict(room["code"], "wrong", {"tab": "tokens"}, api_name="/room_publish")
    with pytest.raises(AppError, match="does not exist or has ended"):
        client.predict("zzzzzzzzzz", "", api_name="/room_state")


def test_stored_mode_at_start_draws_the_file_and_refuses_a_damaged_one(tmp_path):
    """``app.py --talk FILE``: the panel opens with the file's first figure and a STORED badge; a file whose
    checksum fails opens the normal page with the reason."""
    import json
    import types
    import zipfile

    import gradio as gr

    from components.rooms import build_panel
    from explorer.core.config import get_limits

    figure = {"data": [{"type": "bar", "x": ["a", "b"], "y": [3, 4]}], "layout": {}}
    path = write_talk([{"title": "Bars", "tab": "tokens", "figure": figure,
                        "provenance": {"kind": "measured", "source": "s", "when": 1.7e9, "model": "m"}}],
                      str(tmp_path / "talk.zip"))
    ctx = types.SimpleNamespace(limits=get_limits())
    with gr.Blocks():
        parts = build_panel(ctx, path)
    assert json.loads(parts["stored_plot"].value["plot"])["data"] == figure["data"]
    assert parts["stored_badge"].value.startswith("**STORED**") and "talk.zip" in parts["stored_badge"].value
    assert parts["stored_box"].visible and "Stored mode" in parts["talk_note"].value

    damaged = str(tmp_path / "damaged.zip")
    with zipfile.ZipFile(path) as a, zipfile.ZipFile(damaged, "w") as b:
        for name in a.namelist():
            b.writestr(name, a.read(name).replace(b"[3,", b"[5,") if name.startswith("scenes/") else a.read(name))
    with gr.Blocks():
        parts = build_panel(ctx, damaged)
    assert "checksum mismatch" in parts["talk_note"].value and not parts["stored_box"].visible


def test_no_change_listener_on_a_gr_state():
    """A ``.change`` listener on a ``gr.State`` makes gradio deep-hash the state's value after every event that
    writes it; a lens result (a frozen dataclass holding numpy arrays) is not hashable, so the tab's Run failed in
    postprocessing ("unhashable type: 'numpy.ndarray'") once the room's publisher listened to the result states."""
    import app

    demo = app.build_demo()
    listened = sorted({type(demo.blocks[bid]).__name__ + f"#{bid}" for fn in demo.fns.values()
                       for bid, event in fn.targets
                       if event == "change" and bid in demo.blocks and getattr(demo.blocks[bid], "stateful", False)})
    assert listened == []
