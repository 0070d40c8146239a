"""The ``"refusal_adapter"`` defence: a refusal DPO adapter trained once by the bench and stored in PEFT format.

``bench/train_refusal_adapter.py`` trains it with the Fine-tuning tab's DPO machinery (:mod:`explorer.lora.dpo`: a
LoRA adapter on a weight-sharing shadow of SmolLM2, the shared model never mutated) on :data:`PAIRS_PATH`, preference
pairs the project writes: *chosen* answers only the user's question (or refuses to tell a secret), *rejected* obeys an
instruction injected in a passage (says a canary). The pairs use other canaries, other attack wordings and other
questions than the ``/injection`` items (no train/test overlap). It saves PEFT's ``save_pretrained`` output under
:data:`ADAPTER_DIR` with ``manifest.json`` (command, versions, settings, SHA-256 of the adapter and of the pairs).

At run time :func:`load_refusal_run` checks the adapter file's SHA-256 against the manifest (a mismatch refuses with
a clear message), validates and attaches it to a fresh per-request LoRA shadow through
:func:`explorer.lora.adapter_io.load_adapter` (the same path as the Fine-tuning tab's upload), and the injection
items are generated with ``patches=adapter_patches(run)``, the adapter on only inside those passes.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADAPTER_DIR = os.path.join(ROOT, "data", "agents", "refusal_adapter")
PAIRS_PATH = os.path.join(ROOT, "data", "agents", "refusal_pairs.jsonl")
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
MANIFEST = "manifest.json"
ADAPTER_MODEL = "smollm2-135m-instruct"  # the only model with a stored adapter
TRAIN_SETTINGS = {"steps": 8, "learning_rate": 2e-3, "beta": 0.1, "rank": 8, "alpha": 16.0, "batch_size": 2,
                  "seed": 0, "kl_every": 8, "target_modules": ["q_proj", "v_proj", "o_proj"],
                  "model": ADAPTER_MODEL}


def sha256_file(path: str) -> str:
    """Hex SHA-256 of the file at ``path`` (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: str | None = None) -> dict:
    """The stored adapter's manifest, after checking the adapter file's SHA-256 against it.

    Raises:
        ValueError: no stored adapter (names the bench command that makes one), or the hash does not match.
    """
    folder = folder or ADAPTER_DIR
    manifest_path, weights = os.path.join(folder, MANIFEST), os.path.join(folder, WEIGHTS)
    if not (os.path.isfile(manifest_path) and os.path.isfile(weights)):
        raise ValueError("defence 'refusal_adapter': no stored refusal adapter in data/agents/refusal_adapter/; "
                         "make it once with `python bench/train_refusal_adapter.py`.")
    with open(manifest_path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    actual = sha256_file(weights)
    if actual != manifest.get("adapter_sha256"):
        raise ValueError(f"defence 'refusal_adapter' refused: the stored adapter's SHA-256 {actual[:12]}… does not "
                         f"match its manifest ({str(manifest.get('adapter_sha256'))[:12]}…); the file was changed. "
                         "Retrain it with `python bench/train_refusal_adapter.py`.")
    return manifest


def check_model(name: str) -> None:
    """Raises ValueError naming ``model`` unless ``name`` is the model the adapter was trained for."""
    if name != ADAPTER_MODEL:
        raise ValueError(f"model: defence 'refusal_adapter' has a stored adapter for {ADAPTER_MODEL} only, not "
                         f"{name} (Gemma base has none); pick {ADAPTER_MODEL} or another defence.")


def load_refusal_run(engine, folder: str | None = None):
    """Hash-check the stored adapter and attach it to a fresh LoRA shadow of ``engine``'s model.

    Returns:
        ``(run, manifest)``: ``run`` an unregistered :class:`explorer.lora.train.LoraRun` owned by a one-request
        owner id (drop it with :func:`release`), ``manifest`` the stored manifest.
    Raises:
        ValueError: see :func:`read_manifest`; an adapter that does not fit the model.
    """
    from explorer.lora.adapter_io import load_adapter

    folder = folder or ADAPTER_DIR
    manifest = read_manifest(folder)
    with open(os.path.join(folder, CONFIG), encoding="utf-8") as handle:
        config = json.load(handle)
    owner = f"refusal-adapter-{uuid.uuid4().hex[:8]}"
    run = load_adapter(owner, os.path.join(folder, WEIGHTS), engine=engine, config=config, keep=False)
    return run, manifest


def release(run) -> None:
    """Drop the per-request run's adapter (its shadow goes with it); the shared model was never touched."""
    run.fail("refusal_adapter request finished")
