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

The bitsandbytes methods are described by ``transformers.BitsAndBytesConfig`` (:func:`bnb_config`) and their
layers are swapped in by transformers' ``replace_with_bnb_linear``; only the 4-bit block size, which the
config cannot express, is passed to bitsandbytes directly. The default NF4 copy is also the QLoRA base
(:func:`nf4_base`), so it is built and counted once.

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
from explorer.quantization.error import kernel_check
from explorer.quantization.layers import output_head_names
from explorer.quantization.layers import quantizable_linear_names as _linear_names

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
    """One registry entry: everything the tab needs to show and build a method.

    Attributes:
        name: API name (``reference``, ``bf16``, ``fp16``, ``int8``, ``nf4``, ``fp4``).
        label: what the UI shows.
        explanation: one sentence on how it stores the weights (and its source).
        nominal_bits: bits per quantised weight before scales (``None`` = the reference dtype's).
        key: ``options -> str``, the cache key of the variant these options build.
        build: ``(private_copy, options) -> model``: casts or quantises a deep copy of the reference (never
            the shared model itself; the copy is made under the reference's lock, the build runs outside it);
            ``None`` for the reference itself.
    """

    name: str
    label: str
    explanation: str
    nominal_bits: float | None
    key: Callable[[QuantOptions], str]
    build: Callable | None


def quantizable_linear_names(model) -> list[str]:
    """Every ``nn.Linear`` except the output head (see :func:`explorer.quantization.layers.quantizable_linear_names`)."""
    return _linear_names(model)


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


def bnb_config(method: str, options: QuantOptions, reference=None):
    """The ``transformers.BitsAndBytesConfig`` that expresses ``method`` with ``options``.

    ``int8`` -> ``load_in_8bit`` with ``llm_int8_threshold``; ``nf4`` / ``fp4`` -> ``load_in_4bit`` with the
    quant type, double quantisation and compute dtype (``auto`` = ``reference``'s dtype). The 4-bit block size
    is the one setting the config cannot express; the builder passes it to ``bitsandbytes.nn.Params4bit``.
    """
    from transformers import BitsAndBytesConfig

    if method == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=float(options.int8_threshold))
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=method,
                              bnb_4bit_use_double_quant=bool(options.double_quant),
                              bnb_4bit_compute_dtype=_compute_dtype(reference, options) if reference is not None
                              else None)


def _build_bnb(method: str):
    """Builder of a bitsandbytes method: transformers' ``replace_with_bnb_linear`` swaps every linear layer
    (output head excluded) for the layer the :func:`bnb_config` describes, then each layer's weight is quantised
    from the copy's own weight the way transformers' bitsandbytes loader does (``Int8Params`` / ``Params4bit``
    built from the new layer's parameter settings)."""
    def build(model, options: QuantOptions):
        import logging

        import bitsandbytes as bnb
        from transformers.integrations.bitsandbytes import replace_with_bnb_linear

        if method == "int8":  # LLM.int8 casts fp32 activations to fp16 and logs it on every call (said in the docs)
            log = logging.getLogger("bitsandbytes.autograd._functions")
            if not any(isinstance(f, _CastNoticeFilter) for f in log.filters):
                log.addFilter(_CastNoticeFilter())
        config = bnb_config(method, options, model)
        old = {name: model.get_submodule(name) for name in _linear_names(model)}
        replace_with_bnb_linear(model, modules_to_not_convert=output_head_names(model), quantization_config=config)
        for name, previous in old.items():
            new = model.get_submodule(name)
            weight, device = previous.weight.detach().to("cpu").clone(), previous.weight.device
            settings = {k: v for k, v in new.weight.__dict__.items() if k not in ("SCB", "module")}
            if method == "int8":
                new.weight = bnb.nn.Int8Params(weight, requires_grad=False, **settings).to(device)
            else:
                # Keep bitsandbytes' canonical storage: the AVX512-BF16 CPU path would repack the weight on
                # its first call and round the scales to bf16, changing the bytes and values measured here.
                new.support_avx512bf16_for_cpu = False
                settings["blocksize"] = int(options.blocksize)  # the one setting BitsAndBytesConfig cannot express
                new.weight = bnb.nn.Params4bit(weight, requires_grad=False, module=new, **settings).to(device)
            if previous.bias is not None:
                new.bias = previous.bias
            new.requires_grad_(False)
        return model
    return build


def _key_4bit(quant_type: str):
    return lambda o: f"{quant_type}:block={int(o.blocksize)}:double={int(bool(o.double_quant))}:compute={o.compute_dtype}"


# Add a method here: a Method with its own builder; tests/contracts/test_quant_methods.py builds and runs every entry.
METHODS: dict[str, Method] = {
    "reference": Method("reference", "reference (as loaded)", "The shared model as loaded (fp32 on CPU, bf16 on GPU).",
                        None, lambda o: "reference", None),
    "bf16": Method("bf16", "bfloat16", "A cast copy: 8 exponent bits, 7 mantissa bits.", 16, lambda o: "bf16",
                   _cast("bfloat16")),
    "fp16": Method("fp16", "float16", "A cast copy: 5 exponent bits, 10 mantissa bits.", 16, lambda o: "fp16",
                   _cast("float16")),
    "int8": Method("int8", "LLM.int8 (bitsandbytes)", "Row-wise absmax int8 weights; activation columns above the "
                   "threshold run in 16 bit (Dettmers et al. 2022).", 8,
                   lambda o: f"int8:threshold={float(o.int8_threshold):g}", _build_bnb("int8")),
    "nf4": Method("nf4", "NF4 (bitsandbytes)", "4-bit normal-float codes, one absmax scale per block (QLoRA, "
                  "Dettmers et al. 2023); the same copy is the QLoRA base.", 4, _key_4bit("nf4"), _build_bnb("nf4")),
    "fp4": Method("fp4", "FP4 (bitsandbytes)", "4-bit floating-point codes, one absmax scale per block.", 4,
                  _key_4bit("fp4"), _build_bnb("fp4")),
}

# The QLoRA base (NF4, blocks of 64, double quantisation, compute in the reference dtype) is exactly the
# Quantisation tab's default NF4 copy, so both use one cached copy (see :func:`nf4_base`).
QLORA_OPTIONS = QuantOptions(blocksize=64, double_quant=True, compute_dtype="auto")


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
        with engine.turn():  # read-only copy; the slow quantisation below runs without the shared lock
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


def nf4_base(engine):
    """The NF4 copy of ``engine``'s model that QLoRA trains on: the Quantisation tab's default NF4 variant
    (:data:`QLORA_OPTIONS`), built once and cached here, counted once against ``Limits.max_quantized_bytes``.

    Returns:
        the variant's :class:`explorer.core.engine.Engine` (its own lock; the shared model is untouched).
    Raises:
        Exception: whatever bitsandbytes raises when 4-bit is unsupported on this device.
    """
    return get_variant(engine, "nf4", QLORA_OPTIONS).engine


def clear_variants() -> None:
    """Drop every cached variant (tests and memory pressure)."""
    with _VARIANTS_LOCK:
        _VARIANTS.clear()
