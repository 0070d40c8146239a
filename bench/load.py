"""Load and isolation: the app under 20 concurrent gradio_client sessions for 2 minutes.

Starts ``app.py`` in a child process on a loopback port, then runs N client sessions (threads, each
its own ``gradio_client.Client`` and so its own Gradio session) over a mix of endpoints:
``/tokenize``, ``/attention``, ``/decode``, ``/probe``, and one session that trains a LoRA adapter
(``/lora_train``) and asks for base vs adapted answers (``/lora_generate``).

Isolation: before the run, the greedy answer of a fixed prompt is recorded; during and after the
LoRA run, the other sessions' greedy answers must equal it token for token (one session's adapter
never changes another session's outputs), while the training session's adapted answer differs.

Prints per endpoint: requests, errors, p50/p95 latency (ms); totals; peak resident memory of the
server (MB); the isolation verdict. Bounded in time and requests; traffic goes only to 127.0.0.1.

Usage: ``python bench/load.py [--clients 20] [--seconds 120]``
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

PROMPT = "The capital of France is"
GREEDY = [{"name": "greedy"}]
MIX = [  # (endpoint, weight)
    ("/tokenize", 4), ("/attention", 2), ("/decode", 3), ("/probe", 1),
]
MAX_REQUESTS_PER_CLIENT = 400


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(client, endpoint: str):
    if endpoint == "/tokenize":
        return client.predict("Tokens, heads and caches: " + "🍓 strawberry " * random.randint(1, 20), None,
                              api_name="/tokenize")
    if endpoint == "/attention":
        return client.predict(PROMPT + " a city on the Seine", "smollm2-135m-instruct", 3, 2, api_name="/attention")
    if endpoint == "/decode":
        return client.predict(PROMPT, "smollm2-135m-instruct", GREEDY, 8, api_name="/decode")
    if endpoint == "/probe":
        return client.predict("What is the capital of Italy?", "smollm2-135m-instruct", ["token_confidence", "sequence"],
                              None, 2, api_name="/probe")
    raise ValueError(endpoint)


class Stats:
    """Thread-safe latency and error counts per endpoint."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latency_ms: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.leaks: list[str] = []
        self.greedy_checks = 0

    def add(self, endpoint: str, ms: float, error: str | None = None):
        with self.lock:
            self.latency_ms[endpoint].append(ms)
            if error:
                self.errors[endpoint].append(error)


def _worker(url: str, stop_at: float, stats: Stats, baseline_ids: list[int], seed: int):
    from gradio_client import Client

    rng = random.Random(seed)
    client = Client(url, verbose=False)
    endpoints = [e for e, w in MIX for _ in range(w)]
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        if time.time() >= stop_at:
            break
        endpoint = rng.choice(endpoints)
        start = time.perf_counter()
        try:
            out = _call(client, endpoint)
            stats.add(endpoint, (time.perf_counter() - start) * 1000)
            if endpoint == "/decode":
                ids = out["runs"][0]["token_ids"]
                with stats.lock:
                    stats.greedy_checks += 1
                    if ids != baseline_ids:
                        stats.leaks.append(f"greedy ids changed: {ids} != {baseline_ids}")
        except Exception as exc:  # noqa: BLE001 - every failure is counted and printed
            stats.add(endpoint, (time.perf_counter() - start) * 1000, f"{type(exc).__name__}: {exc}"[:300])


def _lora_session(url: str, stats: Stats, result: dict, steps: int):
    from gradio_client import Client

    client = Client(url, verbose=False)
    rows = [json.loads(line) for line in open(os.path.join(ROOT, "data", "lora", "fictional_facts.jsonl"), encoding="utf-8")]
    dataset = [{"prompt": r["prompt"], "response": r["response"]} for r in rows if "prompt" in r]
    start = time.perf_counter()
    try:
        out = client.predict(dataset, {"steps": steps, "seed": 0}, api_name="/lora_train")
        stats.add("/lora_train", (time.perf_counter() - start) * 1000)
        result["losses"] = out["losses"]
        start = time.perf_counter()
        answer = client.predict(out["run_id"], dataset[0]["prompt"], api_name="/lora_generate")
        stats.add("/lora_generate", (time.perf_counter() - start) * 1000)
        result["answers"] = answer
    except Exception as exc:  # noqa: BLE001
        stats.add("/lora_train", (time.perf_counter() - start) * 1000, f"{type(exc).__name__}: {exc}"[:300])


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--lora-steps", type=int, default=30)
    args = parser.parse_args()

    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": ROOT}
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "app.py"), "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    peak, stop = [0], threading.Event()
    watcher = threading.Thread(target=_watch_memory, args=(server.pid, stop, peak), daemon=True)
    watcher.start()
    try:
        from gradio_client import Client

        deadline = time.time() + 300
        while True:
            try:
                probe = Client(url, verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.time() > deadline or server.poll() is not None:
                    print(server.stderr.read()[-3000:] if server.poll() is not None else "server did not start")
                    return 1
                time.sleep(2)
        baseline = probe.predict(PROMPT, "smollm2-135m-instruct", GREEDY, 8, api_name="/decode")["runs"][0]["token_ids"]
        stats, lora_result = Stats(), {}
        stop_at = time.time() + args.seconds
        threads = [threading.Thread(target=_lora_session, args=(url, stats, lora_result, args.lora_steps))]
        threads += [threading.Thread(target=_worker, args=(url, stop_at, stats, baseline, i)) for i in range(args.clients - 1)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=args.seconds + 900)
        wall = time.perf_counter() - started
        after = probe.predict(PROMPT, "smollm2-135m-instruct", GREEDY, 8, api_name="/decode")["runs"][0]["token_ids"]
        if after != baseline:
            stats.leaks.append(f"greedy ids after the run changed: {after} != {baseline}")
        crashed = server.poll() is not None
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    total = errors = 0
    for endpoint in sorted(stats.latency_ms):
        values, errs = stats.latency_ms[endpoint], stats.errors[endpoint]
        total, errors = total + len(values), errors + len(errs)
        print(f"{endpoint}: requests {len(values)}, errors {len(errs)}, p50 {percentile(values, 50):.0f} ms, "
              f"p95 {percentile(values, 95):.0f} ms", flush=True)
        for err in errs[:3]:
            print(f"  error: {err}")
    report("load_requests", total, "requests", target=f"{args.clients} sessions for {args.seconds:.0f} s")
    report("load_errors", errors, "errors", target="0")
    report("load_wall", wall, "s")
    report("server_peak_rss", peak[0] / 2**20, "MB")
    print(f"server_crashed: {crashed}")
    losses = lora_result.get("losses") or []
    if losses:
        print(f"lora_run: {len(losses)} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    answers = lora_result.get("answers") or {}
    if answers:
        print(f"lora_own_session_changed: {answers.get('base') != answers.get('adapted')}")
    print(f"isolation: {stats.greedy_checks} greedy checks by other sessions, {len(stats.leaks)} leaks"
          + ("" if not stats.leaks else f" (first: {stats.leaks[0]})"))
    return 0 if (errors == 0 and not crashed and not stats.leaks) else 1


if __name__ == "__main__":
    sys.exit(main())
