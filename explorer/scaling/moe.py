"""A tiny mixture of experts (transformers' ``MixtralForCausalLM``) trained beside a dense model with the same
active parameters (transformers' ``LlamaForCausalLM``) on the same tokens.

Mixture of experts (Shazeer et al. 2017; Fedus et al. 2022, "Switch Transformers", arXiv:2101.03961; Jiang et
al. 2024, "Mixtral of Experts", arXiv:2401.04088): each layer's feed-forward block is ``experts`` gated-SiLU MLPs
of width ``f`` and a linear router; each token goes to its ``top_k`` experts (softmax weights renormalised over
them). The dense model's one MLP is ``top_k x f`` wide, so a token meets the same number of MLP weights in both;
the MoE's extra active parameters are only the router (``d_model x experts`` per layer).

The load-balancing auxiliary loss (Fedus et al. 2022, eq. 4; transformers' ``load_balancing_loss_func``) is
``experts x sum_i f_i P_i`` (``f_i`` tokens routed to expert ``i`` per token, ``P_i`` its mean router probability;
``top_k`` when balanced); it is added to the language-model loss times the coefficient ``aux_loss``.
Router loads are read with a forward hook on each layer's router (``mlp.gate``): the experts each token was sent to.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from explorer.core.config import get_limits

MOE_KEYS = ("steps", "seed", "experts", "top_k", "d_model", "aux_loss")
LAYERS, HEADS, SEQ_LEN, BATCH_SIZE, LR = 2, 4, 64, 16, 3e-3
SWITCH_AUX_COEF = 0.01  # Fedus et al. 2022, section 2.2 (alpha = 1e-2)


@dataclass(frozen=True)
class MoeSettings:
    """``/moe_compare`` settings.

    Attributes:
        steps: optimiser steps of each model. seed: weights and batch order (private generators).
        experts: experts per MoE layer. top_k: experts each token is routed to (``<= experts``).
        d_model: hidden size; each expert's MLP width is ``2 x d_model``. aux_loss: coefficient of the
            load-balancing loss (0 = off; ``True`` means :data:`SWITCH_AUX_COEF`).
    """

    steps: int = 20
    seed: int = 0
    experts: int = 4
    top_k: int = 2
    d_model: int = 64
    aux_loss: float = SWITCH_AUX_COEF

    @property
    def expert_width(self) -> int:
        """Intermediate size of one expert (``2 x d_model``)."""
        return 2 * self.d_model


def moe_settings(values: dict | None) -> MoeSettings:
    """Validated :class:`MoeSettings` from ``values`` (missing keys keep the defaults).

    Raises:
        ValueError: an unknown key; a non-number; steps, experts, top_k, d_model below 1 or over their caps
            (``LLM_EXPLORER_MAX_MOE_*``); ``top_k`` greater than ``experts``; ``d_model`` not a multiple of
            ``2 x heads`` (8); ``aux_loss`` negative or not finite.
    """
    values = dict(values or {})
    unknown = sorted(set(values) - set(MOE_KEYS))
    if unknown:
        raise ValueError(f"settings: unknown key(s) {unknown}; allowed: {list(MOE_KEYS)}")
    out = MoeSettings().__dict__.copy()
    for key, value in values.items():
        if value is None:
            continue
        if key == "aux_loss" and isinstance(value, bool):
            value = SWITCH_AUX_COEF if value else 0.0
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number (got {value!r})") from None
        if key != "aux_loss":
            if not math.isfinite(number) or number != int(number):
                raise ValueError(f"{key} must be a whole number (got {value!r})")
            number = int(number)
        out[key] = number
    limits = get_limits()
    caps = {"steps": limits.max_moe_steps, "experts": limits.max_moe_experts, "d_model": limits.max_moe_d_model,
            "top_k": limits.max_moe_experts}
    for key, cap in caps.items():
        if not 1 <= out[key] <= cap:
            raise ValueError(f"{key} must be between 1 and {cap} (LLM_EXPLORER_MAX_MOE_"
                             f"{'EXPERTS' if key == 'top_k' else key.upper()}; got {out[key]})")
    if out["top_k"] > out["experts"]:
        raise ValueError(f"top_k ({out['top_k']}) must not exceed experts ({out['experts']}): a token cannot be "
                         "routed to more experts than there are")
    if out["d_model"] % (2 * HEADS):
        raise ValueError(f"d_model must be a multiple of {2 * HEADS} ({HEADS} heads of even size; "
                         f"got {out['d_model']})")
    if not math.isfinite(out["aux_loss"]) or out["aux_loss"] < 0:
        raise ValueError(f"aux_loss must be a finite coefficient >= 0 (got {out['aux_loss']})")
    return MoeSettings(**out)


def moe_config(s: MoeSettings, vocab_size: int, aux_coef: float | None = None):
    """The tiny ``MixtralConfig``: :data:`LAYERS` layers, :data:`HEADS` heads, ``s.experts`` experts of width
    ``2 d_model``, top-``s.top_k`` routing, tied embeddings, router logits returned."""
    from transformers import MixtralConfig

    return MixtralConfig(vocab_size=vocab_size, hidden_size=s.d_model, intermediate_size=s.expert_width,
                         num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
                         num_local_experts=s.experts, num_experts_per_tok=s.top_k, output_router_logits=True,
                         router_aux_loss_coef=s.aux_loss if aux_coef is None else aux_coef,
                         tie_word_embeddings=True, max_position_embeddings=256, bos_token_id=0, eos_token_id=0,
                         pad_token_id=0, initializer_range=0.02, sliding_window=None)


def dense_config(s: MoeSettings, vocab_size: int):
    """The dense ``LlamaConfig`` of the same active size: one MLP ``top_k x 2 d_model`` wide."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=s.d_model, intermediate_size=s.top_k * s.expert_width,
                       num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
                       max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0,
                       pad_token_id=0, initializer_range=0.02)


def _build(config, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MixtralForCausalLM

    with torch.random.fork_rng(devices=[]):  # weights from the seed, the global RNG restored after
        torch.manual_seed(seed)
        model = (LlamaForCausalLM if isinstance(config, LlamaConfig) else MixtralForCausalLM)(config)
    model.lm_head.weight = model.model.embed_tokens.weight
    return model


@dataclass
class MoeCurve:
    """One trained model's record (mutable while it trains).

    Attributes:
        label: ``dense``, ``moe`` or ``moe (no aux loss)``. aux_coef: the load-balancing coefficient used.
        active_params / total_params: parameters a token uses / the model holds (embedding included, counted once).
        non_embedding_active: active parameters without the embedding (the ``N`` of ``6 N`` FLOPs per token).
        losses: language-model loss per step (nats/token, without the auxiliary term). aux_values: the
            load-balancing loss per step (unscaled; ``top_k`` = balanced). router_load: per step, tokens routed to each
            expert summed over the layers (``[steps][experts]``). flops: cumulative training FLOPs after each step
            (``6 x non_embedding_active x tokens``). step_s: seconds per step.
    """

    label: str
    aux_coef: float
    active_params: int
    total_params: int
    non_embedding_active: int
    losses: list = field(default_factory=list)
    aux_values: list = field(default_factory=list)
    router_load: list = field(default_factory=list)
    flops: list = field(default_factory=list)
    step_s: list = field(default_factory=list)


def count_moe(model) -> tuple[int, int]:
    """``(active, total)`` parameters of a ``MixtralForCausalLM`` counted from its modules: total is every
    parameter once; active drops the ``experts - top_k`` experts a token does not use in each layer."""
    total = sum(p.numel() for p in model.parameters())
    cfg = model.config
    unused = 0
    for layer in model.model.layers:
        per_expert = sum(p.numel() for p in layer.mlp.experts.parameters()) // cfg.num_local_experts
        unused += (cfg.num_local_experts - cfg.num_experts_per_tok) * per_expert
    return total - unused, total


def new_curves(s: MoeSettings, vocab_size: int) -> list[tuple[MoeCurve, object]]:
    """``[(curve, model)]``: the dense model, the MoE with ``s.aux_loss``, and (when ``s.aux_loss > 0``) the same
    MoE without the auxiliary loss; all from seed ``s.seed``."""
    dense = _build(dense_config(s, vocab_size), s.seed)
    n_dense = sum(p.numel() for p in dense.parameters())
    embedding = dense.get_input_embeddings().weight.numel()
    plans = [(dense_config(s, vocab_size), "dense", 0.0, dense)]
    coefs = [("moe", s.aux_loss)] + ([("moe (no aux loss)", 0.0)] if s.aux_loss > 0 else [])
    for label, coef in coefs:
        config = moe_config(s, vocab_size, coef)
        plans.append((config, label, coef, _build(config, s.seed)))
    out = []
    for config, label, coef, model in plans:
        active, total = count_moe(model) if label != "dense" else (n_dense, n_dense)
        out.append((MoeCurve(label, coef, active, total, active - embedding), model))
    return out


def curve_steps(curve: MoeCurve, model, s: MoeSettings, data, before_step=lambda: None):
    """Train ``model`` for ``s.steps`` steps on ``data`` (a :class:`~explorer.pretrain.data.CorpusData`), appending
    to ``curve`` and yielding after each step. Batches come from a private generator seeded ``s.seed``, so every
    model sees the same tokens; AdamW, warmup and cosine as the pretraining loop; loss = LM loss + coefficient x
    the load-balancing loss."""
    import torch

    from explorer.pretrain.data import batch
    from explorer.pretrain.loop import lr_at, optimizer_for
    from explorer.pretrain.model import PretrainSettings, lm_loss

    schedule = PretrainSettings(steps=s.steps, lr=LR, warmup=max(1, s.steps // 10))
    opt = optimizer_for(model, schedule)
    gen = torch.Generator().manual_seed(s.seed)
    picks: list = []
    hooks = [layer.mlp.gate.register_forward_hook(lambda m, a, out: picks.append(out[2].detach()))
             for layer in model.model.layers if hasattr(layer.mlp, "gate")]
    model.train()
    try:
        for step in range(s.steps):
            before_step()
            x = batch(data.train, BATCH_SIZE, SEQ_LEN, gen)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, schedule)
            t0 = time.perf_counter()
            picks.clear()
            out = model(input_ids=x)
            lm = lm_loss(out.logits, x)
            aux = getattr(out, "aux_loss", None)
            total = lm + curve.aux_coef * aux if aux is not None and curve.aux_coef > 0 else lm
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            curve.step_s.append(time.perf_counter() - t0)
            curve.losses.append(float(lm.detach()))
            if aux is not None:
                curve.aux_values.append(float(aux.detach()))
                experts = model.config.num_local_experts
                curve.router_load.append(sum(torch.bincount(p.reshape(-1), minlength=experts) for p in picks).tolist())
            tokens = (step + 1) * BATCH_SIZE * SEQ_LEN
            curve.flops.append(6.0 * curve.non_embedding_active * tokens)
            yield step + 1
    finally:
        for hook in hooks:
            hook.remove()
