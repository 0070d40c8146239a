"""Load, fairness and isolation: the app under N gradio_client sessions, in two mixes.

Starts ``app.py`` in a child process on a loopback port (``--no-batching`` sets ``LLM_EXPLORER_BATCHING=0``),
then runs N client sessions (threads, each its own ``gradio_client.Client`` and so its own Gradio session):

- ``--mix follow``: a room following a presenter who changes scene every ``--scene-seconds`` (30 s); after each
  change every session sends that scene's requests (same prompts and settings) within 0-5 s. Scenes: tokenize,
  attention, KV cache, greedy decoding (``/decode`` and the batched ``/generate``, 32 tokens), LoRA (the presenter
  trains once; followers ask the base model the scene's question). Before the room arrives one visitor walks
  through every scene alone: the forward passes the room adds are compared with that visitor's.
- ``--mix free``: sessions with distinct prompts (``bench/load_prompts.txt``, 200+ written for this bench),
  pausing 10-20 s between requests as a reader does: greedy (``/generate``) and seeded sampled (``/decode``)
  32-token decodes, attention, probes, tokenize; one session trains a 30-step LoRA run, timed alone first.

Isolation: greedy answers of a fixed prompt (different lengths, so no two are one cached result) must be
prefixes of the answer recorded before the run; a session's adapter or seed never changes another's output.

Prints per endpoint requests, errors, p50/p95 (ms), then model forward passes, generated tokens/s, cache and
coalescing hits (from ``/serving_stats``), peak RSS of the server, and the isolation verdict.

``--compare-batching`` runs the mix twice in one invocation, each on a fresh server with the same sessions and
seeds (a server reused for the second run would answer repeated requests from its result cache): first with
continuous batching, then one sequence at a time, and prints ``batching_tokens_per_s_ratio``. Errors are split
into clear "busy, try again" answers (a wait cap, a full queue, the per-session limit) and other errors, and
``waits_shown`` counts the requests whose user was told their place in line while waiting.

Usage: ``python bench/load.py --mix follow|free --clients N --seconds S [--no-batching | --compare-batching]``
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict

from common import ROOT, percentile, report

MODEL = "smollm2-135m-instruct"
ISOLATION_PROMPT = "Name the largest planet in the solar system."
LORA_PROMPT = "Who founded the city of Velmora?"
SCENES = {  # name -> requests every follower sends: (endpoint, args)
    "tokens": [("/tokenize", ("Tokens, heads and caches: 🍓 strawberry unbelievable", None))],
    "attention": [("/attention", ("The capital of France is Paris, a city on the Seine", MODEL, 3, 2))],
    "kv_cache": [("/kv_cache", ("The capital of France is", MODEL, 16))],
    "decoding": [("/decode", ("Write one sentence about the sea.", MODEL, [{"name": "greedy"}], 32)),
                 ("/generate", ("Write one sentence about the sea.", MODEL, 32))],
    "lora": [("/generate", (LORA_PROMPT, MODEL, 32))],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stats:
    """Thread-safe latency and error counts per endpoint, isolation leaks."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latency_ms: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.leaks: list[str] = []
        self.checks = 0
        self.told = 0  # requests whose user was shown a place in line while waiting

    def call(self, client, endpoint: str, *args):
        """``client.predict(*args, api_name=endpoint)``, timed; while it runs, the job's status is read every
        0.2 s to see whether the user was told their place (Gradio's queue rank or our "N ahead, about T s")."""
        start = time.perf_counter()
        told = False
        try:
            job = client.submit(*args, api_name=endpoint)
            while not job.done():
                status = job.status()
                if (status.log and "ahead" in status.log[0]) or (status.rank or 0) > 0:
                    told = True
                time.sleep(0.2)
            out = job.result()
        except Exception as exc:  # noqa: BLE001 - every failure is counted and printed
            with self.lock:
                self.latency_ms[endpoint].append((time.perf_counter() - start) * 1000)
                self.errors[endpoint].append(f"{type(exc).__name__}: {exc}"[:300])
                self.told += told
            return None
        with self.lock:
            self.latency_ms[endpoint].append((time.perf_counter() - start) * 1000)
            self.told += told
        return out

    def check_isolation(self, client, baseline: list[int], rng: random.Random):
        n = rng.randint(20, 40)
        out = self.call(client, "/generate", ISOLATION_PROMPT, MODEL, n)
        if out is None:
            return
        with self.lock:
            self.checks += 1
            if out["token_ids"] != baseline[:len(out["token_ids"])]:
                self.leaks.append(f"greedy ids changed at {n} tokens: {out['token_ids']} vs {baseline[:n]}")


def _client(url: str, stats: "Stats | None" = None):
    """A new gradio_client session; connecting is retried (a starved server answers slowly) and a failure to
    connect at all is counted under ``/connect``."""
    from gradio_client import Client

    for attempt in range(6):
        try:
            return Client(url, verbose=False)
        except Exception as exc:  # noqa: BLE001
            if attempt == 5:
                if stats is not None:
                    with stats.lock:
                        stats.errors["/connect"].append(f"{type(exc).__name__}: {exc}"[:300])
                        stats.latency_ms["/connect"].append(0.0)
                return None
            time.sleep(2 + 2 * attempt)


def _lora_dataset():
    rows = [json.loads(line) for line in open(os.path.join(ROOT, "data", "lora", "fictional_facts.jsonl"),
                                              encoding="utf-8")]
    return [{"prompt": r["prompt"], "response": r["response"]} for r in rows if "prompt" in r]


def _follow(url, stats, stop_at, index, scene_at, scene_s, presenter_done):
    rng = random.Random(index)
    client = _client(url, stats)
    if client is None:
        return
    seen = -1
    while time.time() < stop_at:
        current = int((time.time() - scene_at) // scene_s)
        if current == seen:
            time.sleep(0.2)
            continue
        seen = current
        name = list(SCENES)[current % len(SCENES)]
        if index == 0 and name == "lora" and not presenter_done.is_set():
            presenter_done.set()  # the presenter trains once
            out = stats.call(client, "/lora_train", _lora_dataset(), {"steps": 30, "seed": 0})
            if out:
                stats.call(client, "/lora_generate", out["run_id"], LORA_PROMPT)
        elif index != 0:
            time.sleep(rng.uniform(0, 5))
        for endpoint, args in SCENES[name]:
            if time.time() >= stop_at:
                break
            stats.call(client, endpoint, *args)


def _free(url, stats, stop_at, index, prompts, baseline):
    rng = random.Random(1000 + index)
    client = _client(url, stats)
    if client is None:
        return
    kinds = ["greedy", "greedy", "sampled", "attention", "probe", "tokenize", "tokenize", "isolation"]
    while time.time() < stop_at:
        time.sleep(rng.uniform(10, 20))
        if time.time() >= stop_at:
            break
        prompt = rng.choice(prompts)
        kind = rng.choice(kinds)
        if kind == "greedy":
            stats.call(client, "/generate", prompt, MODEL, 32)
        elif kind == "sampled":
            stats.call(client, "/decode", prompt, MODEL, [{"name": "sampling", "temperature": 0.7, "top_p": 0.95,
                                                          "seed": rng.randint(0, 10**6)}], 32)
        elif kind == "attention":
            stats.call(client, "/attention", prompt, MODEL, 3, 2)
        elif kind == "probe":
            stats.call(client, "/probe", prompt, MODEL, ["token_confidence"], None, 2)
        elif kind == "tokenize":
            stats.call(client, "/tokenize", prompt, None)
        else:
            stats.check_isolation(client, baseline, rng)


def _lora_session(url, stats, result):
    client = _client(url, stats)
    if client is None:
        return
    start = time.perf_counter()
    out = stats.call(client, "/lora_train", _lora_dataset(), {"steps": 30, "seed": 0})
    result["seconds"] = time.perf_counter() - start
    if out:
        result["answers"] = stats.call(client, "/lora_generate", out["run_id"], _lora_dataset()[0]["prompt"])


def _watch_memory(pid: int, stop: threading.Event, peak: list[int]):
    import psutil

    proc = psutil.Process(pid)
    while not stop.is_set():
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            peak[0] = max(peak[0], rss)
        except psutil.Error:
            pass
        time.sleep(0.5)


def _start_server(batching: bool):
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": ROOT,
           "LLM_EXPLORER_BATCHING": "1" if batching else "0",
           "LLM_EXPLORER_WARM_SCENES": "0"}  # the presenter scenes' warm-up would share the cores with the room
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "app.py"), "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return server, f"http://127.0.0.1:{port}/"


def _connect(url, server):
    from gradio_client import Client

    deadline = time.time() + 300
    while True:
        try:
            return Client(url, verbose=False)
        except Exception:  # noqa: BLE001 - not up yet
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError(server.stderr.read()[-3000:] if server.poll() is not None else "server did not start")
            time.sleep(2)


def _model_totals(stats_now: dict) -> tuple[int, int]:
    row = stats_now["per_model"].get(MODEL, {})
    return int(row.get("forward_passes", 0)), int(row.get("tokens", 0))


BUSY_WORDS = ("busy", "queue is full", "requests running", "try again", "cancelled")


def _busy(message: str) -> bool:
    """A clear "busy, try again" answer (a wait cap, a full queue, the per-session limit), not a failure."""
    return any(word in message.lower() for word in BUSY_WORDS)


def run_mix(args, batching: bool, lora_alone: float | None = None, time_lora_alone: bool = True) -> dict:
    """Start a fresh server (batching on or off), run the mix for ``args.seconds`` and return what was measured:
    ``stats`` (:class:`Stats`), ``start``/``end`` (``/serving_stats``), ``wall`` s, ``peak`` bytes, ``crashed``,
    ``lora`` (the in-room LoRA session), ``lora_alone`` s, ``solo_passes`` (follow mix)."""
    server, url = _start_server(batching)
    peak, stop = [0], threading.Event()
    threading.Thread(target=_watch_memory, args=(server.pid, stop, peak), daemon=True).start()
    stats, lora_result, solo = Stats(), {}, {}
    try:
        probe = _connect(url, server)
        baseline = probe.predict(ISOLATION_PROMPT, MODEL, 48, api_name="/generate")["token_ids"]
        if args.mix == "follow":
            before = _model_totals(probe.predict(api_name="/serving_stats"))
            for requests in SCENES.values():  # one visitor walks through every scene alone
                for endpoint, scene_args in requests:
                    probe.predict(*scene_args, api_name=endpoint)
            solo["passes"] = _model_totals(probe.predict(api_name="/serving_stats"))[0] - before[0]
        elif time_lora_alone and not args.skip_lora_alone:
            alone = {}
            _lora_session(url, Stats(), alone)
            lora_alone = alone.get("seconds")
        start_stats = probe.predict(api_name="/serving_stats")
        stop_at = time.time() + args.seconds
        if args.mix == "follow":
            scene_at, presenter_done = time.time(), threading.Event()
            threads = [threading.Thread(target=_follow, args=(url, stats, stop_at, i, scene_at, args.scene_seconds,
                                                               presenter_done)) for i in range(args.clients)]
        else:
            prompts = [p.strip() for p in open(os.path.join(ROOT, "bench", "load_prompts.txt"), encoding="utf-8")
                       if p.strip()]
            threads = [threading.Thread(target=_lora_session, args=(url, stats, lora_result))]
            threads += [threading.Thread(target=_free, args=(url, stats, stop_at, i, prompts, baseline))
                        for i in range(args.clients - 1)]
        started = time.perf_counter()
        for t in threads:
            t.start()
            time.sleep(0.25)  # sessions open one after another, as a room arrives
        for t in threads:
            t.join(timeout=args.seconds + 900)
        wall = time.perf_counter() - started
        end_stats = probe.predict(api_name="/serving_stats")
        stats.check_isolation(probe, baseline, random.Random(7))
        crashed = server.poll() is not None
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return {"stats": stats, "start": start_stats, "end": end_stats, "wall": wall, "peak": peak[0],
            "crashed": crashed, "lora": lora_result, "lora_alone": lora_alone, "solo_passes": solo.get("passes")}


def print_mix(args, batching: bool, run: dict) -> dict:
    """Print one run's lines; returns ``{"ok", "tokens_per_s"}``."""
    stats = run["stats"]
    total = errors = busy = 0
    for endpoint in sorted(stats.latency_ms):
        values, errs = stats.latency_ms[endpoint], stats.errors[endpoint]
        total, errors = total + len(values), errors + len(errs)
        busy += sum(_busy(e) for e in errs)
        print(f"{endpoint}: requests {len(values)}, errors {len(errs)}, p50 {percentile(values, 50):.0f} ms, "
              f"p95 {percentile(values, 95):.0f} ms", flush=True)
        for err in errs[:3]:
            print(f"  error: {err}")
    passes0, tokens0 = _model_totals(run["start"])
    passes1, tokens1 = _model_totals(run["end"])
    mode = "continuous batching" if batching else "one at a time (--no-batching)"
    report("load_requests", total, "requests", target=f"{args.clients} sessions, mix {args.mix}, {args.seconds:.0f} s, "
                                                      f"{mode}")
    report("load_errors", errors, "errors", target="0")
    print(f"busy_answers: {busy} of {errors} errors were a clear 'busy, try again' message; "
          f"{errors - busy} other errors", flush=True)
    print(f"waits_shown: {stats.told} of {total} requests were shown their place while waiting", flush=True)
    if args.mix == "follow" and run["solo_passes"]:
        report("forward_passes", run["solo_passes"] + passes1 - passes0, "passes (one visitor first, then the room)",
               baseline=run["solo_passes"], baseline_name="one visitor through every scene",
               target="within 2x of one visitor's")
    else:
        report("forward_passes", passes1 - passes0, "passes")
    tokens_per_s = (tokens1 - tokens0) / run["wall"]
    report("generated_tokens_per_s", tokens_per_s, "tokens/s", target=f"{mode}; free mix: >= 3x the --no-batching run")
    report("cache_hits", run["end"]["cache_hits"] - run["start"]["cache_hits"], "requests")
    report("coalesced", run["end"]["coalesced"] - run["start"]["coalesced"], "requests")
    if run["lora"].get("seconds"):
        report("lora_train_30_steps", run["lora"]["seconds"], "s", baseline=run["lora_alone"], baseline_name="alone",
               target="within 3x of alone")
    report("server_peak_rss", run["peak"] / 2**20, "MB", target="<= 4096 MB")
    print(f"server_crashed: {run['crashed']}")
    print(f"isolation: {stats.checks} greedy checks, {len(stats.leaks)} leaks"
          + ("" if not stats.leaks else f" (first: {stats.leaks[0]})"), flush=True)
    return {"ok": errors == 0 and not run["crashed"] and not stats.leaks, "tokens_per_s": tokens_per_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", choices=("follow", "free"), default="follow")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--no-batching", action="store_true", help="greedy /generate one sequence at a time")
    parser.add_argument("--compare-batching", action="store_true",
                        help="run the mix twice in this invocation, on a fresh server each time (same sessions, "
                             "same seeds): with continuous batching, then with --no-batching; print the ratio")
    parser.add_argument("--scene-seconds", type=float, default=30.0)
    parser.add_argument("--skip-lora-alone", action="store_true", help="free mix: do not time the LoRA run alone")
    args = parser.parse_args()
    if args.compare_batching and args.no_batching:
        parser.error("--compare-batching runs both ways itself; leave out --no-batching")

    if not args.compare_batching:
        batching = not args.no_batching
        return 0 if print_mix(args, batching, run_mix(args, batching))["ok"] else 1
    print("== run 1 of 2: continuous batching ==", flush=True)
    first = run_mix(args, True)
    with_batching = print_mix(args, True, first)
    print("== run 2 of 2: one at a time (--no-batching), a fresh server, the same sessions and seeds ==", flush=True)
    second = run_mix(args, False, lora_alone=first["lora_alone"], time_lora_alone=False)
    without = print_mix(args, False, second)
    report("batching_tokens_per_s_ratio", with_batching["tokens_per_s"] / without["tokens_per_s"]
           if without["tokens_per_s"] else float("inf"), "x",
           target=f"free mix: >= 3x (continuous batching {with_batching['tokens_per_s']:.3g} tokens/s over one at "
                  f"a time {without['tokens_per_s']:.3g} tokens/s, measured in this invocation)")
    return 0 if with_batching["ok"] and without["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
