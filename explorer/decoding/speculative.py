"""Speculative decoding, recorded: drafted, accepted and rejected tokens per verification step.

A drafter proposes up to ``num_draft`` tokens; the target model scores the last token plus all drafts in
ONE forward pass; the drafts are accepted up to the first one that differs from the target's own greedy
choice, and the target's token at that position is added for free. The output is therefore exactly the
target's greedy output, produced with fewer sequential forward passes (Leviathan et al. 2023, Chen et
al. 2023; greedy acceptance as in transformers' assisted generation).

Drafters (registry :data:`DRAFTERS`):
- ``prompt_lookup``: copy the continuation of the latest earlier occurrence of the last n-gram, using
  transformers' ``PromptLookupCandidateGenerator`` (Saxena 2023, "prompt lookup decoding").
- ``assisted``: a smaller model with the same tokenizer drafts greedily with its own KV cache
  (transformers' ``generate(assistant_model=...)``), e.g. SmolLM2-135M drafting for SmolLM2-360M.

The baseline is plain greedy decoding with the same per-step locking, timed in the same call, and the
result says whether the ids are identical. Every model pass goes through ``Engine.forward`` (the
target's verification block) or ``Engine.steps`` (the draft model's greedy drafts).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from explorer.core.engine import Engine, get_engine
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int
from explorer.decoding.decode import prepare, token_text
from explorer.decoding.sampling import token_loop
from explorer.decoding.strategies import Strategy


@dataclass(frozen=True)
class SpeculativeResult:
    """One speculative run beside plain greedy.

    Attributes:
        method: drafter key (``prompt_lookup`` or ``assisted``).
        model: target model name; draft_model: the drafting model (None for prompt lookup).
        token_ids: (n,) int64 generated ids; text: their text; token_texts: per-token text.
        drafted: per verification step, the drafted ids (tuple of tuples, may be empty).
        accepted: (steps,) int64, how many drafts the target accepted at each step.
        target_tokens: (steps,) int64, the token the target itself added after the accepted drafts.
        seconds: wall time of the speculative loop (seconds).
        baseline_ids: (m,) int64, plain greedy ids; baseline_seconds: its wall time (seconds).
        num_draft: maximum drafts per step.
        vocab_text: dict id -> text for every generated or drafted id (for figures).
        provenance: where the numbers come from (measured on the model).
    """

    method: str
    model: str
    draft_model: str | None
    token_ids: np.ndarray
    text: str
    token_texts: tuple[str, ...]
    drafted: tuple[tuple[int, ...], ...]
    accepted: np.ndarray
    target_tokens: np.ndarray
    seconds: float
    baseline_ids: np.ndarray
    baseline_seconds: float
    num_draft: int
    vocab_text: dict = field(default_factory=dict)
    provenance: Provenance | None = None

    @property
    def identical(self) -> bool:
        """True when the speculative ids equal plain greedy's."""
        return np.array_equal(self.token_ids, self.baseline_ids)

    @property
    def num_drafted(self) -> int:
        """Total drafted tokens."""
        return sum(len(d) for d in self.drafted)

    @property
    def acceptance_rate(self) -> float:
        """Accepted / drafted tokens (0 when nothing was drafted)."""
        return float(self.accepted.sum()) / self.num_drafted if self.num_drafted else 0.0

    @property
    def forward_passes(self) -> int:
        """Target forward passes (one per verification step); plain greedy needs one per token."""
        return len(self.drafted)

    @property
    def speedup(self) -> float:
        """baseline_seconds / seconds (>1 means faster than plain greedy)."""
        return self.baseline_seconds / self.seconds if self.seconds > 0 else 0.0


class PromptLookupDrafter:
    """Drafts by n-gram lookup in the text so far (transformers' ``PromptLookupCandidateGenerator``)."""

    def __init__(self, engine: Engine, num_draft: int, max_length: int, ngram_size: int = 3):
        import torch
        from transformers.generation.candidate_generator import PromptLookupCandidateGenerator

        eos = torch.tensor(sorted(engine.eos_token_ids()), device=engine.device)
        self.generator = PromptLookupCandidateGenerator(eos_token_id=eos, num_output_tokens=num_draft,
                                                        max_matching_ngram_size=ngram_size, max_length=max_length)

    def draft(self, ids, num_draft: int) -> list[int]:
        """Up to ``num_draft`` draft ids continuing ``ids`` (torch (1, n)); empty when no n-gram matches."""
        candidates, _ = self.generator.get_candidates(ids)
        return candidates[0, ids.shape[1]:].tolist()[:num_draft]

    def accept(self, length: int) -> None:
        """Nothing to roll back: lookup keeps no state."""


class ModelDrafter:
    """Drafts greedily with a smaller model that shares the tokenizer, keeping its own KV cache."""

    def __init__(self, engine: Engine, draft_engine: Engine):
        from transformers import DynamicCache

        self.engine, self.cache, self.cached = draft_engine, DynamicCache(config=draft_engine.config), 0

    def draft(self, ids, num_draft: int) -> list[int]:
        """Greedy draft of ``num_draft`` ids after ``ids`` (torch (1, n)) through ``Engine.steps`` on the draft
        model, continuing its own cache (transformers' assistant drafts do not stop at end-of-sequence)."""
        out = [step.token for step in self.engine.steps(ids[0, self.cached:], num_draft, cache=self.cache,
                                                        stop_at_eos=False)]
        self.cached = ids.shape[1] + len(out) - 1
        return out

    def accept(self, length: int) -> None:
        """Drop draft-cache positions beyond the ``length`` tokens the target kept."""
        extra = self.cache.get_seq_length() - min(length, self.cached)
        if extra > 0:
            self.cache.crop(-extra)
        self.cached = self.cache.get_seq_length()


def _make_prompt_lookup(engine, num_draft, max_length, draft_engine, ngram_size):
    return PromptLookupDrafter(engine, num_draft, max_length, ngram_size)


def _make_assisted(engine, num_draft, max_length, draft_engine, ngram_size):
    if draft_engine is None:
        raise ValueError("Assisted generation needs a draft model.")
    if draft_engine.name == engine.name:
        raise ValueError(f"The draft model must be smaller than the target, not the same model ({engine.name}). "
                         "Load a bigger target with the same tokenizer, e.g. HuggingFaceTB/SmolLM2-360M-Instruct "
                         "with smollm2-135m-instruct as draft (needs the Hugging Face Hub).")
    if draft_engine.tokenizer.get_vocab() != engine.tokenizer.get_vocab():
        raise ValueError(f"{draft_engine.name} and {engine.name} use different tokenizers; assisted generation "
                         "needs a draft model with the same vocabulary.")
    return ModelDrafter(engine, draft_engine)


# Drafters by method name: (engine, num_draft, max_length, draft_engine, ngram_size) -> drafter.
DRAFTERS = {"prompt_lookup": _make_prompt_lookup, "assisted": _make_assisted}


def speculative_loop(engine: Engine, prompt_ids: list[int], drafter, num_draft: int, max_new_tokens: int):
    """Greedy decoding verified in blocks: returns ``(ids, drafted, accepted, target_tokens, seconds)``.

    The target cache always holds every id except the last; each step feeds ``[last] + drafts`` (one lock,
    one forward pass) and gets ``1 + len(drafts)`` next-token predictions.
    """
    import torch

    from transformers import DynamicCache

    device, stop = engine.device, engine.eos_token_ids()
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    cache = DynamicCache(config=engine.config)
    drafted, accepted, target_tokens = [], [], []
    start = time.perf_counter()
    if len(prompt_ids) > 1:
        engine.forward(ids[:, :-1], past_key_values=cache, use_cache=True, logits_to_keep=1)
    generated = 0
    while generated < max_new_tokens:
        budget = min(num_draft, max_new_tokens - generated - 1)
        draft = drafter.draft(ids, budget) if budget > 0 else []
        block = torch.tensor([[int(ids[0, -1])] + draft], dtype=torch.long, device=device)
        logits = engine.forward(block, past_key_values=cache, use_cache=True).logits[0].float()
        predicted = torch.argmax(logits, dim=-1).tolist()
        n_ok = 0
        while n_ok < len(draft) and draft[n_ok] == predicted[n_ok] and draft[n_ok] not in stop:
            n_ok += 1
        new = draft[:n_ok] + [predicted[n_ok]]
        drafted.append(tuple(draft))
        accepted.append(n_ok)
        target_tokens.append(predicted[n_ok])
        cache.crop(-(len(draft) - n_ok)) if len(draft) > n_ok else None
        ids = torch.cat([ids, torch.tensor([new], dtype=torch.long, device=device)], dim=-1)
        drafter.accept(ids.shape[1] - 1)
        generated += len(new)
        if any(t in stop for t in new):
            break
    engine.synchronize()
    seconds = time.perf_counter() - start
    return ids[0, len(prompt_ids):].tolist(), drafted, accepted, target_tokens, seconds


def run_speculative(text: str, model: str | None = None, method: str = "prompt_lookup", max_new_tokens: int = 64,
                    num_draft: int = 10, ngram_size: int = 3, draft_model: str | None = None,
                    engine: Engine | None = None, draft_engine: Engine | None = None) -> SpeculativeResult:
    """Speculative greedy decoding of ``text`` (chat template) beside plain greedy, both timed here.

    Args:
        method: a key of :data:`DRAFTERS`.
        num_draft: drafts per verification step (1-32).
        ngram_size: longest n-gram matched by prompt lookup (1-8).
        draft_model / draft_engine: the drafting model for ``assisted``.
    Returns:
        :class:`SpeculativeResult`.
    Raises:
        ValueError: unknown method, bad sizes, assisted without a usable draft model, or the request
            errors of :func:`explorer.decoding.prepare`.
    """
    if method not in DRAFTERS:
        raise ValueError(f"Unknown speculative method {method!r}; choose one of {', '.join(DRAFTERS)}.")
    num_draft = check_int(num_draft, "num_draft", minimum=1)
    ngram_size = check_int(ngram_size, "ngram_size", minimum=1)
    if num_draft > 32:
        raise ValueError(f"num_draft must be at most 32 (got {num_draft}).")
    if ngram_size > 8:
        raise ValueError(f"ngram_size must be at most 8 (got {ngram_size}).")
    engine, prompt_ids, _, max_new_tokens, _ = prepare(text, model, [{"name": "greedy"}], max_new_tokens, engine)
    if method == "assisted" and draft_engine is None:
        draft_engine = get_engine(draft_model) if draft_model else None
    drafter = DRAFTERS[method](engine, int(num_draft), len(prompt_ids) + max_new_tokens, draft_engine, int(ngram_size))
    ids, drafted, accepted, targets, seconds = speculative_loop(engine, prompt_ids, drafter, int(num_draft),
                                                                max_new_tokens)
    base_ids, _, _, _, base_seconds = token_loop(engine, prompt_ids, Strategy("greedy", {}), max_new_tokens,
                                                 record=False)
    return SpeculativeResult(
        method=method, model=engine.name, draft_model=draft_engine.name if draft_engine is not None else None,
        token_ids=np.array(ids, np.int64), text=engine.tokenizer.decode(ids, skip_special_tokens=True),
        token_texts=tuple(token_text(engine, i) for i in ids), drafted=tuple(drafted),
        accepted=np.array(accepted, np.int64), target_tokens=np.array(targets, np.int64), seconds=seconds,
        baseline_ids=np.array(base_ids, np.int64), baseline_seconds=base_seconds, num_draft=int(num_draft),
        vocab_text={i: token_text(engine, i) for i in set(ids).union(*map(set, drafted))},
        provenance=measured(f"speculative decoding ({method}) via Engine.forward, plain greedy via Engine.steps",
                            model=engine.name))
