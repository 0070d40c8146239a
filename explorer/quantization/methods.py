"""Quantisation methods: a registry of ways to store the weights, and the cache of quantised copies.

Each method turns the shared reference model into a *separate* model (a deep copy, then cast or
quantised), cached by ``(model, method key)``; the shared reference is only read, under its lock.

Methods and sources:
- ``reference``: the shared model as loaded (fp32 on CPU, bf16 on GPU). For the embedded SmolLM2 these
  are the Q4_1 GGUF weights dequantised, so "reference" is not a true 16-bit checkpoint.
- ``bf16`` / ``fp16``: a cast copy (bfloat16: 8 exponent bits, 7 mantissa bits; float16: 5 and 10).
- ``int8``: bitsandbytes LLM.int8() (Dettmers et al. 2022, arXiv:2208.07339): row-wise absmax int8
  weights; activation columns above ``threshold`` run in 16 bit (mixed-precision decomposition).
  bitsandbytes casts fp32 activations to fp16 before quantising them.
- ``nf4`` / ``fp4``: bitsandbytes 4-bit (QLoRA, Dettmers et al. 2023, arXiv:2305.14314): blocks of
  ``blocksize`` weights share one absmax scale; NF4 uses the normal-float code book; double
  quantisation stores the absmax scales themselves in 8 bit (blocks of 256).

Embeddings and the output head stay in the reference dtype, as in transformers' bitsandbytes path.
"""
from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from explorer.core.config import get_limits

BLOCK_SIZES = (64, 128, 256, 512, 1024, 2048, 4096)
COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class QuantOptions:
    """Settings of the quantised methods.

    Attributes:
        int8_threshold: LLM.int8() outlier threshold on activation magnitude (0 disables the
            16-bit decomposition); bitsandbytes' default is 6.0.
        blocksize: weights per 4-bit block sharing one absmax scale (64 = QLoRA default).
        double_quant: quantise the 4-bit absmax scales to 8 bit (QLoRA "double quantisation").
        compute_dtype: dtype the 4-bit layers compute in; ``auto`` = the reference dtype.
    """

    int8_threshold: float = 6.0
    blocksize: int = 64
    double_quant: bool = True
    compute_dtype: str = "auto"

    def validate(self) -> "QuantOptions":
        """Return self, or raise ``ValueError`` naming the bad setting."""
        if not 0.0 <= float(self.int8_threshold) <= 100.0:
            raise ValueError(f"The int8 outlier threshold must be between 0 and 100, not {self.int8_threshold}.")
        if int(self.blocksize) not in BLOCK_SIZES:
            raise ValueError(f"The 4-bit block size must be one of {BLOCK_SIZES}, not {self.blocksize}.")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"The compute dtype must be one of {COMPUTE_DTYPES}, not {self.compute_dtype!r}.")
        return self


@dataclass(frozen=True)
class Method:
    """One registry entry.

    Attributes:
        name: API name (``reference``, ``bf16``, ``fp16``, ``int8``, ``nf4``, ``fp4``).
        label: what the UI shows.
        nominal_bits: bits per quantised weight before scales (``None`` = the reference dtype's).
        key: ``options -> str``, the cache key of the variant these options build.
        build: ``(private_copy, options) -> model``: casts or quantises a deep copy of the reference (never
            the shared model itself; the copy is made under the reference's lock, the build runs outside it).
    """

    name: str
    label: str
    nominal_bits: float | None
    key: Callable[[QuantOptions], str]
    build: Callable | None


def quantizable_linear_names(model) -> list[str]:
    """Names of the linear layers a method quantises: every ``nn.Linear`` except the output head.

    bitsandbytes layers subclass ``nn.Linear``, so the same names come back from a quantised copy.
    """
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not head]


def _cast(dtype_name: str):
    def build(model, options: QuantOptions):
        import torch

        return model.to(getattr(torch, dtype_name))
    return build


def _compute_dtype(reference, options: QuantOptions):
    import torch

    if options.compute_dtype == "auto":
        return next(reference.parameters()).dtype
    return getattr(torch, options.compute_dtype)


class _CastNoticeFilter:
    """Drops bitsandbytes' per-call "MatMul8bitLt: inputs will be cast ... to float16" log line."""

    def filter(self, record) -> bool:
        return not str(record.msg).startswith("MatMul8bitLt: inputs will be cast")


def _build_int8(model, options: QuantOptions):
    import logging

    import bitsandbytes as bnb

    # LLM.int8 casts fp32 activations to fp16 before quantising them and logs it on every call (said in the docs).
    log = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _CastNoticeFilter) for f in log.filters):
        log.addFilter(_CastNoticeFilter())

    for name in quantizable_linear_names(model):
        old = model.get_submodule(name)
        new = bnb.nn.Linear8bitLt(old.in_features, old.out_features, old.bias is not None,
                                  has_fp16_weights=False, threshold=float(options.int8_threshold),
                                  device="meta")
        device = old.weight.device
        new.weight = bnb.nn.Int8Params(old.weight.detach().to("cpu").clone(), requires_grad=False,
                                       has_fp16_weights=False).to(device)
        if old.bias is not None:
            new.bias = old.bias
        new.requires_grad_(False)
        model.set_submodule(name, new)
    return model


def _build_4bit(quant_type: str):
    def build(model, options: QuantOptions):
        import bitsandbytes as bnb

        compute_dtype = _compute_dtype(model, options)
        for name in quantizable_linear_names(model):
            old = model.get_submodule(name)
            new = bnb.nn.Linear4bit(old.in_features, old.out_features, old.bias is not None,
                                    compute_dtype=compute_dtype, compress_statistics=bool(options.double_quant),
                                    quant_type=quant_type, device="meta")
            # Keep bitsandbytes' canonical storage: the AVX512-BF16 CPU path would repack the weight on
            # its first call and round the scales to bf16, changing the bytes and values measured here.
            new.support_avx512bf16_for_cpu = False
            device = old.weight.device
            new.weight = bnb.nn.Params4bit(old.weight.detach().to("cpu").clone(), requires_grad=False,
                                           blocksize=int(options.blocksize),
                                           compress_statistics=bool(options.double_quant),
                                           quant_type=quant_type, module=new).to(device)
            if old.bias is not None:
                new.bias = old.bias
            new.requires_grad_(False)
            model.set_submodule(name, new)
        return model
    return build


def _key_4bit(quant_type: str):
    return lambda o: f"{quant_type}:block={int(o.blocksize)}:double={int(bool(o.double_quant))}:compute={o.compute_dtype}"


METHODS: dict[str, Method] = {
    "reference": Method("reference", "reference (as loaded)", None, lambda o: "reference", None),
    "bf16": Method("bf16", "bfloat16", 16, lambda o: "bf16", _cast("bfloat16")),
    "fp16": Method("fp16", "float16", 16, lambda o: "fp16", _cast("float16")),
    "int8": Method("int8", "LLM.int8 (bitsandbytes)", 8,
                   lambda o: f"int8:threshold={float(o.int8_threshold):g}", _build_int8),
    "nf4": Method("nf4", "NF4 (bitsandbytes)", 4, _key_4bit("nf4"), _build_4bit("nf4")),
    "fp4": Method("fp4", "FP4 (bitsandbytes)", 4, _key_4bit("fp4"), _build_4bit("fp4")),
}


def check_methods(methods) -> list[str]:
    """Validate a list of method names; return it without duplicates, ``reference`` first.

    Raises:
        ValueError: empty list or an unknown name (the message lists the known ones).
    """
    names = [str(m).strip().lower() for m in (methods or []) if str(m).strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown quantisation method(s) {unknown}; choose from {list(METHODS)}.")
    if not names:
        raise ValueError(f"Choose at least one method from {list(METHODS)}.")
    ordered = ["reference"] + [m for m in dict.fromkeys(names) if m != "reference"]
    return ordered


def estimate_copy_bytes(model) -> int:
    """Bytes a quantised copy needs while it is built (bytes): a full copy of the reference's weights."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def check_fits(engine, methods: list[str]) -> None:
    """Refuse up front when building the requested copies would not fit in memory.

    Estimate: one transient full copy of the reference (built copies are smaller or equal).
    Raises:
        ValueError: the estimate exceeds 80 % of the free memory of the model's device (message gives both).
    """
    import torch

    if all(m == "reference" for m in methods):
        return
    need = estimate_copy_bytes(engine.model)
    if engine.device.type == "cuda":
        free = torch.cuda.mem_get_info(engine.device)[0]
    else:
        import psutil

        free = psutil.virtual_memory().available
    if need > 0.8 * free:
        raise ValueError(f"Quantising {engine.name} needs a temporary copy of about {need / 2**30:.2f} GiB, "
                         f"but only {free / 2**30:.2f} GiB is free on {engine.device.type}. "
                         "Choose a smaller model or only the reference.")


def tensor_bytes(model) -> dict[str, int]:
    """Measured storage of a model's weights (bytes), read from the loaded modules.

    Counts every parameter once (tied weights once), plus the quantisation state bitsandbytes keeps
    beside quantised weights: 4-bit absmax scales (and the nested scales, code books and offset of
    double quantisation) and the int8 row scales (``SCB``).

    Returns:
        ``{"weight_bytes": all weights, "linear_weight_bytes": only the quantisable linear layers
        (weights, biases and their quantisation state)}``.
    """
    import torch

    seen: set[int] = set()

    def count(t) -> int:
        if not isinstance(t, torch.Tensor) or t.data_ptr() in seen:
            return 0
        seen.add(t.data_ptr())
        return t.numel() * t.element_size()

    def module_bytes(module) -> int:
        total = sum(count(p) for p in module.parameters(recurse=False))
        weight = getattr(module, "weight", None)
        state = getattr(weight, "quant_state", None)
        if state is not None:
            total += count(state.absmax) + count(state.code) + count(getattr(state, "offset", None))
            if getattr(state, "state2", None) is not None:
                total += count(state.state2.absmax) + count(state.state2.code)
        scb = getattr(weight, "SCB", None)
        if scb is None and getattr(module, "state", None) is not None:
            scb = getattr(module.state, "SCB", None)
        return total + count(scb)

    names = set(quantizable_linear_names(model))
    linear = sum(module_bytes(model.get_submodule(n)) for n in names)
    rest = sum(module_bytes(m) for n, m in model.named_modules() if n not in names)
    return {"weight_bytes": linear + rest, "linear_weight_bytes": linear}


@dataclass
class Variant:
    """A built method: its engine (own lock), cache key, build time (seconds) and measured bytes."""

    method: str
    key: str
    engine: object
    prepare_s: float
    weight_bytes: int
    linear_weight_bytes: int
    source: object = None  # the reference model it was built from (identity check for the cache)
    note: str | None = None  # caveat found while building (e.g. a kernel that disagrees with the stored values)


_VARIANTS: "OrderedDict[tuple, Variant]" = OrderedDict()
_VARIANTS_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple, threading.Lock] = {}


def get_variant(engine, method: str, options: QuantOptions | None = None) -> Variant:
    """Build (once) and return the ``method`` copy of ``engine``'s model.

    The reference is deep-copied under its lock (read only), then cast or quantised outside it. The
    copy is cached by ``(model name, method key)`` with the reference object's identity checked; copies
    beyond ``Limits.max_quantized_bytes`` of weights are dropped, least recently used first.

    Raises:
        ValueError: unknown method or bad options.
        Exception: whatever bitsandbytes raises when a kernel is missing on this device (callers
            report it in that method's column).
    """
    from explorer.core.engine import Engine
    from models.loading import LoadedModel

    options = (options or QuantOptions()).validate()
    spec = METHODS[check_methods([method])[-1]]
    key = spec.key(options)
    if spec.build is None:
        sizes = tensor_bytes(engine.model)
        return Variant(method, key, engine, 0.0, sizes["weight_bytes"], sizes["linear_weight_bytes"], engine.model)
    cache_key = (engine.name, key)
    with _VARIANTS_LOCK:
        lock = _KEY_LOCKS.setdefault(cache_key, threading.Lock())
    with lock:
        with _VARIANTS_LOCK:
            hit = _VARIANTS.get(cache_key)
            if hit is not None and hit.source is engine.model:
                _VARIANTS.move_to_end(cache_key)
                return hit
        start = time.perf_counter()
        with engine.lock:  # read-only copy; the slow quantisation below runs without the shared lock
            model = copy.deepcopy(engine.model)
        model = spec.build(model, options)
        model.eval()
        model.requires_grad_(False)
        prepare_s = time.perf_counter() - start
        dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
        loaded = LoadedModel(spec=engine.spec, model=model, tokenizer=engine.tokenizer, device=engine.device,
                             dtype=dtype, quantization=key, path=getattr(engine.loaded, "path", None),
                             load_seconds=prepare_s)
        sizes = tensor_bytes(model)
        from explorer.quantization.error import kernel_check

        variant = Variant(method, key, Engine(loaded), prepare_s, sizes["weight_bytes"],
                          sizes["linear_weight_bytes"], engine.model, note=kernel_check(model))
        with _VARIANTS_LOCK:
            _VARIANTS[cache_key] = variant
            _evict(get_limits().max_quantized_bytes)
        return variant


def _evict(budget_bytes: int) -> None:
    """Drop least recently used copies until their weights fit ``budget_bytes`` (the newest always stays)."""
    while len(_VARIANTS) > 1 and sum(v.weight_bytes for v in _VARIANTS.values()) > budget_bytes:
        _VARIANTS.popitem(last=False)


def cached_variants(model_name: str | None = None) -> list[Variant]:
    """The variants built so far (optionally only those of one model), oldest first."""
    with _VARIANTS_LOCK:
        return [v for (name, _), v in _VARIANTS.items() if model_name is None or name == model_name]


def clear_variants() -> None:
    """Drop every cached variant (tests and memory pressure)."""
    with _VARIANTS_LOCK:
        _VARIANTS.clear()
