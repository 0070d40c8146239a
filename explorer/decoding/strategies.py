"""Decoding strategies as data: a self-describing registry (label, explanation, parameters, own loop),
validated parameters, presets and transformers' logits processors.

Add a strategy: one :class:`StrategySpec` in :data:`STRATEGIES` (its loop in its own module, like
``sampling.py`` or ``beam.py``); ``decode.py`` iterates the registry and the contract test
``tests/contracts/test_strategies.py`` runs every entry on the tiny model.


A strategy is a plain dict such as ``{"name": "sampling", "temperature": 0.7, "top_p": 0.95, "seed": 1}``
whose parameter names are those of transformers' ``GenerationConfig``. :func:`parse_strategy` checks it
(readable ``ValueError`` for bad values, notices for capped ones) and returns a frozen
:class:`Strategy`; :func:`build_processors` turns it into the same ``LogitsProcessor`` objects, in the same
order, that ``model.generate`` builds (``GenerationMixin._get_logits_processor``), so our recording loops
apply exactly transformers' maths.

Sources: Holtzman et al. 2020 (nucleus / top-p sampling), Fan et al. 2018 (top-k sampling),
Meister et al. 2023 (locally typical sampling), Nguyen et al. 2024 (min-p sampling),
Keskar et al. 2019 (CTRL repetition penalty), Paulus et al. 2018 (no-repeat n-gram blocking),
transformers generation docs (https://huggingface.co/docs/transformers/generation_strategies).
Preset values come from the concept handbook ("Temperature & Sampling Parameters": temperature 0.7,
top-p 0.95, top-k 40-50, repetition penalty 1.1, beam size 4-5).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

from explorer.decoding.beam import run_beam
from explorer.decoding.processors import build_processors  # noqa: F401  (re-exported: strategies.build_processors)
from explorer.decoding.sampling import run_token

# Parameters a strategy may carry, with transformers' GenerationConfig defaults
# (GenerationConfig._get_default_generation_params) so that an omitted value means what generate() means.
GENERATION_DEFAULTS: dict[str, Any] = {
    "temperature": 1.0, "top_k": 50, "top_p": 1.0, "min_p": None, "typical_p": 1.0,
    "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "num_beams": 4, "length_penalty": 1.0, "seed": None,
}

MAX_STRATEGIES = 6


@dataclass(frozen=True)
class StrategySpec:
    """One registered strategy: everything the app needs to show, validate and run it.

    Attributes:
        name: registry key (``greedy``, ``beam``, ``sampling``), the ``name`` of a strategy dict.
        label: what the UI calls it.
        explanation: one or two sentences for the UI: what it does and when to use it.
        params: the parameter names it accepts (besides ``name``), ``GenerationConfig`` names.
        do_sample: True when tokens are drawn at random (warpers apply, a seed is used).
        loop: ``loop(engine, prompt_ids, strategy, max_new_tokens, on_step) -> (token_ids, token_logprobs
            (n,) float32, seconds, first_logits (vocab,) float32, {"steps": StepRecords} or {"beam": BeamRecords})``:
            its own decoding loop (:func:`explorer.decoding.sampling.run_token` steps the model through
            ``Engine.steps``; :func:`explorer.decoding.beam.run_beam` expands beams over ``Engine.forward``).
        stepwise: True when the loop is :func:`explorer.decoding.sampling.run_token` (one token per pass, one
            sequence), so several such strategies on one prompt can run as one batch
            (:func:`explorer.decoding.sampling.token_loops`).
    """

    name: str
    label: str
    explanation: str
    params: tuple[str, ...]
    do_sample: bool
    loop: Callable
    stepwise: bool = False

    @property
    def description(self) -> str:
        """Alias of :attr:`explanation` (older callers)."""
        return self.explanation


_PENALTIES = ("repetition_penalty", "no_repeat_ngram_size")
# Add a strategy here: a new StrategySpec with its own loop; tests/contracts/test_strategies.py runs it.
STRATEGIES: dict[str, StrategySpec] = {
    "greedy": StrategySpec(
        "greedy", "Greedy", "Always the most probable next token: deterministic, but prone to loops.",
        _PENALTIES, False, run_token, stepwise=True),
    "beam": StrategySpec(
        "beam", "Beam search", "Keep the num_beams best partial sequences by total log-probability and return "
        "the best finished one (score / length ** length_penalty).",
        ("num_beams", "length_penalty") + _PENALTIES, False, run_beam),
    "sampling": StrategySpec(
        "sampling", "Sampling", "Draw the next token at random from the distribution reshaped by temperature, "
        "top-k, top-p, min-p and typical-p; a seed reproduces the draw.",
        ("temperature", "top_k", "top_p", "min_p", "typical_p") + _PENALTIES + ("seed",), True, run_token, stepwise=True),
}


@dataclass(frozen=True)
class Strategy:
    """A validated strategy, ready to run.

    Attributes:
        name: registry key.
        params: the resolved parameters (defaults filled in), ``GenerationConfig`` names.
        seed: the seed of a sampled strategy (drawn when not given), else ``None``.
        do_sample: False for greedy, beam, and sampling at temperature 0.
    """

    name: str
    params: dict = field(default_factory=dict)
    seed: int | None = None
    do_sample: bool = False

    @property
    def spec(self) -> StrategySpec:
        """The registry entry."""
        return STRATEGIES[self.name]

    @property
    def label(self) -> str:
        """Short human label such as ``sampling T=0.7 top-p=0.95 seed=3``."""
        shown = [f"{_SHORT.get(k, k)}={_fmt(v)}" for k, v in self.params.items()
                 if k != "seed" and v is not None and v != _NEUTRAL.get(k)]
        if self.seed is not None:
            shown.append(f"seed={self.seed}")
        return " ".join([self.name] + shown)

    def as_dict(self) -> dict:
        """The strategy as the JSON dict the API accepts (``name`` plus parameters plus ``seed``)."""
        out = {"name": self.name, **{k: v for k, v in self.params.items() if k != "seed"}}
        if self.seed is not None:
            out["seed"] = self.seed
        return out


_SHORT = {"temperature": "T", "top_k": "top-k", "top_p": "top-p", "min_p": "min-p", "typical_p": "typical-p",
          "repetition_penalty": "rep", "no_repeat_ngram_size": "no-repeat", "num_beams": "beams",
          "length_penalty": "len-pen"}
# Values that change nothing, left out of labels.
_NEUTRAL = {"top_k": 0, "top_p": 1.0, "typical_p": 1.0, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
            "min_p": 0.0}


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _number(name: str, value, kind=float):
    """``value`` as ``kind`` (int or float; numeric strings accepted), else a readable ``ValueError``."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be a number, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if kind is int:
        if not number.is_integer():
            raise ValueError(f"{name} must be a whole number, got {value!r}.")
        return int(number)
    return number


@dataclass(frozen=True)
class Rule:
    """Allowed values of one parameter: ``kind`` (int or float), bounds (None = unbounded), whether the lower
    bound itself is excluded, the explanation shown when a value is refused, and ``cap`` (``"vocab"`` or
    ``"beams"``) for values that are capped with a notice instead of refused."""

    kind: type
    low: float | None
    high: float | None
    low_open: bool
    why: str
    cap: str | None = None


RULES: dict[str, Rule] = {
    "temperature": Rule(float, 0.0, None, False, "temperature cannot be negative; use 0 (greedy) or a positive "
                        "value such as 0.7"),
    "top_k": Rule(int, 0, None, False, "top-k cannot be negative; use 0 (off) or a count such as 50", "vocab"),
    "top_p": Rule(float, 0.0, 1.0, True, "top-p keeps the smallest set of tokens whose probability adds up to p, "
                  "so p must be in (0, 1]; 1 turns it off"),
    "min_p": Rule(float, 0.0, 1.0, False, "min-p keeps tokens with probability >= min_p x the top probability, "
                  "so it must be in [0, 1]; 0 turns it off"),
    "typical_p": Rule(float, 0.0, 1.0, True, "typical-p is a probability mass in (0, 1]; 1 turns it off"),
    "repetition_penalty": Rule(float, 0.0, None, True, "the penalty must be positive: 1 = off, 1.1-1.3 typical"),
    "no_repeat_ngram_size": Rule(int, 0, None, False, "use 0 (off) or a positive n-gram size"),
    "num_beams": Rule(int, 1, None, False, "beam search needs at least 1 beam", "beams"),
    "length_penalty": Rule(float, None, None, False, ""),
}


def _validate(name: str, raw, vocab_size: int, max_beams: int, notices: list[str]):
    """Return the checked value of one parameter (``ValueError`` with the allowed range when invalid)."""
    if name == "seed":
        return None if raw in (None, "") else _number("seed", raw, int) % (2 ** 31)
    if name == "min_p" and raw in (None, ""):
        return None
    rule = RULES[name]
    value = _number(name, raw, rule.kind)
    too_low = rule.low is not None and (value < rule.low or (rule.low_open and value == rule.low))
    if too_low or (rule.high is not None and value > rule.high):
        raise ValueError(f"{name}={value:g} is out of range: {rule.why}.")
    cap = {"vocab": vocab_size, "beams": max_beams}.get(rule.cap)
    if cap is not None and value > cap:
        notices.append(f"{name}={value} is above the {'vocabulary size' if rule.cap == 'vocab' else 'server cap'};"
                       f" {'clamped' if rule.cap == 'vocab' else 'capped'} to {cap:,}.")
        value = cap
    return value


def parse_strategy(raw: dict, vocab_size: int, max_beams: int, notices: list[str] | None = None) -> Strategy:
    """Validate one strategy dict and fill in ``GenerationConfig`` defaults.

    Args:
        raw: ``{"name": "greedy" | "beam" | "sampling", <GenerationConfig parameters>, "seed": int}``.
        vocab_size: the model's vocabulary size (top-k is clamped to it, with a notice).
        max_beams: the configured cap on ``num_beams`` (capped, with a notice).
        notices: list that receives human-readable notices about clamped values.
    Returns:
        A :class:`Strategy`. A sampled strategy without a seed gets a fresh random seed;
        ``temperature=0`` turns sampling into greedy decoding (no seed, no warpers).
    Raises:
        ValueError: not a dict, unknown strategy name or parameter, or a value out of range
            (negative temperature, top-p outside (0, 1], top-k < 0, min-p outside [0, 1], ...).
    """
    notices = notices if notices is not None else []
    if not isinstance(raw, dict):
        raise ValueError(f"A strategy must be a dict such as {{'name': 'greedy'}}, got {type(raw).__name__}.")
    name = str(raw.get("name", "")).strip().lower()
    if name not in STRATEGIES:
        raise ValueError(f"Unknown decoding strategy {raw.get('name')!r}; choose one of {', '.join(STRATEGIES)}.")
    spec = STRATEGIES[name]
    unknown = sorted(set(raw) - set(spec.params) - {"name"})
    if unknown:
        raise ValueError(f"Strategy {name!r} does not take {', '.join(unknown)}; it takes {', '.join(spec.params)}.")
    params = {}
    for key in spec.params:
        value = raw.get(key, GENERATION_DEFAULTS[key])
        params[key] = _validate(key, value, vocab_size, max_beams, notices)
    do_sample = spec.do_sample
    if do_sample and params["temperature"] == 0:
        notices.append("temperature 0 means greedy decoding: the most probable token every step (no sampling).")
        do_sample = False
    seed = params.pop("seed", None)
    if do_sample and seed is None:
        seed = new_seed()
    return Strategy(name=name, params=params, seed=seed if do_sample else None, do_sample=do_sample)


def new_seed() -> int:
    """A fresh random seed in ``[0, 2**31)`` (what "re-roll" draws)."""
    return secrets.randbelow(2 ** 31)


def generate_kwargs(strategy: Strategy) -> dict:
    """Keyword arguments for ``model.generate`` that reproduce this strategy (used by tests and bench)."""
    kwargs: dict[str, Any] = {"do_sample": strategy.do_sample, "num_beams": 1}
    for key, value in strategy.params.items():
        if key in ("temperature", "top_k", "top_p", "min_p", "typical_p") and not strategy.do_sample:
            continue
        kwargs[key] = value
    if strategy.name == "beam":
        kwargs["early_stopping"] = False
    return kwargs


# Presets: handbook starting values (see module docstring); min-p 0.05 from Nguyen et al. 2024.
PRESETS: dict[str, dict] = {
    "Greedy": {"name": "greedy"},
    "Beam search, 4 beams": {"name": "beam", "num_beams": 4, "length_penalty": 1.0},
    "Recommended sampling (T 0.7, top-p 0.95)": {"name": "sampling", "temperature": 0.7, "top_p": 0.95, "top_k": 0},
    "Top-k 40 (T 0.7)": {"name": "sampling", "temperature": 0.7, "top_k": 40},
    "Focused (T 0.2)": {"name": "sampling", "temperature": 0.2, "top_k": 0},
    "Creative (T 1.0, top-p 0.95)": {"name": "sampling", "temperature": 1.0, "top_p": 0.95, "top_k": 0},
    "Min-p 0.05 (T 1.0)": {"name": "sampling", "temperature": 1.0, "min_p": 0.05, "top_k": 0},
    "Repetition penalty 1.1 (T 0.7, top-p 0.95)": {"name": "sampling", "temperature": 0.7, "top_p": 0.95,
                                                   "top_k": 0, "repetition_penalty": 1.1},
    "Greedy, no repeated 3-grams": {"name": "greedy", "no_repeat_ngram_size": 3},
}
