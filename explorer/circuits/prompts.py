"""Inputs of the Circuits lens: prompts, one-token answers, built-in clean/corrupted pairs, component names.

Clean/corrupted pairs follow the activation-patching literature: indirect object identification (Wang et al.
2022, "Interpretability in the Wild"), factual recall of capitals (Meng et al. 2022, "Locating and Editing Factual
Associations in GPT", causal tracing) and subject-verb number agreement (Finlayson et al. 2021, "Causal Analysis of
Syntactic Agreement Mechanisms"). Each pair differs in one token and has the same token length on both embedded
models; the metric is ``logit(answer) - logit(wrong_answer)`` at the last position.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from explorer.core.config import get_limits
from explorer.core.engine import Engine
from explorer.core.validation import require_causal


@dataclass(frozen=True)
class PatchPair:
    """A built-in clean/corrupted pair: the answer is right on ``clean``, ``wrong_answer`` on ``corrupted``."""

    key: str
    label: str
    clean: str
    corrupted: str
    answer: str
    wrong_answer: str


PAIRS: tuple[PatchPair, ...] = (
    PatchPair("names", "Names (indirect object)", "When Mary and John went to the store, John gave a drink to",
              "When Mary and John went to the store, Mary gave a drink to", " Mary", " John"),
    PatchPair("capitals", "Capitals", "The capital of France is the city of", "The capital of Italy is the city of",
              " Paris", " Rome"),
    PatchPair("agreement", "Number agreement", "The keys to the cabinet", "The key to the cabinet", " are", " is"),
)


def pair(key: str) -> PatchPair:
    """The built-in pair named ``key`` (``names``, ``capitals``, ``agreement``).

    Raises:
        ValueError: unknown ``key``.
    """
    for item in PAIRS:
        if item.key == key:
            return item
    raise ValueError(f"pair must be one of {[p.key for p in PAIRS]} (got {key!r}).")


def prompt_ids(engine: Engine, text, name: str = "text", chat_template: bool = False) -> list[int]:
    """Token ids of a Circuits prompt (special tokens added as the model expects; chat template if asked).

    Raises:
        ValueError: not a string, empty, an encoder model, or longer than ``Limits.max_circuit_tokens``
            (the message names ``name``).
    """
    require_causal(engine, "The Circuits lens")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name} is empty: type a prompt.")
    cap = get_limits().max_circuit_tokens
    ids = engine.chat_ids(text, max_tokens=10**9) if chat_template else engine.encode(text, max_tokens=10**9)
    if len(ids) > cap:
        raise ValueError(f"{name} is {len(ids)} tokens long; the Circuits lens accepts at most {cap} "
                         f"(max_circuit_tokens). Shorten it.")
    return list(ids)


def token_text(engine: Engine, token_id: int) -> str:
    """The decoded text of one token id, quoted with ``repr`` so spaces show (``' Mary'``)."""
    return repr(engine.tokenizer.decode([int(token_id)]))


def answer_id(engine: Engine, answer, name: str = "answer") -> int:
    """The one token id of ``answer``: a string (always text, so ``"42"`` is the token 42, not id 42) encoded without
    special tokens, or an int id.

    Raises:
        ValueError: empty, not one token (the message lists the tokens it became), or an id outside the
            vocabulary (the message names ``name``).
    """
    vocab = int(engine.config.vocab_size)
    if isinstance(answer, bool):
        raise ValueError(f"{name} must be a string of one token or a token id (got a boolean).")
    if isinstance(answer, int) or (isinstance(answer, float) and answer.is_integer()):
        if not 0 <= int(answer) < vocab:
            raise ValueError(f"{name} id {int(answer)} is outside the vocabulary (0 to {vocab - 1}).")
        return int(answer)
    if not isinstance(answer, str) or answer == "":
        raise ValueError(f"{name} is empty: type one token (with its leading space, e.g. ' Mary').")
    ids = engine.tokenizer(answer, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = ", ".join(token_text(engine, i) for i in ids)
        raise ValueError(f"{name} {answer!r} must be one token; it became {len(ids)}: {pieces}. "
                         "Pick a shorter word (a leading space is usually part of the token).")
    return int(ids[0])


COMPONENT = re.compile(r"^L(\d+)(?:H(\d+)|\.(attn|mlp))$")


@dataclass(frozen=True)
class Component:
    """A part of the model that can be ablated: a head (``L3H2``), a layer's attention (``L5.attn``) or MLP."""

    layer: int
    kind: str  # "head", "attn" or "mlp"
    head: int | None = None

    @property
    def name(self) -> str:
        """The name users type: ``L3H2``, ``L5.attn``, ``L5.mlp``."""
        return f"L{self.layer}H{self.head}" if self.kind == "head" else f"L{self.layer}.{self.kind}"


def parse_components(engine: Engine, components) -> tuple[Component, ...]:
    """Parse component names (a list, or one comma-separated string).

    Raises:
        ValueError: none given, an unknown name, a duplicate, or a layer or head out of range (negative included);
            the message names ``components``.
    """
    if isinstance(components, str):
        components = [part.strip() for part in components.split(",") if part.strip()]
    if not isinstance(components, (list, tuple)) or not components:
        raise ValueError("components is empty: name at least one, e.g. L3H2, L5.attn or L5.mlp.")
    num_layers = int(engine.config.num_hidden_layers)
    num_heads = int(engine.config.num_attention_heads)
    parsed, seen = [], set()
    for raw in components:
        match = COMPONENT.match(str(raw).strip()) if isinstance(raw, str) else None
        if match is None:
            raise ValueError(f"components: unknown component {raw!r}; write L<layer>H<head> (a head), "
                             "L<layer>.attn or L<layer>.mlp.")
        layer = int(match.group(1))
        if layer >= num_layers:
            raise ValueError(f"components: {raw} names layer {layer}; this model has layers 0 to {num_layers - 1}.")
        if match.group(2) is not None:
            head = int(match.group(2))
            if head >= num_heads:
                raise ValueError(f"components: {raw} names head {head}; this model has heads 0 to {num_heads - 1}.")
            item = Component(layer, "head", head)
        else:
            item = Component(layer, match.group(3))
        if item.name in seen:
            raise ValueError(f"components: {item.name} is named twice.")
        seen.add(item.name)
        parsed.append(item)
    return tuple(parsed)
