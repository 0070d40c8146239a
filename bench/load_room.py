"""Load run of one workshop room on the push path: N followers (default 200) of one presenter, as a measured curve.

Starts ``app.py`` as ``bench/load.py`` does (its helpers are imported, not copied), then, per N:

1. **Presenter alone.** One session walks through the room's scenes (``load.SCENES``: tokenize, attention, KV cache,
   greedy decoding, the LoRA scene's question) once; the model's forward passes it causes are read from
   ``/serving_stats``.
2. **The room.** The presenter opens a room (``/room_start``: its session presents, so every result it receives is
   pushed) and every ``--scene-seconds`` publishes the next scene's view (``/room_publish``), computes the scene's
   requests (the results are pushed as they are served), then publishes the result stamp, as the page does.
   N followers are light asynchronous HTTP clients in this one process, as ``room_follow.js`` is in a page: one
   Server-Sent Events connection each (``/room_push/CODE/events``: each version's message carries the view, and a
   new result when it is small), and when a result moved without travelling in the event, one conditional GET of
   the gzip payload (``/room_push/CODE/payload``). No follower sends a Gradio request. The room's scenes carry a
   suffix on their prompts so the cache from step 1 does not answer them.

Prints, for each N (``--curve 50,100,200`` runs each N on a fresh server and suffixes every line with ``_N``):
``follower_view_latency_p95`` (presenter publishes a scene -> the follower has that view),
``follower_update_latency_p95`` (presenter's results published -> the follower has them), ``room_errors``,
``forward_passes`` (room vs the presenter alone; target within 2x), the followers' own CPU seconds (this process),
the server's CPU seconds per follower per minute, bytes received per follower per scene (on the wire: events as sent, fetched payloads gzip), and
the server's peak RSS.

Usage: ``python bench/load_room.py [--followers 200 | --curve 50,100,200] [--seconds 110] [--scene-seconds 20]``
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time

import httpx

from common import percentile, report
from load import SCENES, Stats, _connect, _model_totals, _start_server, _watch_memory

ROOM_SUFFIX = " (room)"
ALONE_SUFFIX = " (alone)"


def _variant(scene: list, suffix: str) -> list:
    """The scene's requests with ``suffix`` appended to each prompt (the first argument)."""
    return [(endpoint, (args[0] + suffix,) + tuple(args[1:])) for endpoint, args in scene]


class Audience:
    """N push followers on one asyncio loop in a thread of this process; records latencies, bytes and errors."""

    def __init__(self, url: str, code: str, n: int):
        self.url, self.code, self.n = url, code, n
        self.view, self.update, self.errors = [], [], []
        self.bytes, self.connected, self.payloads, self.inline = 0, 0, 0, 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: list = []

    def start(self, timeout: float = 120.0) -> int:
        """Connect every follower (one after another, as an audience arrives); returns how many connected."""
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=timeout + 30)
        end = time.time() + timeout
        while self.connected < self.n and time.time() < end and len(self.errors) < self.n:
            time.sleep(0.2)
        return self.connected

    async def _start(self):
        limits = httpx.Limits(max_connections=2 * self.n + 10, max_keepalive_connections=2 * self.n + 10)
        self.http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0, read=60.0))
        for i in range(self.n):
            self.tasks.append(asyncio.ensure_future(self._follow(i)))
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        async def cancel():
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.http.aclose()

        asyncio.run_coroutine_threadsafe(cancel(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _follow(self, i: int):
        last_id, seen = 0, {"etag": None, "tab": None, "stamp": None, "result_version": -1}
        first = True
        while True:
            headers = {"Last-Event-ID": str(last_id)} if last_id else {}
            try:
                async with self.http.stream("GET", f"{self.url}room_push/{self.code}/events",
                                            params={"client": f"bench-{i}"}, headers=headers) as response:
                    if response.status_code != 200:
                        self.errors.append(f"events {response.status_code}: {(await response.aread())[:200]!r}")
                        await asyncio.sleep(1.0)
                        continue
                    if first:
                        self.connected, first = self.connected + 1, False
                    event = None
                    async for line in response.aiter_lines():
                        self.bytes += len(line.encode()) + 1
                        if line.startswith("id: "):
                            last_id = int(line[4:])
                        elif line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: ") and event == "version":
                            await self._on_version(json.loads(line[6:]), seen)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a dropped connection reconnects, counted as an error
                self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(1.0)

    async def _on_version(self, data: dict, seen: dict) -> None:
        """As room_follow.js: the view comes in the event, and a small new result too; otherwise the payload is
        fetched when the result moved."""
        now, state = time.time(), data.get("state") or {}
        if data["result_version"] != seen["result_version"] and "result" in data:
            seen["result_version"] = data["result_version"]
            self.inline += 1
            if data["result"] is None:
                self.errors.append("a new result version without a result")
        elif data["result_version"] != seen["result_version"]:
            seen["result_version"] = data["result_version"]
            response = await self.http.get(f"{self.url}room_push/{self.code}/payload",
                                           headers={"If-None-Match": seen["etag"]} if seen["etag"] else {})
            self.bytes += response.num_bytes_downloaded + 200  # body on the wire (gzip) + headers, about
            if response.status_code == 200:
                self.payloads += 1
                seen["etag"] = response.headers.get("etag")
                if response.json().get("result") is None and data["result_version"]:
                    self.errors.append("a new result version without a result")
            elif response.status_code != 304:
                self.errors.append(f"payload {response.status_code}")
            now = time.time()
        tab = state.get("tab")
        if tab != seen["tab"] and "view_at" in state:
            seen["tab"] = tab
            self.view.append(now - state["view_at"])
        stamp = (state.get("runs") or {}).get(tab)
        if stamp and stamp != seen["stamp"] and "result_at" in state:
            seen["stamp"] = stamp  # the results were pushed (and fetched) before the stamp was published
            self.update.append(now - state["result_at"])


def _publish(http: httpx.Client, url: str, code: str, token: str, state: dict) -> dict:
    """The presenter page's view write, through Gradio's unqueued route."""
    response = http.post(f"{url}gradio_api/run/room_publish", json={"data": [code, token, state],
                                                                     "session_hash": "bench-presenter"}, timeout=60)
    response.raise_for_status()
    return response.json()["data"][0]


def _server_cpu(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    times = proc.cpu_times()
    return times.user + times.system + sum(c.cpu_times().user + c.cpu_times().system
                                           for c in proc.children(recursive=True))


def run_room(n: int, args) -> dict:
    """One server, the presenter alone, then the room with ``n`` push followers; returns the figures."""
    server, url = _start_server(batching=True)
    tail: list[str] = []
    threading.Thread(target=lambda: [tail.append(line) for line in server.stderr], daemon=True).start()
    presenter_stats, peak, stop_memory = Stats(), [0], threading.Event()
    threading.Thread(target=_watch_memory, args=(server.pid, stop_memory, peak), daemon=True).start()
    followers_seen, audience = 0, None
    try:
        presenter = _connect(url, server)
        before = _model_totals(presenter.predict(api_name="/serving_stats"))[0]
        for scene in SCENES.values():  # the presenter alone walks through every scene once
            for endpoint, scene_args in _variant(scene, ALONE_SUFFIX):
                presenter.predict(*scene_args, api_name=endpoint)
        alone = _model_totals(presenter.predict(api_name="/serving_stats"))[0] - before

        opened = presenter.predict(api_name="/room_start")  # this session presents: its results are pushed
        code, token = opened["code"], opened["token"]
        audience = Audience(url, code, n)
        arrival = time.time()
        connected = audience.start()
        print(f"followers connected: {connected} of {n} in {time.time() - arrival:.0f} s", flush=True)
        start_passes = _model_totals(presenter.predict(api_name="/serving_stats"))[0]
        cpu_start, clients_cpu_start, room_start = _server_cpu(server.pid), time.process_time(), time.time()
        stop_at = room_start + args.seconds
        http = httpx.Client()
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
        minutes = (time.time() - room_start) / 60
        server_cpu = _server_cpu(server.pid) - cpu_start
        clients_cpu = time.process_time() - clients_cpu_start
        room_passes = _model_totals(presenter.predict(api_name="/serving_stats"))[0] - start_passes
        crashed = server.poll() is not None
    finally:
        if audience is not None and audience.thread.is_alive():
            audience.stop()
        stop_memory.set()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    presenter_errors = sum(len(v) for v in presenter_stats.errors.values())
    for endpoint in sorted(presenter_stats.latency_ms):
        values = presenter_stats.latency_ms[endpoint]
        print(f"presenter {endpoint}: requests {len(values)}, errors {len(presenter_stats.errors[endpoint])}, "
              f"p50 {percentile(values, 50):.0f} ms, p95 {percentile(values, 95):.0f} ms", flush=True)
    for err in audience.errors[:5]:
        print(f"  follower error: {err}")
    return {"n": n, "view": audience.view, "update": audience.update, "errors": len(audience.errors) + presenter_errors,
            "alone": alone, "passes": room_passes, "scenes": index, "followers_seen": followers_seen,
            "clients_cpu": clients_cpu, "server_cpu": server_cpu, "minutes": minutes, "bytes": audience.bytes,
            "payloads": audience.payloads, "inline": audience.inline, "peak": peak[0], "crashed": crashed}


def print_room(run: dict, suffix: str = "") -> None:
    """The issue's lines for one N (``suffix``: ``_N`` on a curve)."""
    n = run["n"]
    for kind in ("view", "update"):
        values = run[kind]
        if values:
            report(f"follower_{kind}_latency_p95{suffix}", percentile(values, 95), "s", target="<= 2 s")
            report(f"follower_{kind}_latency_p50{suffix}", percentile(values, 50), "s")
        else:
            print(f"follower_{kind}_latency_p95{suffix}: no samples")
    report(f"room_errors{suffix}", run["errors"], "errors", target="0")
    report(f"forward_passes{suffix}", run["passes"], f"passes ({n} followers, {run['scenes']} of {len(SCENES)} scenes)",
           baseline=run["alone"], baseline_name="the presenter alone through every scene", target="within 2x")
    report(f"followers_seen{suffix}", run["followers_seen"], "followers", target=str(n))
    report(f"clients_cpu_seconds{suffix}", run["clients_cpu"], f"s (all {n} followers and the presenter, this process)")
    report(f"server_cpu_seconds{suffix}", run["server_cpu"], f"s (the room's {run['minutes']:.1f} min, the "
           "presenter's model work included)")
    report(f"server_cpu_per_follower_per_minute{suffix}", run["server_cpu"] / max(1, n) / max(run["minutes"], 1e-9),
           "s")
    report(f"bytes_per_follower_per_scene{suffix}", run["bytes"] / max(1, n) / max(1, run["scenes"]), "bytes")
    report(f"server_peak_rss{suffix}", run["peak"] / 2**20, "MB")
    print(f"results_received{suffix}: {run['inline']} inside push events, {run['payloads']} fetched "
          f"({n} followers)", flush=True)
    print(f"server_crashed{suffix}: {run['crashed']}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=200)
    parser.add_argument("--curve", default="", help="comma-separated follower counts, e.g. 50,100,200")
    parser.add_argument("--seconds", type=float, default=110.0, help="how long the room runs (after arrival)")
    parser.add_argument("--scene-seconds", type=float, default=20.0)
    args = parser.parse_args()
    counts = [int(x) for x in args.curve.split(",") if x.strip()] if args.curve else [args.followers]
    if not counts or min(counts) < 1:
        parser.error("--followers and --curve take counts >= 1")
    ok = True
    for n in counts:
        run = run_room(n, args)
        print_room(run, f"_{n}" if args.curve else "")
        ok = ok and run["errors"] == 0 and not run["crashed"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
