"""Render once, push once (issue 30): the pushed result is what the presenter's page received, followers get each
version once over Server-Sent Events and catch up after a drop, cause no handler calls, and the caps hold."""
import asyncio
import json
import threading
import time
import types

import httpx
from explorer.workshop import push_hub


def _presenter_blocks():
    """A small page with a real tab figure (the Tokens tab's), a badged Markdown line and a table."""
    import gradio as gr
    import pandas as pd

    from components.badge import badge_md
    from components.tabs.tokens.tab import render_tokens
    from components.theme import theme_plots

    def run(text):
        result, _, figure = render_tokens(text, ["smollm2-135m-instruct"], None, False, False,
                                          "smollm2-135m-instruct", 100)[:3]
        table = pd.DataFrame({"token": ["a", "b"], "p": [0.5, float("nan")]})
        return figure, f"{badge_md(result.provenance)} <script>alert(1)</script>", table, result

    def stream(text):
        for i in range(3):
            yield f"step {i}"

    with gr.Blocks() as demo:
        box = gr.Textbox()
        outputs = [gr.Plot(elem_id="t-plot"), gr.Markdown(elem_id="t-note"), gr.Dataframe(elem_id="t-table"),
                   gr.State()]
        box.submit(run, box, outputs, api_name="room_test_run")
        box.change(stream, box, gr.Markdown(elem_id="t-stream"), api_name="room_test_stream")
    theme_plots(demo)
    return demo


def test_the_pushed_result_is_what_the_presenter_page_received_and_others_push_nothing():
    from components.room_push import handler_calls, hook_results

    demo = _presenter_blocks()
    hook_results(demo, [types.SimpleNamespace(key="tokens", api_names=("room_test_run", "room_test_stream"))])
    hub = push_hub()
    code = "pushtest01"
    hub.present("presenter-session", code)
    run_fn = next(fn for fn in demo.fns.values() if fn.api_name == "room_test_run")
    stream_fn = next(fn for fn in demo.fns.values() if fn.api_name == "room_test_stream")

    async def scenario():
        before = handler_calls()
        await demo.process_api(block_fn=run_fn, inputs=["Hello room 🍓"], state=None, session_hash="someone-else")
        assert hub.latest(code) is None  # a visitor's result is never pushed
        sent = await demo.process_api(block_fn=run_fn, inputs=["Hello room 🍓"], state=None,
                                      session_hash="presenter-session")
        assert handler_calls() - before == 2
        return sent["data"]

    data = asyncio.run(scenario())
    doc = json.loads(hub.latest(code).body)
    outputs = {o["id"]: o for o in doc["result"]["outputs"]}
    assert doc["result"]["tab"] == "tokens" and set(outputs) == {"t-plot", "t-note", "t-table"}  # no State
    # the figure is byte-for-byte the JSON the presenter's page was sent: themed, with its provenance badge
    assert outputs["t-plot"]["kind"] == "plot" and outputs["t-plot"]["value"] == data[0]
    figure = json.loads(outputs["t-plot"]["value"]["plot"])
    assert any(a.get("name") == "prov-badge" for a in figure["layout"]["annotations"])
    assert figure["layout"]["paper_bgcolor"] == "rgba(0,0,0,0)"
    note = outputs["t-note"]
    assert note["kind"] == "html" and "prov-badge" in note["value"] and "<script" not in note["value"]
    assert outputs["t-table"]["value"]["data"] == [["a", 0.5], ["b", None]]  # NaN is JSON null
    assert outputs["t-table"]["value"]["headers"] == data[2]["headers"]

    async def streamed():
        iterator, steps = None, 0
        while True:
            out = await demo.process_api(block_fn=stream_fn, inputs=["x"], state=None, iterator=iterator,
                                         session_hash="presenter-session", event_id="e1")
            iterator, steps = out.get("iterator"), steps + 1
            if not out["is_generating"]:
                return steps

    asyncio.run(streamed())
    last = json.loads(hub.latest(code).body)["result"]["outputs"]
    assert last == [{"id": "t-stream", "kind": "html", "label": None, "value": "<p>step 2</p>\n"}]
    hub.end(code)


def test_clean_html_keeps_badges_and_drops_scripts():
    from components.room_push import clean_html

    dirty = ('<span class="prov-badge prov-measured" data-kind="measured" title="t" onclick="x()">MEASURED</span>'
             '<script>alert(1)</script><a href="javascript:alert(1)">x</a><div style="background:url(x)">y</div>'
             '<img src=x onerror=alert(1)>&lt;b&gt;')
    clean = clean_html(dirty)
    assert clean.startswith('<span class="prov-badge prov-measured" data-kind="measured" title="t">MEASURED</span>')
    for bad in ("script", "onclick", "javascript", "url(", "<img", "onerror"):
        assert bad not in clean
    assert "&lt;b&gt;" in clean


# ------------------------------------------------------------------------------------------------------------
# through the launched app: the routes on Gradio's FastAPI app


class Follower(threading.Thread):
    """One follower page's push connection: collects ``event: version`` data; fetches the payload each time."""

    def __init__(self, url, code, client, headers=None, fetch=True):
        super().__init__(daemon=True)
        self.url, self.code, self.client, self.headers, self.fetch = url, code, client, headers or {}, fetch
        self.versions, self.events, self.payloads, self.status, self.ended = [], [], [], None, None
        self.ready, self.stop, self.response = threading.Event(), threading.Event(), None

    def close(self):
        """Drop the connection (as a closed tab or a lost network does)."""
        self.stop.set()
        if self.response is not None:
            try:
                self.response.close()
            except Exception:  # noqa: BLE001 - closing a stream another thread reads
                pass

    def run(self):
        try:
            with httpx.Client(timeout=30) as http, http.stream(
                    "GET", f"{self.url}room_push/{self.code}/events?client={self.client}", headers=self.headers) as r:
                self.response, self.status = r, r.status_code
                self.ready.set()
                if r.status_code != 200:
                    return
                event = None
                for line in r.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "ended":
                        self.ended = json.loads(line[6:])["reason"]
                        return
                    elif line.startswith("data: ") and event == "version":
                        self.events.append(json.loads(line[6:]))
                        self.versions.append(self.events[-1]["version"])
                        if self.fetch:
                            self.payloads.append(http.get(f"{self.url}room_push/{self.code}/payload").json())
        except httpx.HTTPError:
            pass  # closed by close()
        finally:
            self.ready.set()


def _wait(condition, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_followers_receive_each_version_once_catch_up_and_cause_no_handler_calls(app_url, client):
    from components.room_push import handler_calls

    room = client.predict(api_name="/room_start")  # this client's session presents the room
    code, token = room["code"], room["token"]
    followers = [Follower(app_url, code, f"f{i}") for i in range(12)]
    for f in followers:
        f.start()
    assert all(f.ready.wait(30) for f in followers) and {f.status for f in followers} == {200}
    before = handler_calls()
    view = {"tab": "tokens", "params": {"prompt": "Push once 🍓"}, "runs": {}}
    assert client.predict(code, token, view, api_name="/room_publish")["followers"] == 12
    out = client.predict("Push once 🍓", None, api_name="/tokenize")  # the presenter's result: pushed as served
    assert _wait(lambda: all(f.versions == [1, 2] and len(f.payloads) == 2 for f in followers))
    time.sleep(0.5)
    assert handler_calls() - before == 2  # the presenter's two calls; 12 followers x 2 versions added none
    pushed = followers[0].payloads[-1]
    assert pushed["state"] == view and pushed["result"]["tab"] == "tokens"
    assert [e["result_version"] for e in followers[0].events] == [0, 1]  # the view alone needs no fetch
    assert followers[0].events[0]["state"] == view and followers[0].events[0]["followers"] == 12
    assert pushed["result"]["outputs"][0]["value"] == json.loads(json.dumps(out))  # the JSON the presenter got
    assert all(f.payloads[-1] == pushed for f in followers)
    # the small new result also rode in version 2's event, equal to the payload's: followers need no request
    assert all(f.events[1]["result"] == pushed["result"] and "result" not in f.events[0] for f in followers)

    # a dropped connection reconnects with the last version it had and gets only what it missed
    for f in followers:
        f.close()
    client.predict(code, token, {**view, "tab": "attention"}, api_name="/room_publish")  # version 3 while away
    again = Follower(app_url, code, "f0", headers={"Last-Event-ID": "2"})
    future = Follower(app_url, code, "f1", headers={"Last-Event-ID": "999"}, fetch=False)
    current = Follower(app_url, code, "f2", headers={"Last-Event-ID": "3"}, fetch=False)
    for f in (again, future, current):
        f.start()
    assert _wait(lambda: again.versions == [3] and future.versions == [3])
    assert again.payloads[0]["state"]["tab"] == "attention"
    time.sleep(0.5)
    assert current.versions == []  # nothing newer than what it had
    future.close()

    # the room ends (here: the presenter ends it): open connections are told why and closed
    from explorer.workshop import room_store

    room_store().close(code, token)
    push_hub().end(code)
    assert _wait(lambda: again.ended and current.ended)
    assert "does not exist or has ended" in again.ended
    assert httpx.get(f"{app_url}room_push/{code}/payload", timeout=10).status_code == 404


def test_push_routes_refuse_bad_codes_and_a_greedy_client(app_url, client):
    from explorer.core.config import get_limits

    gone = httpx.get(f"{app_url}room_push/zzzzzzzzzz/events", timeout=10)
    assert gone.status_code == 404 and "does not exist or has ended" in gone.text
    assert httpx.get(f"{app_url}room_push/zzzzzzzzzz/payload", timeout=10).status_code == 404
    code = client.predict(api_name="/room_start")["code"]
    assert httpx.get(f"{app_url}room_push/{code}/payload", timeout=10).status_code == 204  # nothing yet
    cap = get_limits().room_push_per_client
    greedy = [Follower(app_url, code, "greedy", fetch=False) for _ in range(cap + 1)]
    for f in greedy:
        f.start()
        f.ready.wait(30)
    assert sorted(f.status for f in greedy) == [200] * cap + [429]
    polite = Follower(app_url, code, "polite", fetch=False)  # another follower is unaffected
    polite.start()
    assert polite.ready.wait(30) and polite.status == 200
    for f in greedy + [polite]:
        f.close()



def test_a_follower_that_never_reads_skips_to_the_latest_version_and_others_are_unaffected(app_url, client):
    """Back-pressure: while one connection's socket is full, its stream waits; when it reads again it gets the
    newest version, not every version it missed, and a reading follower reached the newest meanwhile."""
    import socket
    from urllib.parse import urlparse

    room = client.predict(api_name="/room_start")
    code = room["code"]
    where = urlparse(app_url)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills at once
    slow.connect((where.hostname, where.port))
    slow.sendall(f"GET /room_push/{code}/events?client=slow HTTP/1.1\r\nHost: {where.netloc}\r\n\r\n".encode())
    reader = Follower(app_url, code, "reader", fetch=False)
    reader.start()
    assert reader.ready.wait(30) and reader.status == 200
    hub, versions = push_hub(), 120
    for i in range(versions):  # each announcement carries a ~50 kB view: far more than the slow socket holds
        hub.publish_view(code, {"tab": "tokens", "params": {"prompt": f"{i} " + "x" * 50_000}, "runs": {}})
    assert _wait(lambda: reader.versions[-1:] == [versions])
    assert len(reader.versions) > 1
    slow.settimeout(10)
    received, ids = b"", []
    while not ids or ids[-1] != versions:
        chunk = slow.recv(1 << 20)
        assert chunk, "the server closed the slow connection"
        received += chunk
        ids = [int(line[4:]) for line in received.split(b"\n") if line.startswith(b"id: ")]
    slow.close()
    reader.close()
    assert ids == sorted(ids) and len(ids) < versions  # versions were skipped, in order, ending at the newest
