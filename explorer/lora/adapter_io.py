"""Adapters out and in, in PEFT's own format (``adapter_model.safetensors`` + ``adapter_config.json``).

Download: PEFT's ``save_pretrained`` for the run's adapter, zipped. Upload: a ``.safetensors`` file
(or the ``.zip`` this lens downloads) is read with ``safetensors`` only (never pickle), every tensor
is checked against the base model's module names and shapes (``lora_A``: ``(r, in_features)``,
``lora_B``: ``(out_features, r)``, one ``r`` throughout), and the adapter is attached to a
weight-sharing shadow of the base, owned by the uploading session.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
import zipfile
from dataclasses import replace

from explorer.core.config import get_limits
from explorer.lora.train import LoraRun, adapter_name_for, register
from explorer.lora.model import LoraSettings, base_engine, count_parameters, shadow_copy

PREFIX = "base_model.model."
SUFFIXES = (".lora_A.weight", ".lora_B.weight")
REFUSED = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def save_adapter(run: LoraRun, folder: str) -> str:
    """Write ``run``'s adapter with PEFT's ``save_pretrained`` and zip it; returns the zip path.

    Raises:
        ValueError: the run has no adapter (it failed and was discarded).
    """
    if run.peft_model is None:
        raise ValueError(f"Run {run.run_id} has no adapter to download (it failed and was discarded).")
    tmp = tempfile.mkdtemp(prefix="lora-save-")
    try:
        with run.engine.turn():
            run.peft_model.save_pretrained(tmp, selected_adapters=[run.adapter_name])
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, f"lora-{run.run_id}.zip")
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for root, _dirs, files in os.walk(tmp):
                for name in files:
                    if name == "adapter_config.json":
                        config = json.load(open(os.path.join(root, name), encoding="utf-8"))
                        config["base_model_name_or_path"] = run.engine.spec.hub_id
                        archive.writestr(name, json.dumps(config, indent=2))
                    elif name.endswith(".safetensors"):
                        archive.write(os.path.join(root, name), name)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_upload(path: str, max_bytes: int) -> tuple[dict, dict]:
    """Read an uploaded adapter: ``(state dict of tensors, adapter_config dict or {})``.

    Raises:
        ValueError: over ``max_bytes`` (bytes), a pickle-based file, not a valid safetensors/zip.
    """
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ValueError(f"The adapter file is {size:,} bytes; the cap is {max_bytes:,} bytes.")
    lower = path.lower()
    if lower.endswith(REFUSED):
        raise ValueError("Pickle-based adapter files (.bin/.pt) are refused; upload adapter_model.safetensors.")
    if lower.endswith(".safetensors"):
        with open(path, "rb") as handle:
            return _load_safetensors(handle.read()), {}
    if not lower.endswith(".zip"):
        raise ValueError("Upload a .safetensors file (or the .zip this tab downloads).")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            config_names = [n for n in names if n.endswith("adapter_config.json")]
            weights = [n for n in names if n.endswith(".safetensors")]
            unpacked = sum(archive.getinfo(n).file_size for n in names)
            blobs = {n: archive.read(n) for n in weights + config_names[:1]} if unpacked <= max_bytes else {}
    except zipfile.BadZipFile as exc:
        raise ValueError(f"The upload is not a valid zip archive: {exc}") from None
    if any(n.lower().endswith(REFUSED) for n in names):
        raise ValueError("The zip holds pickle-based weights (.bin/.pt), which are refused; only .safetensors is accepted.")
    if len(weights) != 1:
        raise ValueError("The zip must hold exactly one .safetensors file (and optionally adapter_config.json).")
    if unpacked > max_bytes:
        raise ValueError(f"The unpacked adapter is {unpacked:,} bytes; the cap is {max_bytes:,} bytes.")
    try:
        config = json.loads(blobs[config_names[0]]) if config_names else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"adapter_config.json is not valid JSON: {exc}") from None
    return _load_safetensors(blobs[weights[0]]), config


def _load_safetensors(data: bytes) -> dict:
    from safetensors.torch import load as load_bytes

    try:
        return load_bytes(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for corrupt files
        raise ValueError(f"The upload is not a valid safetensors file ({type(exc).__name__}: {exc}).") from None


def validate_adapter(state: dict, model, model_name: str) -> tuple[int, dict[str, tuple[int, int]]]:
    """Check every tensor against ``model``; return ``(r, {module path: (in_features, out_features)})``.

    Raises:
        ValueError: unsupported keys, modules the model lacks, or shapes that do not fit (the message
            says the adapter was made for a different base model).
    """
    import torch

    if not state:
        raise ValueError("The adapter file holds no tensors.")
    modules = dict(model.named_modules())
    found: dict[str, dict[str, tuple]] = {}
    for key, tensor in state.items():
        suffix = next((s for s in SUFFIXES if key.endswith(s)), None)
        if suffix is None or not key.startswith(PREFIX):
            raise ValueError(f"Unsupported tensor {key!r}: only PEFT LoRA weights (…lora_A.weight / …lora_B.weight) "
                             "are accepted.")
        path = key[len(PREFIX):-len(suffix)]
        module = modules.get(path)
        if not isinstance(module, torch.nn.Linear):
            raise ValueError(f"This adapter was made for a different base model: {model_name} has no linear layer "
                             f"{path!r}.")
        found.setdefault(path, {})[suffix] = tuple(tensor.shape)
    ranks = set()
    for path, shapes in found.items():
        if set(shapes) != set(SUFFIXES):
            raise ValueError(f"The adapter is incomplete: {path!r} lacks lora_A or lora_B.")
        module = modules[path]
        r = shapes[".lora_A.weight"][0]
        want_a, want_b = (r, module.in_features), (module.out_features, r)
        if shapes[".lora_A.weight"] != want_a or shapes[".lora_B.weight"] != want_b:
            raise ValueError(f"This adapter was made for a different base model: {path} needs lora_A {want_a} and "
                             f"lora_B {want_b} in {model_name}, the file has {shapes['.lora_A.weight']} and "
                             f"{shapes['.lora_B.weight']}.")
        ranks.add(r)
    if len(ranks) != 1:
        raise ValueError(f"The adapter mixes ranks {sorted(ranks)}; one rank r is supported.")
    return ranks.pop(), {p: (modules[p].in_features, modules[p].out_features) for p in found}


def load_adapter(owner: str, path: str, model: str | None = None, engine=None, config: dict | None = None,
                 keep: bool = True) -> LoraRun:
    """Validate an uploaded adapter and register it as a run of ``owner`` (status ``uploaded``).

    ``lora_alpha`` and ``use_rslora`` come from ``adapter_config.json`` when the upload holds one (or from
    ``config``, a stored adapter's config, when given); a bare ``.safetensors`` gets ``lora_alpha = r`` (scale 1),
    as the file does not record alpha. ``keep=False`` returns the run without registering it (a one-request
    adapter, e.g. the ``refusal_adapter`` injection defence, that must not evict anyone's runs).

    Raises:
        ValueError: see :func:`read_upload` and :func:`validate_adapter`.
    """
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    if not owner:
        raise ValueError("No session id: reload the page.")
    state, found = read_upload(path, get_limits().max_adapter_bytes)
    config = found if config is None else config
    settings = LoraSettings(**({"model": model} if model else {}))
    engine = engine or base_engine(settings)
    r, targets = validate_adapter(state, engine.model, engine.name)
    alpha = float(config.get("lora_alpha", r))
    settings = replace(settings, r=r, lora_alpha=alpha, use_rslora=bool(config.get("use_rslora", False)), steps=0,
                       target_modules=tuple(sorted({p.split(".")[-1] for p in targets})))
    run_id = uuid.uuid4().hex[:12]
    name = adapter_name_for(owner, run_id)
    lora_config = LoraConfig(r=r, lora_alpha=alpha, use_rslora=settings.use_rslora, target_modules=sorted(targets),
                             lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    with engine.session(grad=True):
        peft_model = get_peft_model(shadow_copy(engine.model), lora_config, adapter_name=name)
        result = set_peft_model_state_dict(peft_model, state, adapter_name=name)
        peft_model.base_model.disable_adapter_layers()
        peft_model.eval()
    if [k for k in result.unexpected_keys if "lora_" in k]:
        raise ValueError(f"The adapter has tensors the model could not place: {result.unexpected_keys[:3]}.")
    for param_name, param in peft_model.named_parameters():
        if "lora_" in param_name:
            param.requires_grad_(False)
    trainable = sum(int(t.numel()) for t in state.values())
    _, total = count_parameters(engine.model, replace(settings, r=0))
    run = LoraRun(run_id=run_id, owner=owner, settings=settings, engine=engine, peft_model=peft_model,
                  adapter_name=name, dataset_name=os.path.basename(path), trainable_params=trainable,
                  total_params=total + trainable, status="uploaded", started=time.time(),
                  message=f"Uploaded adapter: r={r}, lora_alpha={alpha:g}, {len(targets)} layers"
                          + ("" if config else " (no adapter_config.json: lora_alpha taken as r)") + ".")
    if keep:
        register(run)
    return run
