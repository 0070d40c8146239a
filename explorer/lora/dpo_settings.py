"""DPO settings and loss: the validated run settings and the DPO objective (Rafailov et al. 2023, eq. 7), the
pure parts of :mod:`explorer.lora.dpo` (which re-exports them)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from explorer.lora.model import ALL_LINEAR, LoraSettings, resolve_targets
from models.registry import DEFAULT_MODEL

SETTING_BOUNDS = {"learning_rate": (1e-8, 1.0), "beta": (1e-4, 10.0), "rank": (1, 128), "alpha": (1e-6, 4096),
                  "batch_size": (1, 16), "kl_every": (1, 1000)}


@dataclass(frozen=True)
class DpoSettings:
    """One DPO run's settings (the ``/dpo_train`` names).

    Attributes:
        steps: optimiser steps. learning_rate: AdamW peak rate (linear decay to 0, no warm-up: a short run cannot spare steps).
        beta: β, the KL strength (> 0; DPO paper and TRL default 0.1). rank, alpha: LoRA r and lora_alpha.
        batch_size: pairs per step (each step runs 2 · batch_size sequences). seed: pair order and adapter init.
        start_from: run id of one of the session's SFT runs to start from and use as the reference (None = base).
        kl_every: steps between KL evaluations on the held-out prompts. target_modules: as in LoRA.
        model: base model name.
    """

    steps: int = 12
    learning_rate: float = 1e-3
    beta: float = 0.1
    rank: int = 8
    alpha: float = 16.0
    batch_size: int = 2
    seed: int = 0
    start_from: str | None = None
    kl_every: int = 4
    target_modules: tuple[str, ...] = (ALL_LINEAR,)
    model: str = DEFAULT_MODEL

    def lora(self) -> LoraSettings:
        """The :class:`LoraSettings` of the adapter (no dropout, linear decay, no warm-up, clip 1.0)."""
        return LoraSettings(r=self.rank, lora_alpha=self.alpha, target_modules=self.target_modules,
                            learning_rate=self.learning_rate, steps=self.steps, batch_size=self.batch_size,
                            warmup_steps=0, seed=self.seed, model=self.model)

    def as_dict(self) -> dict:
        """Plain-JSON dict (lists for tuples)."""
        out = asdict(self)
        out["target_modules"] = list(self.target_modules)
        return out


def dpo_settings(values: dict | None, max_steps: int) -> DpoSettings:
    """Parse ``/dpo_train`` settings; missing or ``None`` keys take the defaults.

    Raises:
        ValueError: unknown keys, wrong types, beta <= 0, steps < 1 or above ``max_steps``, values out of range.
    """
    values = dict(values or {})
    known = {f.name for f in fields(DpoSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Unknown DPO setting(s) {unknown}; known: {sorted(known)}.")
    defaults, kwargs = DpoSettings(), {}
    for name, value in values.items():
        if value is None or (name == "start_from" and not str(value).strip()):
            continue
        default = getattr(defaults, name)
        try:
            if name == "target_modules":
                value = resolve_targets(value)
            elif name in ("start_from", "model"):
                value = str(value).strip()
            elif isinstance(default, int) and not isinstance(default, bool):
                if isinstance(value, bool) or float(value) != int(float(value)):
                    raise ValueError
                value = int(float(value))
            else:
                value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"DPO setting {name}={value!r} should be a {type(default).__name__}.") from None
        kwargs[name] = value
    settings = replace(defaults, **kwargs)
    if not settings.beta > 0 or not math.isfinite(settings.beta):
        raise ValueError(f"beta must be > 0 (it is the KL strength; 0.1 is usual), got {settings.beta}.")
    if settings.steps < 1:
        raise ValueError("steps must be at least 1.")
    if settings.steps > max_steps:
        raise ValueError(f"Too many steps: {settings.steps} asked, at most {max_steps} per run on this server.")
    for name, (low, high) in SETTING_BOUNDS.items():
        value = getattr(settings, name)
        if not low <= value <= high:
            raise ValueError(f"DPO setting {name}={value} is out of range [{low:g}, {high:g}].")
    return settings


def sequence_logps(logits, input_ids, completion_mask):
    """Summed log-probabilities of the completion tokens, one per row (TRL's ``selective_log_softmax``).

    Args:
        logits: ``(rows, pos, vocab)``. input_ids, completion_mask: ``(rows, pos)``.
    Returns:
        ``(rows,)`` tensor, nats (sum over the answer tokens of log p(token | prefix)).
    """
    from trl.trainer.utils import selective_log_softmax

    per_token = selective_log_softmax(logits[:, :-1], input_ids[:, 1:])
    return (per_token * completion_mask[:, 1:]).sum(dim=1)


def dpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta: float):
    """DPO's sigmoid loss (Rafailov et al. 2023, eq. 7; TRL ``loss_type="sigmoid"``) and the implicit rewards.

    Args:
        all four: ``(pairs,)`` tensors of summed answer log-probabilities (nats). beta: β > 0.
    Returns:
        ``(loss, chosen_rewards, rejected_rewards)``: the mean loss (scalar tensor) and ``β · (log π − log π_ref)``
        per pair for the chosen and rejected answers (detached, ``(pairs,)``).
    """
    import torch.nn.functional as F

    chosen_logratios = chosen_logps - ref_chosen_logps
    rejected_logratios = rejected_logps - ref_rejected_logps
    loss = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios)).mean()
    return loss, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()
