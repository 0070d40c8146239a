"""Where a token is decided (``/commitment``): for each greedily generated token, the first layer from which the
logit lens's top-1 stays that token.

At every greedy step (``Engine.steps`` with ``output_hidden_states=True``) the last position's hidden state of every
layer is read out through the core logit lens (:func:`explorer.core.readout.unembed`: final norm and output head,
nostalgebraist 2020). The token's *commitment layer* is the smallest ``hidden_states`` index ``l`` such that the
read-out's arg-max equals the generated token at ``l`` and at every later index (``None`` if the last index's
arg-max differs, which only a float tie can make happen for greedy decoding). Index 0 is the embedding output,
``num_layers`` the model's own output, so ``l`` counts the blocks the token needed (Belrose et al. 2023, "Eliciting
latent predictions with the tuned lens", read the same prefix-stability for the logit lens).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.provenance import Provenance, measured
from explorer.core.readout import unembed
from explorer.core.validation import check_max_new_tokens, check_text, require_causal


def commitment_layer(top1: list[int], token: int) -> int | None:
    """The first index of ``top1`` (the lens's arg-max per ``hidden_states`` index) from which every entry equals
    ``token``; None when the last entry differs."""
    layer = None
    for index in range(len(top1) - 1, -1, -1):
        if int(top1[index]) != int(token):
            break
        layer = index
    return layer


@dataclass(frozen=True)
class CommitmentResult:
    """``/commitment``'s result.

    Attributes:
        model: the engine's name.
        num_layers: blocks in the model (``hidden_states`` has ``num_layers + 1`` entries).
        ids: the greedy tokens (an end-of-sequence token included when it ended the run).
        texts: each token's text.
        layers: per token, its commitment layer (``hidden_states`` index, 0 … ``num_layers``) or None.
        top1: per token, the lens's arg-max id at every ``hidden_states`` index, ``(num_layers + 1,)``.
        notices: capped values.
        provenance: measured on the model.
    """

    model: str
    num_layers: int
    ids: tuple[int, ...]
    texts: tuple[str, ...]
    layers: tuple[int | None, ...]
    top1: tuple[tuple[int, ...], ...]
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("logit lens at every greedy step"))

    def to_api(self) -> dict:
        """``{"tokens": [{"text", "layer"}], "num_layers", "notices"}`` (``layer`` null when never committed)."""
        return {"tokens": [{"text": t, "layer": l} for t, l in zip(self.texts, self.layers)],
                "num_layers": self.num_layers, "notices": list(self.notices)}


def run_commitment(text: str, model: str | None = None, max_new_tokens: int = 16, chat_template: bool = True,
                   engine: Engine | None = None) -> CommitmentResult:
    """Greedily continue ``text`` and, for each generated token, find the layer from which it is the lens's top-1.

    Args:
        text: the prompt (wrapped by the chat template when ``chat_template``).
        max_new_tokens: tokens to generate (capped at ``Limits.max_new_tokens``, a notice).
    Returns:
        :class:`CommitmentResult`.
    Raises:
        ValueError: empty ``text``, a non-causal model, ``max_new_tokens`` below 1, a prompt too long.
    """
    import torch

    check_text(text, "text")
    engine = engine or get_engine(model)
    require_causal(engine, "The commitment strip")
    notices: list[str] = []
    max_new_tokens = check_max_new_tokens(max_new_tokens, get_limits().max_new_tokens, notices)
    ids = engine.chat_ids(text) if chat_template else engine.encode(text)
    engine.check_length(len(ids) + max_new_tokens)
    num_layers = int(engine.config.get_text_config().num_hidden_layers)
    tokens, layers, tops = [], [], []
    for step in engine.steps(ids, max_new_tokens, forward_kwargs={"output_hidden_states": True}):
        states = torch.stack([h[0, -1] for h in step.output.hidden_states])  # (num_layers + 1, d_model)
        inner = unembed(engine, states[:-1], 0)  # final norm applied: every index but the last
        last = unembed(engine, states[-1:], num_layers)
        top1 = torch.cat([inner, last]).argmax(-1).tolist()
        tokens.append(step.token)
        tops.append(tuple(int(t) for t in top1))
        layers.append(commitment_layer(top1, step.token))
    return CommitmentResult(engine.name, num_layers, tuple(tokens),
                            tuple(engine.tokenizer.decode([t]) for t in tokens), tuple(layers), tuple(tops),
                            tuple(notices), measured("logit lens at every greedy step", model=engine.name))
