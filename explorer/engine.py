"""The shared engine: one :class:`Engine` per loaded model, with the lock that serialises its use.

Lenses never touch ``models.loading`` directly for forward passes: they take an engine and run
inside ``engine.session()``, which holds the model's lock and disables autograd. Anything that
changes how the shared model runs (eager attention for capture, hooks) happens inside a context
manager that restores the original in ``finally``, still under the lock.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from explorer.config import get_limits
from models.loading import LoadedModel, load_model
from models.registry import DEFAULT_MODEL

_ENGINES: dict[tuple, "Engine"] = {}
_ENGINES_LOCK = threading.Lock()


class Engine:
    """A loaded model plus the helpers every lens needs.

    Attributes:
        loaded: the shared :class:`models.loading.LoadedModel`.
        model, tokenizer, device, dtype, lock, spec: shortcuts to ``loaded``'s fields.
    """

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.dtype = loaded.dtype
        self.lock = loaded.lock
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
    def session(self, grad: bool = False) -> Iterator["Engine"]:
        """Hold the model's lock (and ``torch.inference_mode`` unless ``grad``) for one step of work.

        Keep the block short (one forward pass or one training step) so other users interleave.
        """
        import torch

        with self.lock:
            if grad:
                yield self
            else:
                with torch.inference_mode():
                    yield self

    @contextlib.contextmanager
    def eager_attention(self) -> Iterator[None]:
        """Switch the model to eager attention (which returns attention probabilities) for the block.

        SDPA stays the default for speed; the previous implementation is restored in ``finally``.
        Must be used inside :meth:`session`.
        """
        model = self.model
        previous = getattr(model.config, "_attn_implementation", None) or "sdpa"
        if previous == "eager":
            yield
            return
        model.set_attn_implementation("eager")
        try:
            yield
        finally:
            model.set_attn_implementation(previous)

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
