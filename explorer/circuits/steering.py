"""Steering vectors (contrastive activation addition) and ``/steer``: default and steered generations side by side.

The vector is the mean residual stream at the output of block ``layer`` (0-based) over every token position of the
positive texts minus the same mean over the negative texts (Rimsky et al. 2024, "Steering Llama 2 via Contrastive
Activation Addition"; Turner et al. 2023, "Activation Addition"; repeng's control vectors). It is read with a plain
forward hook passed to ``Engine.forward`` as a :class:`explorer.core.patches.ForwardHook`, and added back the same
way: a per-pass ``ForwardHook`` on that block adds ``strength × layer_norm × vector / ‖vector‖`` to its output at
every position of every pass (prefill and each decode step through ``Engine.steps``), so the shared model is never
edited and another user's pass between two of ours runs unsteered. ``layer_norm`` is the block output's mean L2 norm
over the same texts' positions (the first position of each text left out: its attention-sink norm is tens of times
the others'), so ``strength`` is a multiple of a typical residual vector (around 0.5 is usable).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.patches import ForwardHook
from explorer.core.provenance import Provenance, measured
from explorer.core.readout import unembed
from explorer.core.validation import check_float, check_int, check_max_new_tokens, check_text, require_causal
from explorer.decoding import parse_strategy
from explorer.decoding.sampling import Column

# Built-in contrast sets: (positive texts, negative texts). Written for this project.
SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sentiment": (("I love this, it is wonderful and makes me so happy.", "What a fantastic, delightful day!",
                   "This is the best news I have heard all year.", "Thank you, that was truly lovely."),
                  ("I hate this, it is awful and makes me so sad.", "What a terrible, miserable day!",
                   "This is the worst news I have heard all year.", "No thanks, that was truly horrible.")),
    "formality": (("Dear Sir or Madam, I am writing to request further information.",
                   "We would be grateful if you could confirm receipt of this letter.",
                   "Please accept our sincere apologies for the inconvenience caused."),
                  ("hey, can u send me the info?", "lol yeah got ur message thx", "sorry about that, my bad!")),
    "language": (("The weather is nice today.", "I would like a cup of coffee, please.", "Where is the station?"),
                 ("Il fait beau aujourd'hui.", "Je voudrais une tasse de café, s'il vous plaît.",
                  "Où est la gare ?")),
}
SET_LABELS = {"sentiment": ("positive", "negative"), "formality": ("formal", "casual"),
              "language": ("English", "French")}
MAX_TEXT_TOKENS = 64


def layer_path(layer: int) -> str:
    """Dotted path of decoder block ``layer`` in the embedded models (Llama, Gemma 3): ``model.layers.<layer>``."""
    return f"model.layers.{int(layer)}"


def check_strength(value, name: str = "strength") -> float:
    """``value`` as a finite float of magnitude at most 1e6 (beyond that the logits overflow); ValueError naming
    ``name`` otherwise."""
    strength = check_float(value, name)
    if not math.isfinite(strength) or abs(strength) > 1e6:
        raise ValueError(f"{name}: {strength:g} is not usable (not finite, or so large the logits overflow); "
                         "use values around 0.5.")
    return strength


def check_texts(value, name: str, notices: list[str]) -> list[str]:
    """``value`` (a list of texts, or one string with a text per line) as a non-empty list, capped at
    ``Limits.max_steer_texts`` (a notice). Raises ValueError (naming ``name``) for an empty side."""
    texts = value.splitlines() if isinstance(value, str) else list(value or [])
    texts = [str(t).strip() for t in texts if str(t).strip()]
    if not texts:
        raise ValueError(f"{name} needs at least one text.")
    cap = get_limits().max_steer_texts
    if len(texts) > cap:
        notices.append(f"{name}: {len(texts)} texts given; the first {cap} are used (LLM_EXPLORER_MAX_STEER_TEXTS).")
    return texts[:cap]


def block_outputs(engine: Engine, texts: list[str], layers, chat_template: bool = False) -> list[dict]:
    """Output of each block in ``layers`` for each of ``texts``: per text ``{layer: (n, d_model) float32 on CPU}``,
    read by per-pass forward hooks (one per block) in one batched pass. The texts are right-padded: the model is
    causal, so a text's positions never attend to the padding after them, and the padding rows are dropped."""
    import torch

    rows = [engine.chat_ids(t, max_tokens=MAX_TEXT_TOKENS) if chat_template else engine.encode(
        t, max_tokens=MAX_TEXT_TOKENS) for t in texts]
    width = max(len(r) for r in rows)
    pad = int(rows[0][-1])
    seen = {}

    def keeper(layer):
        def keep(module, args, output):
            seen[layer] = (output[0] if isinstance(output, tuple) else output).detach().float().cpu()
        return keep

    engine.forward(torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
                   patches=[ForwardHook(layer_path(l), keeper(l)) for l in layers], logits_to_keep=1)
    return [{layer: seen[layer][k, :len(r)] for layer in layers} for k, r in enumerate(rows)]


@dataclass(frozen=True)
class SteeringVector:
    """A contrastive steering vector.

    Attributes:
        layer: the block (0-based) whose output it is added to.
        vector: ``torch.Tensor`` ``(d_model,)`` float32, mean(positive) - mean(negative).
        layer_norm: mean L2 norm of the block's output over the texts' positions (first position of each left out).
        notices: capped inputs.
    """

    layer: int
    vector: object
    layer_norm: float
    notices: tuple[str, ...] = ()

    @property
    def norm(self) -> float:
        """‖vector‖ (L2)."""
        return float(self.vector.norm())

    def added(self, strength: float):
        """What the hook adds at each position: ``strength × layer_norm × vector / ‖vector‖`` ``(d_model,)``
        (zeros when the vector is zero)."""
        scale = 0.0 if self.norm == 0 else strength * self.layer_norm / self.norm
        return self.vector * scale

    def patch(self, strength: float) -> ForwardHook:
        """The per-pass :class:`ForwardHook` that adds :meth:`added` to block ``layer``'s output at every position."""
        delta = self.added(strength)

        def add(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            steered = hidden + delta.to(hidden.device, hidden.dtype)
            return (steered,) + tuple(output[1:]) if isinstance(output, tuple) else steered

        return ForwardHook(layer_path(self.layer), add)


def steering_vectors(engine: Engine, positive, negative, layers, chat_template: bool = False) -> dict:
    """:func:`steering_vector` for every block in ``layers`` at once (one pass per text): ``{layer: SteeringVector}``.

    Raises:
        ValueError: an empty side, an empty ``layers`` or one outside ``0 … num_layers - 1``, a text too long.
    """
    import torch

    notices: list[str] = []
    positive = check_texts(positive, "positive", notices)
    negative = check_texts(negative, "negative", notices)
    num_layers = int(engine.config.get_text_config().num_hidden_layers)
    layers = sorted({check_int(layer, "layer", minimum=0) for layer in layers})
    if not layers or layers[-1] >= num_layers:
        raise ValueError(f"layer must be in 0 … {num_layers - 1} (got {layers[-1] if layers else 'none'}).")
    outputs = block_outputs(engine, positive + negative, layers, chat_template)
    pos, neg = outputs[:len(positive)], outputs[len(positive):]
    out = {}
    for layer in layers:
        p, n = [h[layer] for h in pos], [h[layer] for h in neg]
        vector = torch.cat(p).mean(0) - torch.cat(n).mean(0)
        rest = torch.cat([h[1:] if len(h) > 1 else h for h in p + n])
        out[layer] = SteeringVector(layer, vector, float(rest.norm(dim=-1).mean()), tuple(notices))
    return out


def steering_vector(engine: Engine, positive, negative, layer: int, chat_template: bool = False) -> SteeringVector:
    """The mean block-``layer`` output over every position of the ``positive`` texts minus that of ``negative``.

    Raises:
        ValueError: an empty side, ``layer`` outside ``0 … num_layers - 1``, a text longer than 64 tokens.
    """
    layer = check_int(layer, "layer", minimum=0)
    return steering_vectors(engine, positive, negative, [layer], chat_template)[layer]


def generate(engine: Engine, ids: list[int], max_new_tokens: int, patches=(), seed: int | None = None) -> list[int]:
    """Greedy (``seed`` None) or seeded-sampling tokens after ``ids`` through ``Engine.steps`` with ``patches``.

    Raises:
        ValueError: the logits stop being finite (a steering strength so large that they overflow).
    """
    import torch

    strategy = {"name": "greedy"} if seed is None else {"name": "sampling", "seed": int(seed)}
    column = Column(engine, ids, parse_strategy(strategy, int(engine.config.vocab_size), 1), record=False)

    def select(logits, index):
        if not bool(torch.isfinite(logits).all()):
            raise ValueError("strength is so large that the logits overflow (not finite); lower it.")
        return column.select(logits, index)

    tokens = []
    for step in engine.steps(ids, max_new_tokens, select=select, patches=patches):
        column.accept(step.token)
        tokens.append(step.token)
    return tokens


@dataclass(frozen=True)
class SteerResult:
    """``/steer``'s result: the vector's norms, both generations and the vector's logit-lens top tokens."""

    layer: int
    strength: float
    vector_norm: float
    layer_norm: float
    unsteered: str
    steered: str
    unsteered_ids: tuple[int, ...]
    steered_ids: tuple[int, ...]
    top_tokens: tuple[tuple[str, float], ...]
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("steering hook through Engine.steps"))

    def to_api(self) -> dict:
        """``{"vector_norm", "layer_norm", "unsteered", "steered", "top_tokens": [{"text", "logit"}], "notices"}``."""
        return {"vector_norm": self.vector_norm, "layer_norm": self.layer_norm, "unsteered": self.unsteered,
                "steered": self.steered, "top_tokens": [{"text": t, "logit": v} for t, v in self.top_tokens],
                "notices": list(self.notices)}


def run_steer(model: str | None = None, positive="sentiment", negative=None, layer: int = 10, strength: float = 0.5,
              prompt: str = "I think that", max_new_tokens: int = 20, seed: int | None = None,
              chat_template: bool = False, engine: Engine | None = None) -> SteerResult:
    """Build the steering vector and generate from ``prompt`` unsteered and steered (same way, same seed).

    Args:
        positive: positive texts (a list, or a string with one text per line), or a built-in set name
            (``sentiment``, ``formality``, ``language``; then ``negative`` may be None for its other side).
        layer: block (0-based) whose output is steered.
        strength: multiple of the layer's mean residual norm added along the vector (finite; 0 = unsteered).
        seed: None for greedy, else seeded sampling (the same seed for both).
    Returns:
        :class:`SteerResult`.
    Raises:
        ValueError: empty prompt or side, ``layer`` out of range, ``strength`` not finite or overflowing the
            logits, a prompt too long (messages name the argument).
    """
    check_text(prompt, "prompt")
    engine = engine or get_engine(model)
    require_causal(engine, "Steering")
    notices: list[str] = []
    strength = check_strength(strength, "strength")
    if isinstance(positive, str) and positive.strip() in SETS:
        pos_set, neg_set = SETS[positive.strip()]
        positive, negative = pos_set, negative or neg_set
    max_new_tokens = check_max_new_tokens(max_new_tokens, get_limits().max_new_tokens, notices)
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)
    vector = steering_vector(engine, positive, negative, layer, chat_template)
    ids = engine.chat_ids(prompt) if chat_template else engine.encode(prompt)
    engine.check_length(len(ids) + max_new_tokens)
    plain = generate(engine, ids, max_new_tokens, (), seed)
    steered = generate(engine, ids, max_new_tokens, [vector.patch(strength)], seed)
    logits = unembed(engine, vector.vector.to(engine.device, engine.dtype), vector.layer + 1)
    values, indices = logits.float().cpu().topk(10)
    top = tuple((engine.tokenizer.decode([int(i)]), float(v)) for v, i in zip(values, indices))

    def text(tokens):
        return engine.tokenizer.decode(tokens, skip_special_tokens=True)

    return SteerResult(vector.layer, strength, vector.norm, vector.layer_norm, text(plain), text(steered),
                       tuple(plain), tuple(steered), top, tuple(notices) + vector.notices,
                       measured("steering hook through Engine.steps", model=engine.name))
