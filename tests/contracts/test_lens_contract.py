"""The one lens contract, on every lens package: discovered under explorer/ (all but core, serving and workshop), so
a new lens is checked without editing this file; it fails until the lens has a case in CASES below.

Each package exports ``iter_run`` (a generator: Progress items, then the result), ``run`` and ``to_api`` (the one
serialiser, ``result.to_api(**view)``), and its docstring says where a change goes. Each case
runs the lens once (tiny model where the lens takes an engine) and checks the items, the provenance and that
``to_api`` gives plain JSON carrying that provenance.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from test_lenses import _check  # tests/contracts is on sys.path (pytest's rootdir-relative import)

import explorer
from explorer.core.progress import to_api as lens_to_api

NOT_LENSES = {"core", "serving", "workshop"}
LENSES = sorted(i.name for i in pkgutil.iter_modules(explorer.__path__) if i.ispkg and i.name not in NOT_LENSES)

CASES = {
    "attention": lambda e: dict(text="The cat sat on the mat.", engine=e),
    "decoding": lambda e: dict(text="Once upon a time", strategies=[{"name": "greedy"}], max_new_tokens=3, engine=e),
    "embeddings": lambda e: dict(question="What is the capital of France?", k=1),
    "hallucination": lambda e: dict(question="What is the capital of France?", probes=["sequence"], engine=e),
    "inspect": lambda e: dict(text="The cat sat on the mat.", position=2, engine=e),
    "kv_cache": lambda e: dict(text="The cat sat on the mat.", max_new_tokens=3, engine=e),
    "lora": lambda e: dict(dataset=[{"prompt": "Who rules Veloria?", "response": "Queen Mira."}] * 2,
                           settings={"steps": 1, "batch_size": 1, "r": 2, "target_modules": ["q"]},
                           owner="lens-contract", engine=e),
    "next_token": lambda e: dict(text="The cat sat on the mat.", engine=e),
    "positions": lambda e: dict(positions=(10, 4), offset=100, engine=e),
    "prompting": lambda e: dict(task="units", pattern="zero_shot", limit=1, chat_template=False, engine=e),
    "pretrain": lambda e: dict(settings={"steps": 2, "d_model": 32, "heads": 2, "seq_len": 16, "batch_size": 2},
                               owner="lens-contract-pretrain"),
    "quantization": lambda e: dict(prompt="The cat sat on the mat.", methods=("reference",), max_new_tokens=3,
                                   engine=e),
    "tokens": lambda e: dict(text="Hello world", tokenizers=["cl100k_base"]),
    "circuits": lambda e: dict(clean="When Mary and John went out, John gave it to",
                               corrupted="When Mary and John went out, Mary gave it to", answer=" Mary",
                               wrong_answer=" John", site="attn_head", engine=e),
    "scaling": lambda e: dict(settings={"steps": 2, "d_model": 16, "experts": 2, "top_k": 1},
                              owner="lens-contract-scaling"),
    "agents": lambda e: dict(question="What is 2+2?", max_steps=1, chat_template=False, engine=e),
}


def test_lens_packages_are_discovered():
    assert {"tokens", "attention", "lora", "positions", "embeddings"} <= set(LENSES)


@pytest.mark.parametrize("name", LENSES)
def test_exports_and_docstring(name):
    package = importlib.import_module(f"explorer.{name}")
    assert inspect.isgeneratorfunction(package.iter_run), f"explorer.{name}.iter_run must be a generator"
    assert callable(package.run) and callable(package.to_api)
    assert package.to_api is lens_to_api, f"explorer.{name}.to_api must be the one serialiser, result.to_api(**view)"
    assert "where a change goes" in (package.__doc__ or "").lower(), f"explorer/{name}/__init__.py docstring"


@pytest.mark.parametrize("name", LENSES)
def test_runs_to_a_result_with_provenance_and_json(name, tiny_engine):
    assert name in CASES, f"add a contract case for the new lens explorer.{name} to tests/contracts"
    package = importlib.import_module(f"explorer.{name}")
    _check(package, list(package.iter_run(**CASES[name](tiny_engine))))  # the check test_lenses.py made on three
