"""Load run of one workshop room: N followers (default 100) of one presenter.

Starts ``app.py`` as ``bench/load.py`` does (its helpers are imported, not copied), then:

1. **Presenter alone.** One session walks through the room's scenes (``load.SCENES``: tokenize, attention, KV cache,
   greedy decoding, the LoRA scene's question) once; the model's forward passes it causes are read from
   ``/serving_stats``.
2. **The room.** The presenter opens a room (``/room_start``) and every ``--scene-seconds`` publishes the next
   scene's view (``/room_publish``), computes the scene's requests, then publishes the result stamp, as the page
   does. Each follower polls ``/room_state`` every ``--poll-seconds`` through Gradio's unqueued route (what the
   page's ``gr.Timer`` uses: outside the model queue) and, when the presenter's result appears, sends the same
   requests with ``gradio_client`` (served by the result cache). The room's scenes carry a suffix on their prompts
   so the cache from step 1 does not answer them.

Prints per endpoint requests, errors, p50/p95; the followers' view latency (presenter publishes a scene -> the
follower's poll has it) and update latency (presenter's result published -> the follower has the same results);
forward passes of the room vs the presenter alone (target: within 2x); followers seen by the presenter.

Usage: ``python bench/load_room.py [--followers 100] [--seconds 110] [--scene-seconds 20] [--poll-seconds 1]``
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
import threading
import time

import httpx

from common import percentile, report
from load import SCENES, Stats, _client, _connect, _model_totals, _start_server


def _variant(scene: list, suffix: str) -> list:
    """The scene's requests with ``suffix`` appended to each prompt (the first argument)."""
    return [(endpoint, (args[0] + suffix,) + tuple(args[1:])) for endpoint, args in scene]


ROOM_SUFFIX = " (room)"
ALONE_SUFFIX = " (alone)"


def _poll(http: httpx.Client, url: str, code: str, follower: str) -> dict:
    response = http.post(f"{url}gradio_api/run/room_state", json={"data": [code, follower],
                                                                   "session_hash": follower}, timeout=30)
    response.raise_for_status()
    return response.json()["data"][0]


def _publish(http: httpx.Client, url: str, code: str, token: str, state: dict) -> dict:
    """The presenter page's write, through the same unqueued route."""
    response = http.post(f"{url}gradio_api/run/room_publish", json={"data": [code, token, state],
                                                                     "session_hash": "bench-presenter"}, timeout=60)
    response.raise_for_status()
    return response.json()["data"][0]


def _follower(url, code, index, room: dict, poll_s, stats: Stats, latencies: dict, lock: threading.Lock):
    rng = random.Random(index)
    client = _client(url, stats)  # a page of its own: its own Gradio session
    with lock:
        room["connected"] += 1
    if client is None:
        return
    room["go"].wait()
    stop_at = room["stop_at"]
    name = f"bench-follower-{index}"
    seen_version, seen_tab, seen_stamp = 0, None, None
    time.sleep(rng.uniform(0, poll_s))  # timers of pages opened at different moments are out of phase
    with httpx.Client() as http:
        while time.time() < stop_at:
            start = time.time()
            try:
                view = _poll(http, url, code, name)
            except Exception as exc:  # noqa: BLE001 - counted and printed
                with stats.lock:
                    stats.errors["/room_state"].append(f"{type(exc).__name__}: {exc}"[:300])
                    stats.latency_ms["/room_state"].append((time.time() - start) * 1000)
                time.sleep(poll_s)
                continue
            with stats.lock:
                stats.latency_ms["/room_state"].append((time.time() - start) * 1000)
            state = view["state"]
            if view["version"] != seen_version and state:
                seen_version = view["version"]
                tab = state.get("tab")
                if tab != seen_tab:
                    seen_tab = tab
                    with lock:
                        latencies["view"].append(time.time() - state["view_at"])
                stamp = state.get("runs", {}).get(tab)
                if stamp and stamp != seen_stamp:
                    seen_stamp = stamp
                    for endpoint, args in _variant(SCENES[tab], ROOM_SUFFIX):
                        stats.call(client, endpoint, *args)
                    with lock:
                        latencies["update"].append(time.time() - state["result_at"])
            time.sleep(max(0.0, poll_s - (time.time() - start)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=110.0, help="how long the room runs (after arrival)")
    parser.add_argument("--scene-seconds", type=float, default=20.0)
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="the page's default (Limits.room_poll_seconds)")
    args = parser.parse_args()

    server, url = _start_server(batching=True)
    stats, presenter_stats = Stats(), Stats()
    latencies, lock = {"view": [], "update": []}, threading.Lock()
    followers_seen = 0
    try:
        presenter = _connect(url, server)
        before = _model_totals(presenter.predict(api_name="/serving_stats"))[0]
        for scene in SCENES.values():  # the presenter alone walks through every scene once
            for endpoint, scene_args in _variant(scene, ALONE_SUFFIX):
                presenter.predict(*scene_args, api_name=endpoint)
        alone = _model_totals(presenter.predict(api_name="/serving_stats"))[0] - before

        opened = presenter.predict(api_name="/room_start")
        code, token = opened["code"], opened["token"]
        room = {"connected": 0, "go": threading.Event(), "stop_at": 0.0}
        threads = [threading.Thread(target=_follower, args=(url, code, i, room, args.poll_seconds, stats,
                                                            latencies, lock), daemon=True)
                   for i in range(args.followers)]
        arrival = time.time()
        for t in threads:  # the audience arrives, one page after another
            t.start()
            time.sleep(0.2)
        while room["connected"] < args.followers and time.time() < arrival + 300:
            time.sleep(0.5)
        print(f"followers connected: {room['connected']} in {time.time() - arrival:.0f} s", flush=True)
        start_passes = _model_totals(presenter.predict(api_name="/serving_stats"))[0]
        stop_at = room["stop_at"] = time.time() + args.seconds
        room["go"].set()
        http = httpx.Client()
        time.sleep(3 * args.poll_seconds)  # every follower polls before the first scene
        names, index = list(SCENES), 0
        while index < len(names) and time.time() < stop_at - args.scene_seconds / 2:
            name, scene_at = names[index], time.time()
            state = {"tab": name, "params": {"prompt": SCENES[name][0][1][0] + ROOM_SUFFIX}, "runs": {},
                     "view_at": scene_at}
            followers_seen = max(followers_seen, _publish(http, url, code, token, state)["followers"])
            for endpoint, scene_args in _variant(SCENES[name], ROOM_SUFFIX):
                presenter_stats.call(presenter, endpoint, *scene_args)
            state = {**state, "runs": {name: f"run-{index}"}, "result_at": time.time()}
            followers_seen = max(followers_seen, _publish(http, url, code, token, state)["followers"])
            index += 1
            time.sleep(max(0.0, scene_at + args.scene_seconds - time.time()))
        for t in threads:
            t.join(timeout=args.seconds + 600)
        end_passes = _model_totals(presenter.predict(api_name="/serving_stats"))[0]
        room_passes = end_passes - start_passes
        scenes_done = index
        crashed = server.poll() is not None
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    errors = 0
    for label, source in (("presenter ", presenter_stats), ("", stats)):
        for endpoint in sorted(source.latency_ms):
            values, errs = source.latency_ms[endpoint], source.errors[endpoint]
            errors += len(errs)
            print(f"{label}{endpoint}: requests {len(values)}, errors {len(errs)}, p50 {percentile(values, 50):.0f} ms, "
                  f"p95 {percentile(values, 95):.0f} ms", flush=True)
            for err in errs[:3]:
                print(f"  error: {err}")
    for kind, values in latencies.items():
        if values:
            report(f"follower_{kind}_latency_p95", percentile(values, 95), "s",
                   target="<= 2 s" + (" (poll + the cached results)" if kind == "update" else ""))
            report(f"follower_{kind}_latency_p50", percentile(values, 50), "s")
    alone_scenes = len(SCENES)
    report("forward_passes", room_passes, f"passes ({args.followers} followers, {scenes_done} of {alone_scenes} scenes)",
           baseline=alone, baseline_name="the presenter alone through every scene", target="within 2x")
    report("followers_seen", followers_seen, "followers", target=f"{args.followers}")
    report("room_errors", errors, "errors", target="0")
    print(f"server_crashed: {crashed}")
    return 0 if (errors == 0 and not crashed) else 1


if __name__ == "__main__":
    sys.exit(main())
