"""LoRA settings, the per-run adapter model, parameter counts, ‖BA‖ norms and the merge check.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") freezes a weight
``W`` (out × in) and learns ``ΔW = (alpha / r) · B A`` with ``A`` (r × in) and ``B`` (out × r), so one
targeted linear layer adds ``r · (in + out)`` trainable parameters. rsLoRA (Kalajdzievski 2023)
scales by ``alpha / sqrt(r)`` instead. QLoRA (Dettmers et al. 2023) keeps the frozen base in
4-bit NF4 with double quantisation and trains the same adapters on top. PEFT builds the adapters.

Isolation. PEFT injects its layers by *replacing* the targeted ``nn.Linear`` modules of the model it
wraps. Doing that on the shared model would change it for every other tab and session: module
names (``q_proj`` becomes ``q_proj.base_layer``), ``state_dict`` keys, hooks registered by module,
quantisation code that walks ``nn.Linear`` modules. So each run wraps a *shadow*: a copy of the
module tree whose parameters are the very same tensors as the shared model's (``copy.deepcopy``
with a memo that maps every parameter to itself). The shared model's modules are never touched and
no weight memory is duplicated: a run costs its LoRA matrices and optimiser state (a few MB to tens
of MB), not another ~540 MB fp32 copy of SmolLM2. The frozen weights are only ever read.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from explorer.core.copies import shadow_copy  # noqa: F401 (re-exported: the weight-sharing shadow)
from models.registry import DEFAULT_MODEL

# Short names users pick -> the Llama module names PEFT targets.
MODULE_ALIASES: dict[str, str] = {
    "q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj",
    "gate": "gate_proj", "up": "up_proj", "down": "down_proj",
}
ALL_LINEAR = "all-linear"
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


@dataclass(frozen=True)
class LoraSettings:
    """One run's settings, named as in PEFT's ``LoraConfig`` and transformers' ``TrainingArguments``.

    Attributes:
        r: rank of ``A`` and ``B``. lora_alpha: scale numerator (ΔW = alpha/r · BA).
        lora_dropout: dropout on the adapter's input (probability). target_modules: module names
            (``q_proj``...) or ``("all-linear",)``. use_rslora: scale by alpha/sqrt(r).
        learning_rate: AdamW peak learning rate. steps: optimiser steps. batch_size: examples per step.
        warmup_steps: linear warm-up steps. lr_scheduler_type: one of :data:`SCHEDULERS`.
        max_grad_norm: gradient clipping threshold (global L2 norm; 0 = off). seed: shuffling and init.
        qlora: train on the NF4 base (bitsandbytes) instead of the full-precision one.
        model: base model name.
    """

    r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = (ALL_LINEAR,)
    use_rslora: bool = False
    learning_rate: float = 3e-3
    steps: int = 30
    batch_size: int = 4
    warmup_steps: int = 2
    lr_scheduler_type: str = "linear"
    max_grad_norm: float = 1.0
    seed: int = 0
    qlora: bool = False
    model: str = DEFAULT_MODEL

    @property
    def scaling(self) -> float:
        """The factor on ``BA``: ``alpha / r`` (LoRA) or ``alpha / sqrt(r)`` (rsLoRA)."""
        return self.lora_alpha / (self.r ** 0.5 if self.use_rslora else self.r)

    def as_dict(self) -> dict:
        """Plain-JSON dict of the settings (lists for tuples)."""
        out = asdict(self)
        out["target_modules"] = list(self.target_modules)
        return out


def resolve_targets(value) -> tuple[str, ...]:
    """Normalise target modules: ``"all-linear"``, or names / short names (q, k, v, o, gate, up, down).

    Raises:
        ValueError: empty or unknown names.
    """
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    names = [str(v).strip() for v in (value or []) if str(v).strip()]
    if not names:
        raise ValueError("Pick at least one target module (q, k, v, o, gate, up, down or all-linear).")
    if ALL_LINEAR in names:
        return (ALL_LINEAR,)
    full = []
    for name in names:
        name = MODULE_ALIASES.get(name, name)
        if name not in MODULE_ALIASES.values():
            raise ValueError(f"Unknown target module {name!r}; choose from {list(MODULE_ALIASES)} or {ALL_LINEAR}.")
        if name not in full:
            full.append(name)
    return tuple(full)


_BOUNDS = {"r": (1, 256), "lora_alpha": (1e-6, 4096), "lora_dropout": (0.0, 0.9), "learning_rate": (1e-8, 1e4),
           "batch_size": (1, 64), "warmup_steps": (0, 10_000), "max_grad_norm": (0.0, 1e6)}


def settings_from_dict(values: dict | None, max_steps: int) -> tuple[LoraSettings, list[str]]:
    """Build :class:`LoraSettings` from a dict; missing keys take the defaults.

    Returns:
        ``(settings, notices)``; ``notices`` says what was capped (steps above ``max_steps``) or adapted
        (``warmup_steps`` lowered to ``steps - 1`` when the run is not longer than its warm-up).
    Raises:
        ValueError: unknown keys, values of the wrong type or out of range, unknown scheduler or modules.
    """
    values = dict(values or {})
    known = {f.name: f for f in fields(LoraSettings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"Unknown LoRA setting(s) {unknown}; known: {sorted(known)}.")
    kwargs, notices = {}, []
    defaults = LoraSettings()
    for name, value in values.items():
        if value is None:
            continue
        default = getattr(defaults, name)
        try:
            if name == "target_modules":
                value = resolve_targets(value)
            elif isinstance(default, bool):
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                if float(value) != int(float(value)):
                    raise ValueError
                value = int(float(value))
            elif isinstance(default, float):
                value = float(value)
            else:
                value = str(value)
        except (TypeError, ValueError):
            raise ValueError(f"LoRA setting {name}={value!r} should be a {type(default).__name__}.") from None
        if name in _BOUNDS and not (_BOUNDS[name][0] <= value <= _BOUNDS[name][1]):
            raise ValueError(f"LoRA setting {name}={value} is out of range {list(_BOUNDS[name])}.")
        kwargs[name] = value
    settings = replace(defaults, **kwargs)
    if settings.lr_scheduler_type not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {settings.lr_scheduler_type!r}; choose one of {list(SCHEDULERS)}.")
    if settings.steps < 1:
        raise ValueError("steps must be at least 1.")
    if settings.steps > max_steps:
        notices.append(f"steps capped at {max_steps} (asked for {settings.steps}).")
        settings = replace(settings, steps=max_steps)
    if settings.warmup_steps >= settings.steps and settings.warmup_steps > 0:
        # transformers' warm-up starts at learning rate 0, so a run no longer than its warm-up barely trains
        adapted = settings.steps - 1
        notices.append(f"warmup_steps lowered from {settings.warmup_steps} to {adapted}: with {settings.steps} step(s) "
                       "the warm-up would keep training at or near learning rate 0.")
        settings = replace(settings, warmup_steps=adapted)
    return settings, notices


def peft_config(settings: LoraSettings):
    """The PEFT ``LoraConfig`` for ``settings`` (task ``CAUSAL_LM``, no bias)."""
    from peft import LoraConfig

    targets = ALL_LINEAR if settings.target_modules == (ALL_LINEAR,) else list(settings.target_modules)
    return LoraConfig(r=settings.r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=targets, use_rslora=settings.use_rslora, bias="none", task_type="CAUSAL_LM")


def base_engine(settings: LoraSettings):
    """The shared engine a run trains on: the plain model, or its NF4 variant when ``settings.qlora``.

    Raises:
        ValueError: unknown model, or bitsandbytes cannot build NF4 on this machine.
    """
    from explorer.core.engine import get_engine

    if settings.qlora:
        from explorer.quantization.methods import nf4_base

        try:  # the Quantisation tab's default NF4 copy: one cached copy, counted once
            engine = nf4_base(get_engine(settings.model))
        except ImportError as exc:
            raise ValueError(f"QLoRA needs bitsandbytes with 4-bit support here: {exc}") from exc
    else:
        engine = get_engine(settings.model)
    if not engine.is_causal:
        raise ValueError(f"LoRA here fine-tunes chat language models; {settings.model} is an encoder. "
                         f"Pick {DEFAULT_MODEL}.")
    return engine


def _is_linear(module) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear)


def targeted_linears(model, settings: LoraSettings) -> dict[str, tuple[int, int]]:
    """``{module name: (in_features, out_features)}`` for every layer ``settings`` targets.

    ``all-linear`` follows PEFT: every linear layer except the output head (``lm_head``).
    """
    out_names = {"lm_head"}
    found = {}
    for name, module in model.named_modules():
        if not _is_linear(module) or name.split(".")[-1] in out_names:
            continue
        leaf = name.split(".")[-1]
        if settings.target_modules == (ALL_LINEAR,) or leaf in settings.target_modules:
            found[name] = (int(module.in_features), int(module.out_features))
    return found


def count_parameters(model, settings: LoraSettings) -> tuple[int, int]:
    """``(trainable, all)`` parameters of ``model`` with ``settings``' adapters, computed before training.

    trainable = Σ over targeted layers of ``r · (in + out)`` (Hu et al. 2021); all = base parameters
    (NF4 weights counted as their unpacked element count, as PEFT does) + trainable.
    """
    trainable = sum(settings.r * (i + o) for i, o in targeted_linears(model, settings).values())
    base = 0
    for p in model.parameters():
        n = p.numel()
        if p.__class__.__name__ == "Params4bit":
            n *= 2 * (p.element_size() if hasattr(p, "element_size") else 1)
        base += n
    return trainable, base + trainable


def build_peft_model(engine, settings: LoraSettings, adapter_name: str):
    """Wrap a shadow of ``engine.model`` with a fresh LoRA adapter named ``adapter_name``.

    Must be called under ``engine.session(grad=True)`` (the shadow is taken from the shared model).
    The adapter's layers start disabled; :func:`explorer.lora.adapter_active` enables them for one pass.

    ``A`` is drawn again from a private ``torch.Generator`` seeded with ``settings.seed`` (the same Kaiming-uniform
    init PEFT uses, ``a = sqrt(5)``; ``B`` stays zero), so the global RNG is never seeded and a seed gives the
    same adapter on any device.

    Returns:
        ``(peft_model, (trainable, all))`` with PEFT's own ``get_nb_trainable_parameters()`` count.
    """
    from peft import get_peft_model

    shadow = shadow_copy(engine.model)
    model = get_peft_model(shadow, peft_config(settings), adapter_name=adapter_name)
    init_lora_a(model, adapter_name, settings.seed)
    counts = model.get_nb_trainable_parameters()
    model.base_model.disable_adapter_layers()
    return model, counts


def init_lora_a(peft_model, adapter_name: str, seed: int) -> None:
    """Draw every ``lora_A`` of ``adapter_name`` from ``kaiming_uniform_(a=sqrt(5))`` (PEFT's default init, after
    ``nn.Linear``) with a private CPU generator seeded with ``seed``; the global RNG is untouched."""
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for _, _, layer in lora_layers(peft_model, adapter_name):
            weight = layer.lora_A[adapter_name].weight
            fresh = torch.empty(weight.shape, dtype=torch.float32)
            torch.nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)
            weight.copy_(fresh.to(device=weight.device, dtype=weight.dtype))


def lora_layers(peft_model, adapter_name: str):
    """Yield ``(layer index, module short name, lora layer)`` for every layer holding ``adapter_name``."""
    from peft.tuners.lora import LoraLayer

    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer) and adapter_name in getattr(module, "lora_A", {}):
            match = re.search(r"\.layers\.(\d+)\.", name)
            yield (int(match.group(1)) if match else -1), name.split(".")[-1], module


def ba_norms(peft_model, adapter_name: str, num_layers: int) -> tuple[np.ndarray, list[str]]:
    """Frobenius norm ‖scaling · B A‖ of every adapted layer.

    Returns:
        ``(norms, modules)``: ``norms`` shape ``(num_layers, len(modules))``, NaN where a module has no
        adapter; ``modules`` the short names in Llama order.
    """
    import torch

    order = list(MODULE_ALIASES.values())
    entries = [(i, m, layer) for i, m, layer in lora_layers(peft_model, adapter_name)]
    modules = [m for m in order if any(e[1] == m for e in entries)] + \
        sorted({e[1] for e in entries} - set(order))
    norms = np.full((num_layers, len(modules)), np.nan)
    with torch.no_grad():
        for i, m, layer in entries:
            if 0 <= i < num_layers:
                norms[i, modules.index(m)] = float(layer.get_delta_weight(adapter_name).float().norm())
    return norms, modules


def merge_delta_logits(peft_model, adapter_name: str, input_ids) -> float:
    """Merge the adapter into copies of the targeted weights and return max |Δlogit| vs the unmerged model.

    Uses PEFT's own ``merge_adapter`` on a shadow whose targeted base weights are cloned (transient
    memory: those weights only), so the shared weights are never written. Call under the engine lock.

    Args:
        input_ids: token ids, shape ``(1, pos)``.
    Returns:
        max over positions and vocabulary of |logits_merged − logits_unmerged| (logit units).
    """
    import torch

    clone = frozenset(f"{name}.base_layer.weight" for name, _ in peft_model.named_modules()
                      if hasattr(_, "lora_A") and adapter_name in _.lora_A)
    merged = shadow_copy(peft_model, clone=clone)
    try:
        with torch.inference_mode():
            peft_model.base_model.enable_adapter_layers()
            peft_model.set_adapter(adapter_name, inference_mode=True)
            peft_model.eval()
            unmerged = peft_model(input_ids=input_ids).logits.float()
            merged.base_model.enable_adapter_layers()
            merged.merge_adapter([adapter_name])
            merged.eval()
            merged_logits = merged(input_ids=input_ids).logits.float()
        return float((merged_logits - unmerged).abs().max())
    finally:
        peft_model.base_model.disable_adapter_layers()
        del merged
