"""The shared engine: one :class:`Engine` per loaded model, with the lock that serialises its use.

Lenses never touch ``models.loading`` directly for forward passes: they take an engine and run
inside ``engine.session()``, which holds the model's lock and disables autograd. Anything that
changes how the shared model runs (attention implementation, hooks, module swaps, an adapter) is a
:class:`explorer.core.patches.Patch` handed to :meth:`Engine.forward` / :meth:`Engine.steps` /
:meth:`Engine.batch_steps` / :meth:`Engine.greedy_continuation` as ``patches=[...]``: installed inside each
locked pass and removed in ``finally``, so it never reaches another user's pass.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from explorer.core import patches as _patches
from explorer.core.config import get_limits
from explorer.core.turns import turn_lock
from models.loading import LoadedModel, load_model
from models.registry import DEFAULT_MODEL

_ENGINES: dict[tuple, "Engine"] = {}


@dataclass
class Step:
    """One forward pass of :meth:`Engine.steps`.

    Attributes:
        index: 0 for the prefill (the whole prompt), then 1, 2, ... for each decode step.
        logits: next-token logits at the last position, ``torch.Tensor`` of shape ``(vocab,)``, float32, on CPU.
        token: the token chosen by ``select`` from these logits (the ``index + 1``-th generated token).
        finished: True when ``token`` is an end-of-sequence id (:meth:`Engine.eos_token_ids`) and the loop stops.
        cache: the ``past_key_values`` after this pass (it already holds this pass's inputs, not ``token``).
        output: the model output of this pass (attentions or hidden states when ``forward_kwargs`` asked for them).
        ms: wall time of the forward pass in milliseconds, the device synchronised before the clock is read.
        input_ids: the ids fed in this pass, ``torch.Tensor`` of shape ``(1, n)`` (n = prompt length at prefill, else 1).
    """

    index: int
    logits: Any
    token: int
    finished: bool
    cache: Any
    output: Any
    ms: float
    input_ids: Any


@dataclass
class BatchStep:
    """One forward pass of :meth:`Engine.batch_steps` (several rows that share one prompt).

    Attributes:
        index: 0 for the prefill (the prompt, run once as one row), then 1, 2, ... for each decode step.
        rows: the row numbers (0 .. rows - 1) still running in this pass, in batch order.
        logits: next-token logits, ``torch.Tensor`` ``(len(rows), vocab)``, float32, on CPU (at the prefill every
            row gets the one prompt row's logits).
        tokens: the token each of ``rows`` chose (``select(row, logits, index)``), aligned with ``rows``.
        finished: per entry of ``rows``, True when its token ends the sequence; that row is dropped after this pass.
        ms: wall time of the forward pass in milliseconds (device synchronised).
    """

    index: int
    rows: tuple
    logits: Any
    tokens: tuple
    finished: tuple
    ms: float


@dataclass(frozen=True)
class Continuation:
    """What :meth:`Engine.greedy_continuation` generated.

    Attributes:
        tokens: the generated token ids in order, an end-of-sequence token included when it ended the run.
        ended: True when the last token is an end-of-sequence id (the run stopped before ``max_new_tokens``
            or exactly at it).
    """

    tokens: tuple[int, ...]
    ended: bool

    @property
    def content(self) -> tuple[int, ...]:
        """``tokens`` without the final end-of-sequence token (what a reader sees as the answer)."""
        return self.tokens[:-1] if self.ended else self.tokens


def greedy(logits, index: int) -> int:
    """The default ``select`` of :meth:`Engine.steps`: the arg-max token id of ``logits`` ``(vocab,)``."""
    return int(logits.argmax())
_ENGINES_LOCK = threading.Lock()


class Engine:
    """A loaded model plus the helpers every lens needs.

    Attributes:
        loaded: the shared :class:`models.loading.LoadedModel`.
        model, tokenizer, device, dtype, spec: shortcuts to ``loaded``'s fields.
        lock: the model's :class:`explorer.core.turns.TurnLock` (re-entrant, wraps ``loaded.lock``).
    """

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.dtype = loaded.dtype
        self.lock = turn_lock(loaded.lock, loaded.spec.name)  # fair turns (explorer/core/turns.py)
        self.spec = loaded.spec

    @property
    def name(self) -> str:
        """The model name users typed (``smollm2-135m-instruct`` or a Hub id)."""
        return self.spec.name

    @property
    def config(self):
        """The ``transformers`` config of the model."""
        return self.model.config

    @property
    def is_causal(self) -> bool:
        """True for decoder models (causal attention), False for encoders such as MiniLM."""
        return self.spec.kind == "causal-lm"

    @contextlib.contextmanager
    def session(self, grad: bool = False, kind: str | None = None) -> Iterator["Engine"]:
        """Hold one turn on the model (and ``torch.inference_mode`` unless ``grad``) for one step of work.

        Keep the block short (one forward pass or one training step) so other users interleave.
        ``kind`` is the turn's priority (``"interactive"`` or ``"training"``, see ``explorer/core/turns.py``);
        by default ``"training"`` when ``grad`` (an optimiser step), else the context's kind (interactive).

        Raises:
            explorer.core.turns.ModelBusy: the turn did not come within ``Limits.max_wait_seconds``.
        """
        import torch

        with self.lock.turn(kind or ("training" if grad else None)):
            if grad:
                yield self
            else:
                with torch.inference_mode():
                    yield self

    @contextlib.contextmanager
    def eager_attention(self) -> Iterator[None]:
        """Switch the model to eager attention (which returns attention probabilities) for the block.

        SDPA stays the default for speed; the previous implementation is restored in ``finally``.
        Must be used inside :meth:`session` (prefer ``eager=True`` or ``patches=[AttnImplementation("eager")]``
        on :meth:`forward` / :meth:`steps`, which do both).

        Raises:
            RuntimeError: called outside a turn on this engine.
        """
        with _patches.applied(self.model, [_patches.AttnImplementation("eager")], lock=self.lock):
            yield

    @contextlib.contextmanager
    def _pass(self, model, patches, eager: bool = False, grad: bool = False) -> Iterator[Any]:
        """One locked pass: a turn, then ``patches`` (and eager attention) installed on ``model``; yields the
        module to call. Everything is undone in ``finally`` before the turn ends."""
        patches = _patches.check(patches)
        if eager:
            patches = (_patches.AttnImplementation("eager"),) + patches
        with self.session(grad=grad), _patches.applied(model, patches, lock=self.lock) as run_model:
            yield run_model

    def encode(self, text: str, add_special_tokens: bool = True, max_tokens: int | None = None) -> list[int]:
        """Token ids of plain ``text`` (no chat template).

        Raises:
            ValueError: the prompt is longer than ``max_tokens`` (default: the configured
                ``max_prompt_tokens`` and the model's context length).
        """
        ids = self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        self.check_length(len(ids), max_tokens)
        return list(ids)

    def chat_ids(self, user: str, system: str | None = None, add_generation_prompt: bool = True,
                 max_tokens: int | None = None) -> list[int]:
        """Token ids of ``user`` wrapped by the model's chat template (plain text if it has none).

        Raises:
            ValueError: the wrapped prompt is too long (see :meth:`encode`).
        """
        template = getattr(self.tokenizer, "chat_template", None)
        if not template:
            return self.encode(user, max_tokens=max_tokens)
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                                 tokenize=True, return_dict=False)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        ids = list(ids)
        self.check_length(len(ids), max_tokens)
        return ids

    def context_length(self) -> int:
        """The model's maximum positions (``max_position_embeddings``), in tokens."""
        return int(getattr(self.config, "max_position_embeddings", 0) or 2048)

    def check_length(self, n_tokens: int, max_tokens: int | None = None) -> None:
        """Raise ``ValueError`` with a readable message if ``n_tokens`` exceeds the caps."""
        cap = min(max_tokens or get_limits().max_prompt_tokens, self.context_length())
        if n_tokens > cap:
            raise ValueError(f"The prompt is {n_tokens:,} tokens long; this view accepts at most {cap:,} tokens "
                             f"(model context {self.context_length():,}). Shorten the prompt.")

    def synchronize(self) -> None:
        """Wait for queued device work (CUDA) so a clock read after it measures the work; no-op on CPU."""
        import torch

        if str(self.device).startswith("cuda") and torch.cuda.is_available():
            torch.cuda.synchronize()

    def as_input(self, ids) -> Any:
        """``ids`` (list of ints, 1-D or 2-D tensor or array) as a ``(1, n)`` long tensor on the engine's device."""
        import torch

        tensor = torch.as_tensor(ids, dtype=torch.long)
        if tensor.dim() == 1:
            tensor = tensor.unsqueeze(0)
        return tensor.to(self.device)

    def forward(self, ids, model=None, grad: bool = False, eager: bool = False, patches=(), **forward_kwargs):
        """Run one forward pass of ``model`` (default: the shared model) under the lock and return its output.

        Args:
            ids: token ids, ``(n,)`` or ``(batch, n)``; moved to the engine's device. ``None`` when
                ``forward_kwargs`` carries ``inputs_embeds`` ``(batch, n, hidden)`` instead (attribution).
            model: another module tree that shares this engine's lock (a quantised copy, a LoRA shadow).
            grad: keep autograd on (training, attribution); otherwise ``torch.inference_mode``.
            eager: switch to eager attention for this pass (restored after it, still under the lock), so
                ``output_attentions=True`` returns attention probabilities.
            patches: :class:`explorer.core.patches.Patch` objects installed for this pass only (hooks, module
                swaps, attention implementation, an adapter), removed in ``finally``.
            **forward_kwargs: passed to the model (``output_attentions``, ``past_key_values``, ``labels`` ...).
        Returns:
            the model output (``logits`` ``(1, n, vocab)`` unless ``logits_to_keep`` says otherwise).
        Raises:
            ValueError: ``patches`` holds something that is not a Patch, or names a missing module.
        """
        inputs = {} if ids is None else {"input_ids": self.as_input(ids)}
        with self._pass(model or self.model, patches, eager=eager, grad=grad) as run_model:
            return run_model(**inputs, **forward_kwargs)

    def steps(self, ids, max_new_tokens: int, select: Callable[[Any, int], int] = greedy,
              forward_kwargs: dict | None = None, cache=None, model=None, stop_at_eos: bool = True,
              eos_ids: set[int] | None = None, use_cache: bool = True, eager: bool = False,
              patches=()) -> Iterator[Step]:
        """The one way to step the model: prefill ``ids``, then one decode pass per generated token.

        Each pass holds the lock for that pass only, so other users interleave between tokens. ``select``
        runs outside the lock on the CPU logits (sampling there uses a private ``torch.Generator``).

        Args:
            ids: the prompt's token ids, ``(n,)``.
            max_new_tokens: tokens to generate (the one meaning everywhere: generated tokens, not passes);
                ``max_new_tokens`` passes are made, the last one's token is not fed back.
            select: ``select(logits (vocab,), step_index) -> token id``; default greedy.
            forward_kwargs: extra model arguments for every pass (``output_attentions=True`` ...).
            cache: a ``Cache`` to continue from (default: a new ``DynamicCache`` built with the model's config,
                so sliding-window layers keep only their window).
            model: another module tree sharing this engine's lock (quantised copy, LoRA shadow).
            stop_at_eos: stop after a step whose token is in ``eos_ids`` (default :meth:`eos_token_ids`).
            use_cache: False runs every pass on the whole sequence so far without a cache (what the KV cache
                saves; ``Step.cache`` is then None and ``Step.input_ids`` is the whole sequence).
            eager: switch to eager attention for each pass (inside the lock, restored after it), so
                ``forward_kwargs={"output_attentions": True}`` returns attention probabilities.
            patches: :class:`explorer.core.patches.Patch` objects installed inside each pass and removed after
                it (so nothing is installed between passes, when other users run or the caller stops).
        Yields:
            :class:`Step` per pass, ``max_new_tokens`` at most.
        Raises:
            ValueError: ``max_new_tokens`` below 1, or a bad ``patches`` entry.
        """
        import torch
        from transformers import DynamicCache

        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be at least 1 (got {max_new_tokens}).")
        model = model or self.model
        patches = _patches.check(patches)
        kwargs = dict(forward_kwargs or {})
        eos = self.eos_token_ids() if eos_ids is None else set(eos_ids)
        if use_cache and cache is None:
            cache = DynamicCache(config=model.config)
        if use_cache:
            kwargs.update(past_key_values=cache, use_cache=True)
        else:
            kwargs.update(use_cache=False)
        feed = self.as_input(ids)
        for index in range(int(max_new_tokens)):
            with self._pass(model, patches, eager=eager) as run_model:
                self.synchronize()
                start = time.perf_counter()
                output = run_model(input_ids=feed, logits_to_keep=1, **kwargs)
                self.synchronize()
                ms = (time.perf_counter() - start) * 1000.0
            logits = output.logits[0, -1].float().cpu()
            token = int(select(logits, index))
            finished = stop_at_eos and token in eos
            if use_cache and output.past_key_values is not None:
                cache = kwargs["past_key_values"] = output.past_key_values
            self.lock.record(tokens=1, batch_size=1)
            yield Step(index=index, logits=logits, token=token, finished=finished, cache=cache if use_cache else None,
                       output=output, ms=ms, input_ids=feed)
            if finished:
                return
            step_input = torch.tensor([[token]], device=self.device)
            feed = step_input if use_cache else torch.cat([feed, step_input], dim=-1)

    def batch_steps(self, ids, rows: int, max_new_tokens: int, select: Callable[[int, Any, int], int],
                    model=None, stop_at_eos: bool = True, eos_ids: set[int] | None = None,
                    patches=()) -> Iterator[BatchStep]:
        """:meth:`steps` for ``rows`` sequences that continue one shared prompt, stepped as one batch.

        The prompt is prefilled once (one row), its cache is repeated to ``rows`` rows
        (``Cache.batch_repeat_interleave``), then each pass feeds every running row its last token, shape
        ``(running, 1)``; rows stay the same length, so no padding or attention mask is needed. A row whose token
        ends the sequence is dropped from the batch and the cache (``Cache.batch_select_indices``). Each pass holds
        the lock for that pass only; ``select`` runs outside it, once per running row, on that row's CPU logits,
        so each row can use its own strategy and private ``torch.Generator``. The rows' tokens equal
        :meth:`steps` run once per row up to float rounding of the batched matrix products.

        Args:
            ids: the shared prompt's token ids, ``(n,)``.
            rows: how many sequences (>= 1).
            max_new_tokens: tokens to generate per row (passes made: ``max_new_tokens`` at most).
            select: ``select(row, logits (vocab,), step_index) -> token id``.
            model: another module tree sharing this engine's lock.
            stop_at_eos / eos_ids: as in :meth:`steps`, per row.
            patches: as in :meth:`steps` (installed inside each pass, removed after it).
        Yields:
            :class:`BatchStep` per pass.
        Raises:
            ValueError: ``rows`` or ``max_new_tokens`` below 1, or a bad ``patches`` entry.
        """
        import torch
        from transformers import DynamicCache

        if int(rows) < 1:
            raise ValueError(f"rows must be at least 1 (got {rows}).")
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be at least 1 (got {max_new_tokens}).")
        model = model or self.model
        patches = _patches.check(patches)
        eos = self.eos_token_ids() if eos_ids is None else set(eos_ids)
        cache = DynamicCache(config=model.config)
        feed, running = self.as_input(ids), list(range(int(rows)))
        for index in range(int(max_new_tokens)):
            with self._pass(model, patches) as run_model:
                self.synchronize()
                start = time.perf_counter()
                output = run_model(input_ids=feed, past_key_values=cache, use_cache=True, logits_to_keep=1)
                self.synchronize()
                ms = (time.perf_counter() - start) * 1000.0
            cache = output.past_key_values
            logits = output.logits[:, -1].float().cpu()
            if index == 0:
                logits = logits.expand(len(running), -1)
                cache.batch_repeat_interleave(len(running))
            tokens = tuple(int(select(row, logits[k], index)) for k, row in enumerate(running))
            finished = tuple(stop_at_eos and t in eos for t in tokens)
            self.lock.record(tokens=len(running), batch_size=len(running))
            yield BatchStep(index=index, rows=tuple(running), logits=logits, tokens=tokens, finished=finished, ms=ms)
            keep = [k for k, done in enumerate(finished) if not done]
            if not keep:
                return
            if len(keep) < len(running):
                cache.batch_select_indices(torch.tensor(keep, device=self.device))
                running = [running[k] for k in keep]
            feed = torch.tensor([[tokens[k]] for k in keep], device=self.device)

    def greedy_continuation(self, ids, max_new_tokens: int, model=None, patches=(), stop_at_eos: bool = True,
                            eos_ids: set[int] | None = None) -> Continuation:
        """The one greedy continuation: arg-max tokens after ``ids`` through :meth:`steps` (one locked pass per
        token, so other users interleave), with ``patches`` inside each pass.

        Args:
            ids: the prompt's token ids, ``(n,)`` (list, array or tensor).
            max_new_tokens: tokens to generate at most (>= 1).
            model, patches, stop_at_eos, eos_ids: as in :meth:`steps`.
        Returns:
            :class:`Continuation` (its ``tokens`` equal ``model.generate(do_sample=False)``'s new tokens up to
            float rounding ties).
        Raises:
            ValueError: ``max_new_tokens`` below 1, or a bad ``patches`` entry.
        """
        steps = list(self.steps(ids, max_new_tokens, model=model, patches=patches, stop_at_eos=stop_at_eos,
                                eos_ids=eos_ids))
        return Continuation(tokens=tuple(s.token for s in steps), ended=bool(steps and steps[-1].finished))

    def eos_token_ids(self) -> set[int]:
        """Token ids that end a generation: the generation config's ``eos_token_id`` (int or list), else the
        tokenizer's end-of-sequence token; empty when neither is set."""
        ids = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if ids is None:
            ids = self.tokenizer.eos_token_id
        ids = [] if ids is None else ([ids] if isinstance(ids, int) else list(ids))
        return {int(i) for i in ids if i is not None}

    def decode(self, ids) -> str:
        """Text of token ids (special tokens kept)."""
        return self.tokenizer.decode(list(ids))


def get_engine(model: str | None = None, dtype: str | None = None, quantization: str | None = None) -> Engine:
    """Return the shared :class:`Engine` for a model name (default: the embedded SmolLM2).

    Raises:
        ValueError: unknown model, or a Hub model that cannot be loaded (see ``models.loading.load_model``).
    """
    loaded = load_model(model or DEFAULT_MODEL, dtype=dtype, quantization=quantization)
    key = (loaded.spec.name, dtype, quantization)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None or engine.loaded is not loaded:
            engine = _ENGINES[key] = Engine(loaded)
        return engine
