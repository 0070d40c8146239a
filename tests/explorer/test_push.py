"""The push hub: one serialised payload per change, versions, catch-up and back-pressure, caps (issue 30)."""
import asyncio
import gzip
import json
import threading

import pytest

from explorer.workshop import PushHub, PushRefused

VIEW = {"tab": "tokens", "params": {"prompt": "Hi"}, "runs": {}}
FIGURE = {"type": "plotly", "plot": json.dumps({"data": [{"type": "bar", "x": ["a"], "y": [1]}], "layout": {}})}


def test_a_change_is_serialised_once_and_an_unchanged_view_is_no_version():
    hub = PushHub(inline_bytes=0)  # every result announced only (fetched by the follower)
    first = hub.publish_view("ROOM1", VIEW)
    assert first.version == 1 and hub.publish_view("room1", dict(VIEW)) is None  # codes are case-insensitive
    second = hub.publish_result("room1", "tokens", [{"id": "tokens-main-plot", "kind": "plot", "label": None,
                                                     "value": FIGURE}])
    assert second.version == 2 and hub.latest("room1") is second
    doc = json.loads(second.body)
    assert gzip.decompress(second.gzip) == second.body and second.etag == '"v2"'
    assert doc["version"] == 2 and doc["room"] == "room1" and doc["state"] == VIEW
    assert doc["result"]["tab"] == "tokens" and doc["result"]["outputs"][0]["value"] == FIGURE
    # the announcement is prepared once and carries the view; only a result moves result_version
    head, data = second.event.decode().split("data: ")
    assert head == "id: 2\nevent: version\n" and data.endswith("\n\n") and "\n" not in data[:-2]
    assert json.loads(data) == {"version": 2, "published_at": second.published_at, "result_version": 1,
                                "followers": 0, "state": VIEW}
    assert (first.result_version, second.result_version) == (0, 1)
    # another tab's view shows that tab's result when it has one, else the newest result (marked with its tab)
    hub.publish_result("room1", "attention", [{"id": "a", "kind": "json", "label": None, "value": {"x": 1}}])
    shown = json.loads(hub.publish_view("room1", {**VIEW, "tab": "kv_cache"}).body)["result"]
    assert shown["tab"] == "attention"
    back = hub.publish_view("room1", VIEW)
    assert back.result_version == 2  # a view change keeps the result version
    assert json.loads(back.body)["result"]["tab"] == "tokens"
    assert json.loads(back.body)["result"]["outputs"][0]["id"] == "tokens-main-plot"
    with pytest.raises(ValueError, match="outputs must be a list"):
        hub.publish_result("room1", "tokens", "not a list")


def test_a_small_new_result_travels_inside_the_event_and_a_big_one_is_fetched():
    hub = PushHub(inline_bytes=2000)
    hub.publish_view("room2", VIEW)
    outputs = [{"id": "tokens-main-plot", "kind": "plot", "label": None, "value": FIGURE}]
    small = hub.publish_result("room2", "tokens", outputs)
    data = json.loads(small.event.decode().split("data: ", 1)[1])
    # the same result the payload holds, so a follower needs no request of its own
    assert data["result"] == json.loads(small.body)["result"] and data["result"]["outputs"] == outputs
    assert data["result_version"] == small.result_version == 1
    # a view change keeps the result version and does not repeat the result
    moved = hub.publish_view("room2", {**VIEW, "params": {"prompt": "Hello"}})
    assert "result" not in json.loads(moved.event.decode().split("data: ", 1)[1])
    big = [{"id": "big", "kind": "json", "label": None, "value": {"x": "y" * 3000}}]
    announced = json.loads(hub.publish_result("room2", "tokens", big).event.decode().split("data: ", 1)[1])
    assert "result" not in announced and announced["result_version"] == 2
    assert json.loads(hub.latest("room2").body)["result"]["outputs"] == big  # fetched from the payload instead
    with pytest.raises(ValueError):
        PushHub(max_followers=0)


def test_a_waiting_follower_gets_each_new_version_once_and_a_slow_one_skips_to_the_latest():
    hub = PushHub()

    async def scenario():
        hub.publish_view("r", VIEW)
        assert (await hub.wait_newer("r", 0, 1.0)).version == 1  # catch-up at once
        assert await hub.wait_newer("r", 1, 0.05) is None  # nothing newer: waits, then times out
        waiting = asyncio.ensure_future(hub.wait_newer("r", 1, 5.0))
        await asyncio.sleep(0.01)
        # published from another thread, as Gradio's workers do
        thread = threading.Thread(target=hub.publish_result, args=("r", "tokens", []))
        thread.start()
        thread.join()
        assert (await waiting).version == 2
        for i in range(5):  # a follower that did not read for a while: only the latest is kept
            hub.publish_view("r", {**VIEW, "params": {"prompt": str(i)}})
        assert (await hub.wait_newer("r", 2, 1.0)).version == 7
        assert (await hub.wait_newer("r", 999, 1.0)).version == 7  # a version from the future: nothing seen
        ended = asyncio.ensure_future(hub.wait_newer("r", 7, 5.0))
        await asyncio.sleep(0.01)
        hub.end("r")
        assert await ended is None and hub.latest("r") is None
        assert await hub.wait_newer("nosuchroom", 0, 0.01) is None

    asyncio.run(scenario())


def test_caps_per_room_client_and_address_and_their_release():
    hub = PushHub(max_followers=3, per_client=2, per_ip=4)
    a1, a2 = hub.subscribe("r", "a", "1.1.1.1"), hub.subscribe("r", "a", "1.1.1.1")
    with pytest.raises(PushRefused, match="2 pages"):
        hub.subscribe("r", "a", "2.2.2.2")  # one browser opening many connections
    hub.subscribe("r", "b", "1.1.1.1")
    assert hub.followers("r") == 2  # distinct browsers
    with pytest.raises(PushRefused, match="room is full"):
        hub.subscribe("r", "c", "3.3.3.3")
    hub.subscribe("other", "c", "1.1.1.1")
    with pytest.raises(PushRefused, match="one address"):
        hub.subscribe("other", "d", "1.1.1.1")
    hub.subscribe("other", "d", "5.5.5.5")  # another address is unaffected
    hub.unsubscribe(a1)
    hub.unsubscribe(a2)
    assert hub.followers("r") == 1
    hub.subscribe("r", "a", "9.9.9.9")  # the freed places are usable again
    with pytest.raises(ValueError, match="per_client must be >= 1"):
        PushHub(per_client=0)


def test_presenter_sessions_and_payload_size_cap():
    hub = PushHub(max_bytes=2000)
    hub.present("session-1", "R")
    assert hub.room_of("session-1") == "r" and hub.room_of("session-2") is None and hub.room_of(None) is None
    big = {"id": "big", "kind": "json", "label": "Big", "value": "x" * 5000}
    small = {"id": "small", "kind": "html", "label": None, "value": "<b>kept</b>"}
    doc = json.loads(hub.publish_result("r", "tokens", [big, small]).body)
    outputs = doc["result"]["outputs"]
    assert outputs[1] == small and outputs[0]["kind"] == "note" and "LLM_EXPLORER_ROOM_PUSH_BYTES" in outputs[0]["value"]
    hub.end("r")
    assert hub.room_of("session-1") is None
    hub.present("session-2", "kept")
    hub.publish_view("gone", VIEW)
    hub.retain(["KEPT"])  # the rooms the room store still has
    assert hub.latest("gone") is None and hub.room_of("session-2") == "kept"
