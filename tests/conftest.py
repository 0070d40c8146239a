"""Shared fixtures: a tiny random Llama engine, the real embedded models, the app in-process.

Under CI (``CI=true``) a test that skips because something is missing fails instead, unless it is
marked ``@pytest.mark.optional_skip`` (used only for GPU-only checks).
"""
from __future__ import annotations

import os
import socket

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

TEST_OUTPUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test-output")


def pytest_configure(config):
    config.addinivalue_line("markers", "optional_skip: a skip allowed under CI (e.g. needs a GPU)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    if in_ci and report.skipped and item.get_closest_marker("optional_skip") is None:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which counts as a failure: {report.longrepr}"


def make_tiny_engine(num_heads: int = 4, num_kv_heads: int = 2, num_layers: int = 2, hidden: int = 64,
                     seed: int = 0, vocab_size: int | None = None):
    """An :class:`explorer.core.engine.Engine` around a tiny randomly initialised Llama.

    Uses the SmolLM2 tokenizer (so ids are real) with a model of ``num_layers`` layers,
    ``num_heads`` query heads and ``num_kv_heads`` KV heads (GQA by default; equal for MHA, 1 for MQA).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from explorer.core.engine import Engine
    from models.loading import LoadedModel, load_model
    from models.registry import ModelSpec

    tokenizer = load_model("smollm2-135m-instruct").tokenizer
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size or len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads,
                         num_key_value_heads=num_kv_heads, max_position_embeddings=2048,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval()
    model.requires_grad_(False)
    spec = ModelSpec(f"tiny-llama-{num_heads}h-{num_kv_heads}kv", "causal-lm", "hub", "tiny", "tiny test model")
    return Engine(LoadedModel(spec=spec, model=model, tokenizer=tokenizer, device=torch.device("cpu"),
                              dtype=torch.float32))


@pytest.fixture(scope="session")
def tiny_engine():
    """Tiny GQA Llama (2 layers, 4 query heads, 2 KV heads) with the SmolLM2 tokenizer."""
    return make_tiny_engine()


@pytest.fixture(scope="session")
def smollm2():
    """The real embedded SmolLM2-135M-Instruct engine (fp32 on CPU)."""
    from explorer.core.engine import get_engine

    return get_engine("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma():
    """The real embedded Gemma 3 270M base engine (fp32 on CPU), loaded once per session from the converted cache."""
    from explorer.core.engine import get_engine

    return get_engine("gemma-3-270m")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _patient_localhost_check() -> None:
    """Gradio's launch() gives up on localhost after one 3 s HEAD request; on a loaded 2-core machine the first
    page render can take longer, so the in-process app is checked with a 60 s budget instead."""
    import time

    import httpx
    from gradio import networking

    def url_ok(url: str) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.head(url, timeout=20, verify=False).status_code < 400:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        return False

    networking.url_ok = url_ok


@pytest.fixture(scope="session")
def app_url():
    """The whole app launched in-process on a free loopback port; yields its URL."""
    from app import CSS, build_demo

    demo = build_demo()
    port = _free_port()
    _patient_localhost_check()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=CSS)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    """A ``gradio_client.Client`` connected to the in-process app."""
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="session")
def test_output_dir():
    """Folder for screenshots and other artefacts of the test run (``test-output/``)."""
    os.makedirs(TEST_OUTPUT, exist_ok=True)
    return TEST_OUTPUT
