"""DPO live: preference tuning of a per-session LoRA adapter, with the implicit-reward margin streamed per step.

Direct Preference Optimization (Rafailov et al. 2023, eq. 7) trains the policy ``π`` on pairs (x, y_w, y_l) with

    loss = −log σ(β · [(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))])

where ``log π(y|x)`` sums the answer tokens' log-probabilities and ``r(x, y) = β · (log π(y|x) − log π_ref(y|x))``
is the *implicit reward*: DPO is RLHF's KL-regularised reward maximisation solved in closed form, so no reward
model and no RL loop are needed, and β is the strength of the KL leash to the reference. This is TRL's
``DPOTrainer`` loss ``sigmoid`` with ``f_divergence_type="reverse_kl"``; the pieces come from TRL (its
tokenisation of pairs, ``DataCollatorForPreference``, ``selective_log_softmax``) and the equality with
``DPOTrainer`` on the same batch is tested (tests/explorer/lora/test_dpo.py).

Not TRL's trainer itself: it wraps and patches the model it trains, and here the model is shared by every user.
A DPO run is a :class:`explorer.lora.train.LoraRun` (same registry, owner isolation, Stop, reload re-attach,
``/lora_generate``, PEFT download) whose adapter sits on a weight-sharing shadow of the shared model. The
reference is the base with the adapter off, or the user's SFT run (``start_from``): then the new adapter starts as
a copy of the SFT adapter and the SFT adapter is the reference. Each pair's reference log-probabilities are
computed once, the first time a batch holds it (like TRL's ``precompute_ref_log_probs``, spread over the steps so
the first point shows at once; the reference never changes, so this is exact).

Every ``kl_every`` steps the KL divergence KL(π ‖ π_ref) is measured on the held-out prompts, teacher-forced on
their chosen answers (nats per answer token, averaged over tokens). After the last step the reward accuracy and
margin are measured on every training pair.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import ClassVar, Iterator

import numpy as np

from explorer.core.config import get_limits
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.runs import new_run_id
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))
from explorer.lora import train
from explorer.lora.dpo_data import (PairIds, collate_pairs, heldout_pairs, tokenize_pairs,
                                    validate_pairs)
from explorer.lora.data import batch_order
from explorer.lora.model import base_engine, build_peft_model, count_parameters
from explorer.lora.dpo_settings import SETTING_BOUNDS, DpoSettings, dpo_loss, dpo_settings, sequence_logps  # noqa: F401 (re-exported)
from explorer.lora.train import LoraRun, RunSnapshot, StepRecord, adapter_active, adapter_patches

@dataclass
class DpoStep:
    """One step's batch means: loss, implicit rewards (nats · β), margin, reward accuracy (share), log-probs (nats)."""

    loss: float
    chosen_reward: float
    rejected_reward: float
    margin: float
    accuracy: float
    chosen_logps: float
    rejected_logps: float


@dataclass
class DpoRun(LoraRun):
    """A :class:`LoraRun` trained with DPO (so it lives in the LoRA registry and works wherever a LoRA run does).

    Attributes:
        dpo: :class:`DpoSettings`. reference: the SFT run used as reference (``None`` = base, adapter off).
        steps_dpo: one :class:`DpoStep` per completed step. kl: ``(step, KL nats/token)`` per evaluation.
        heldout: held-out pairs (prompts never trained on). train_accuracy, train_margin: on every training pair
            after the last step (NaN before). phase: what the thread is doing now.
    """

    dpo: DpoSettings = field(default_factory=DpoSettings)
    reference: LoraRun | None = None
    steps_dpo: list = field(default_factory=list)
    kl: list = field(default_factory=list)
    heldout: tuple = ()
    train_accuracy: float = float("nan")
    train_margin: float = float("nan")
    phase: str = ""
    KIND: ClassVar[str] = "dpo"

    def cleanup(self) -> None:
        """Nothing is going on any more; the adapter's parameters are frozen again."""
        self.phase = ""
        super().cleanup()


@dataclass(frozen=True)
class DpoSnapshot:
    """What the UI and API see of a DPO run at one moment.

    Attributes:
        base: the LoRA view of the run (:class:`RunSnapshot`: status, loss, learning rate, grad norm, timing).
        chosen_rewards, rejected_rewards, margins, reward_accuracy, chosen_logps, rejected_logps: shape
            ``(completed steps,)``, batch means (rewards and margins in β·nats, log-probs in nats, accuracy a share).
        kl_steps, kl: the steps evaluated and KL(π ‖ π_ref) there (nats per held-out answer token).
        train_accuracy, train_margin: over every training pair after the run (NaN until then).
        beta, start_from: the settings that frame the figures. phase: what the run does now.
    """

    base: RunSnapshot
    chosen_rewards: np.ndarray
    rejected_rewards: np.ndarray
    margins: np.ndarray
    reward_accuracy: np.ndarray
    chosen_logps: np.ndarray
    rejected_logps: np.ndarray
    kl_steps: np.ndarray
    kl: np.ndarray
    train_accuracy: float
    train_margin: float
    beta: float
    start_from: str | None
    phase: str
    dpo_settings: dict
    provenance: Provenance

    @property
    def run_id(self) -> str:
        """The run id."""
        return self.base.run_id

    @property
    def status(self) -> str:
        """``running``, ``done``, ``stopped`` or ``failed``."""
        return self.base.status

    @property
    def steps_done(self) -> int:
        """Completed optimiser steps."""
        return int(self.margins.size)

    @property
    def losses(self) -> np.ndarray:
        """DPO loss per step (nats, mean over the batch's pairs)."""
        return self.base.loss

    @property
    def both_fell(self) -> bool:
        """True when the chosen and the rejected log-probs both ended below where they started (a known DPO effect:
        the margin grows by pushing the rejected answer down faster than the chosen one)."""
        return bool(self.steps_done >= 2 and self.chosen_logps[-1] < self.chosen_logps[0]
                    and self.rejected_logps[-1] < self.rejected_logps[0])

    def to_api(self) -> dict:
        """The ``/dpo_train`` JSON: ``run_id``, ``losses``, ``margins``, ``reward_accuracy`` (per step), ``kl`` (per
        evaluation, nats/token) and ``kl_steps``; ``chosen_rewards``, ``rejected_rewards``, ``chosen_logps``,
        ``rejected_logps`` (per step); ``train_reward_accuracy`` and ``train_margin`` over all pairs (``None`` if the
        run did not finish); ``status``, ``message``, ``settings``, ``notices``, ``provenance``."""
        finite = (lambda x: None if not math.isfinite(x) else x)
        return {"run_id": self.run_id, "losses": self.losses.tolist(), "margins": self.margins.tolist(),
                "reward_accuracy": self.reward_accuracy.tolist(), "kl": self.kl.tolist(),
                "kl_steps": self.kl_steps.tolist(), "chosen_rewards": self.chosen_rewards.tolist(),
                "rejected_rewards": self.rejected_rewards.tolist(), "chosen_logps": self.chosen_logps.tolist(),
                "rejected_logps": self.rejected_logps.tolist(), "train_reward_accuracy": finite(self.train_accuracy),
                "train_margin": finite(self.train_margin), "status": self.status, "message": self.base.message,
                "settings": self.dpo_settings, "notices": list(self.base.notices),
                "provenance": self.provenance.to_api()}


def snapshot(run: DpoRun) -> DpoSnapshot:
    """A frozen copy of ``run``'s figures (reading it counts as a page polling the run)."""
    base = train.snapshot(run)
    records = list(run.steps_dpo)[:base.steps_done]
    kl = list(run.kl)

    def col(name):
        return np.array([getattr(r, name) for r in records], dtype=float)

    ref = f"SFT run {run.dpo.start_from}" if run.dpo.start_from else "the base (adapter off)"
    return DpoSnapshot(
        base=base, chosen_rewards=col("chosen_reward"), rejected_rewards=col("rejected_reward"), margins=col("margin"),
        reward_accuracy=col("accuracy"), chosen_logps=col("chosen_logps"), rejected_logps=col("rejected_logps"),
        kl_steps=np.array([k[0] for k in kl], dtype=int), kl=np.array([k[1] for k in kl], dtype=float),
        train_accuracy=run.train_accuracy, train_margin=run.train_margin, beta=run.dpo.beta,
        start_from=run.dpo.start_from, phase=run.phase, dpo_settings=run.dpo.as_dict(),
        provenance=measured(f"DPO (TRL sigmoid loss, β={run.dpo.beta:g}) on a PEFT LoRA adapter, reference {ref}: "
                            f"{base.steps_done} of {run.dpo.steps} steps on {run.dataset_name}", model=run.dpo.model))


def _reference_run(owner: str, run_id: str) -> LoraRun:
    ref = train.get_run(run_id, owner)
    if ref.status == train.RUNNING:
        raise ValueError(f"Run {run_id} is still training; start DPO from it once it has finished.")
    if ref.peft_model is None:
        raise ValueError(f"Run {run_id} has no adapter (it failed and was discarded).")
    return ref


def _copy_adapter(source: LoraRun, target_model, target_name: str) -> None:
    """Copy ``source``'s LoRA A/B weights into ``target_name`` of ``target_model`` (same layers and rank)."""
    import torch

    src = {n.replace(source.adapter_name, "@"): p for n, p in source.peft_model.named_parameters()
           if "lora_" in n and source.adapter_name in n}
    with torch.no_grad():
        for name, param in target_model.named_parameters():
            if "lora_" in name and target_name in name:
                param.copy_(src[name.replace(target_name, "@")])


def start_dpo(owner: str, dataset: list, settings: dict | None, dataset_name: str = "custom",
              engine=None) -> DpoRun:
    """Validate everything, build the adapter and start DPO in a background thread.

    Args:
        owner: the session the adapter belongs to.
        dataset: ``[{"prompt", "chosen", "rejected"}, ...]``.
        settings: see :class:`DpoSettings` (missing keys take the defaults).
        dataset_name: a built-in set's name (its held-out pairs are used) or a label for custom data.
        engine: overrides the base engine (tests pass a tiny model).
    Raises:
        ValueError: bad pairs (empty fields, identical answers, too long), bad settings (beta <= 0, too many
            steps...), an unknown or unfinished ``start_from`` run, or a run already going for ``owner``.
    """
    if not owner:
        raise ValueError("No session id: reload the page.")
    limits = get_limits()
    parsed = dpo_settings(settings, limits.max_train_steps)
    pairs = validate_pairs(dataset, limits.max_dataset_bytes)
    reference = _reference_run(owner, parsed.start_from) if parsed.start_from else None
    notices = []
    if reference is not None:
        sft = reference.settings
        if (sft.r, sft.lora_alpha, sft.target_modules) != (parsed.rank, parsed.alpha, parsed.target_modules):
            notices.append(f"rank, alpha and target modules follow SFT run {reference.run_id} (r={sft.r}, "
                           f"alpha={sft.lora_alpha:g}): the DPO adapter starts as a copy of it.")
        parsed = replace(parsed, rank=sft.r, alpha=sft.lora_alpha, target_modules=sft.target_modules, model=sft.model)
        engine = reference.engine
    lora_settings = parsed.lora()
    if reference is not None:
        lora_settings = replace(lora_settings, use_rslora=reference.settings.use_rslora, qlora=reference.settings.qlora)
    engine = engine or base_engine(lora_settings)
    heldout = tuple(heldout_pairs(dataset_name))
    train_ids = tokenize_pairs(engine.tokenizer, pairs)
    heldout_ids = tokenize_pairs(engine.tokenizer, list(heldout))
    run_id = new_run_id()
    run = DpoRun(run_id=run_id, owner=owner, settings=lora_settings, engine=engine, peft_model=None,
                 adapter_name=train.adapter_name_for(owner, run_id), dataset_name=f"DPO: {dataset_name}",
                 notices=notices, prompts=tuple(p["prompt"] for p in pairs), dpo=parsed, reference=reference,
                 heldout=heldout, phase="building the adapter")
    with train.claim(run):
        with engine.session(grad=True):
            run.peft_model, run.peft_counts = build_peft_model(engine, lora_settings, run.adapter_name)
            if reference is not None:
                _copy_adapter(reference, run.peft_model, run.adapter_name)
        run.trainable_params, run.total_params = count_parameters(engine.model, lora_settings)
    return train.REGISTRY.start(run, lambda r: _work(r, train_ids, heldout_ids))


def _reference_logps(run: DpoRun, batch: dict):
    """Reference log-probs ``(chosen, rejected)`` of a collated batch: the base model, or the SFT adapter."""
    out = run.engine.forward(batch["input_ids"], patches=adapter_patches(run.reference),
                             attention_mask=batch["attention_mask"], use_cache=False)
    return sequence_logps(out.logits.float(), batch["input_ids"], batch["completion_mask"]).cpu().chunk(2)


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def _answer_logprobs(run: DpoRun, batch: dict, adapted: bool):
    """Log-softmax over the vocabulary at every held-out answer position (chosen rows only), ``(tokens, vocab)``."""
    rows = batch["input_ids"].shape[0] // 2
    ids, mask = batch["input_ids"][:rows], batch["completion_mask"][:rows, 1:].bool()
    patches = adapter_patches(run if adapted else run.reference)
    logits = run.engine.forward(ids, patches=patches, attention_mask=batch["attention_mask"][:rows],
                                use_cache=False).logits
    return logits[:, :-1].float().log_softmax(-1)[mask.to(logits.device)].cpu()


def _kl(run: DpoRun, batch: dict, ref_logprobs) -> float:
    """KL(π ‖ π_ref) in nats, averaged over the held-out answer tokens (teacher-forced on the chosen answers)."""
    policy = _answer_logprobs(run, batch, adapted=True)
    return float((policy.exp() * (policy - ref_logprobs)).sum(-1).mean())


def _policy_logps(run: DpoRun, pairs: list[PairIds], pad_id: int):
    """Policy log-probs ``(chosen, rejected)`` of every pair, no gradient, in batches of the run's batch size."""
    import torch

    chosen, rejected = [], []
    for group in _batches(pairs, run.dpo.batch_size):
        batch = _to(collate_pairs(group, pad_id), run.engine.device)
        out = run.engine.forward(batch["input_ids"], patches=adapter_patches(run),
                                 attention_mask=batch["attention_mask"], use_cache=False)
        c, r = sequence_logps(out.logits.float(), batch["input_ids"], batch["completion_mask"]).cpu().chunk(2)
        chosen.append(c)
        rejected.append(r)
    return torch.cat(chosen), torch.cat(rejected)


def _work(run: DpoRun, pairs: list[PairIds], heldout: list[PairIds]) -> Iterator[StepRecord]:
    """The run's worker (:meth:`explorer.core.runs.RunRegistry.start`): one :class:`StepRecord` per DPO step (the
    registry stops it between steps), then the reward accuracy over every training pair."""
    import torch

    engine, model, s = run.engine, run.peft_model, run.dpo
    pad_id = engine.tokenizer.pad_token_id if engine.tokenizer.pad_token_id is not None else 0
    start = time.perf_counter()
    run.phase = "reference log-probabilities of the held-out answers"
    ref_chosen, ref_rejected = torch.zeros(len(pairs)), torch.zeros(len(pairs))
    scored = torch.zeros(len(pairs), dtype=torch.bool)

    def reference(indices) -> None:
        """Score the pairs not yet seen with the reference, once each (it never changes)."""
        new = [int(i) for i in indices if not scored[int(i)]]
        for group in _batches(new, s.batch_size):
            c, r = _reference_logps(run, _to(collate_pairs([pairs[i] for i in group], pad_id), engine.device))
            ref_chosen[group], ref_rejected[group], scored[group] = c, r, True

    heldout_batch = _to(collate_pairs(heldout, pad_id), engine.device)
    ref_heldout = _answer_logprobs(run, heldout_batch, adapted=False)
    params, optimizer, scheduler = train.optimiser(run)
    order = batch_order(len(pairs), s.batch_size, s.steps, s.seed)
    run.phase = "training"
    for step in range(s.steps):
        idx = order[step]
        reference(idx)
        batch = _to(collate_pairs([pairs[i] for i in idx], pad_id), engine.device)
        lr = scheduler.get_last_lr()[0]
        with engine.session(grad=True), torch.enable_grad(), adapter_active(run, train=True):
            t0 = time.perf_counter()
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
            chosen, rejected = sequence_logps(logits, batch["input_ids"], batch["completion_mask"]).chunk(2)
            loss, r_c, r_r = dpo_loss(chosen, rejected, ref_chosen[idx].to(chosen.device),
                                      ref_rejected[idx].to(chosen.device), s.beta)
            value = float(loss.detach())
            grad_norm = float("nan")
            if math.isfinite(value):
                loss.backward()
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, run.settings.max_grad_norm))
            if math.isfinite(grad_norm):
                optimizer.step()
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step_s = time.perf_counter() - t0
        if not math.isfinite(grad_norm):
            train.discard(run, f"The DPO loss or its gradient became NaN/inf at step {step + 1} with learning rate "
                               f"{s.learning_rate:g}; the run stopped and its adapter was discarded. Try a smaller "
                               "learning rate.")
            return
        run.steps_dpo.append(DpoStep(
            loss=value, chosen_reward=float(r_c.mean()), rejected_reward=float(r_r.mean()),
            margin=float((r_c - r_r).mean()), accuracy=float((r_c > r_r).float().mean()),
            chosen_logps=float(chosen.detach().mean()), rejected_logps=float(rejected.detach().mean())))
        if (step + 1) % s.kl_every == 0 or step + 1 == s.steps:
            run.kl.append((step + 1, _kl(run, heldout_batch, ref_heldout)))
        yield StepRecord(loss=value, learning_rate=lr, grad_norm=grad_norm, tokens=int(batch["attention_mask"].sum()),
                         step_s=step_s, elapsed_s=time.perf_counter() - start)
    run.phase = "reward accuracy on every training pair"
    reference(range(len(pairs)))
    chosen, rejected = _policy_logps(run, pairs, pad_id)
    rewards = s.beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
    run.train_accuracy, run.train_margin = float((rewards > 0).float().mean()), float(rewards.mean())
    run.phase = ""
    run.status, run.message = "done", (f"Finished {s.steps} steps: reward accuracy {run.train_accuracy:.0%} and mean "
                                       f"margin {run.train_margin:.3f} over all {len(pairs)} training pairs.")


def runs_of(owner: str) -> list[DpoRun]:
    """The owner's DPO runs, oldest first."""
    return [r for r in train.runs_for(owner) if isinstance(r, DpoRun)]


def active_dpo(owner: str) -> DpoRun | None:
    """The owner's DPO run still training, if any (a reload re-attaches to it)."""
    run = train.active_run(owner)
    return run if isinstance(run, DpoRun) else None


def iter_run(dataset: list, settings: dict | None = None, owner: str = "local", dataset_name: str = "custom",
             engine=None, poll_s: float = 0.2) -> Iterator[Progress | DpoSnapshot]:
    """Start a DPO run and follow it: a :class:`Progress` (``partial`` = the :class:`DpoSnapshot` so far) per
    completed step, then the final snapshot. Raises ``ValueError`` as :func:`start_dpo`."""
    run = start_dpo(owner, dataset, settings, dataset_name, engine)
    last = -1
    while True:
        snap = snapshot(run)
        if snap.status != train.RUNNING:
            yield snap
            return
        if snap.steps_done != last:
            last = snap.steps_done
            yield Progress(snap.steps_done / max(1, run.dpo.steps), f"step {snap.steps_done} of {run.dpo.steps}",
                           partial=snap)
        if run.thread is not None:
            run.thread.join(poll_s)


def run(dataset: list, settings: dict | None = None, owner: str = "local", dataset_name: str = "custom",
        engine=None) -> DpoSnapshot:
    """Run DPO to the end and return its :class:`DpoSnapshot` (see :func:`iter_run`)."""
    return run_to_end(iter_run(dataset, settings, owner, dataset_name, engine))


def answers(run: DpoRun, prompts: list[str] | None = None, sft: LoraRun | None = None,
            max_new_tokens: int = 32) -> list[tuple[str, str, str | None, str]]:
    """Greedy answers ``(prompt, base, SFT adapter or None, DPO adapter)`` on the held-out prompts (or ``prompts``).

    The SFT column is the run's reference when it started from an SFT run, else ``sft`` if given.
    Each answer steps the model through :meth:`Engine.steps`, one locked pass per token.

    Raises:
        ValueError: a discarded adapter, or an empty/too long prompt.
    """
    from explorer.lora.infer import greedy_answer

    sft = run.reference or sft
    rows = []
    for prompt in prompts or [p["prompt"] for p in run.heldout]:
        ids = run.engine.chat_ids(prompt)
        rows.append((prompt, greedy_answer(run.engine, ids, max_new_tokens),
                     greedy_answer(run.engine, ids, max_new_tokens, adapter_patches(sft)) if sft is not None else None,
                     greedy_answer(run.engine, ids, max_new_tokens, adapter_patches(run))))
    return rows
