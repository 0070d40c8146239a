"""Decoding lens: how a strategy turns next-token distributions into text, recorded step by step.

``run(text, model, strategies, max_new_tokens)`` decodes the same prompt with up to six strategies
(greedy, beam search, sampling with temperature / top-k / top-p / min-p / typical-p, repetition
penalty, no-repeat n-grams) and returns, for each, the text, the raw log-probability of every chosen
token, the wall time, where the text starts looping, and the records of what every logits processor did
at every step. Each strategy runs its own loop from the registry (:data:`explorer.decoding.strategies.
STRATEGIES`); the loops step the model through ``Engine.steps`` / ``Engine.forward`` and apply
transformers' own ``LogitsProcessor`` objects in generate()'s order; tests check that they produce the
same ids as ``model.generate`` (greedy, beam, and seeded sampling).

Sources: transformers ``GenerationMixin._sample`` / ``_beam_search`` (v5); Holtzman et al. 2020 (the
"neural text degeneration" loops that :func:`loop_start` marks).
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import measured
from explorer.core.validation import check_max_new_tokens, check_text, require_causal
from explorer.decoding.processors import build_processors
from explorer.decoding.results import DecodeResult, DecodeRun
from explorer.decoding.sampling import TOP_N, loop_start, token_loop  # noqa: F401  (re-exported)
from explorer.decoding.strategies import MAX_STRATEGIES, STRATEGIES, Strategy, parse_strategy

ProgressFn = Callable[[int, int], None]


def temperature_distribution(logits, temperature: float) -> tuple[np.ndarray, float]:
    """Softmax of ``logits / temperature`` and its entropy, in float64 (no NaN, no -inf).

    ``temperature = 0`` is the greedy limit (all mass on the argmax); 1 leaves the distribution unchanged;
    larger values flatten it. Shapes: ``logits`` (vocab,); returns ``(probs (vocab,), entropy_nats)``.
    Raises ``ValueError`` for a negative temperature.
    """
    logits = np.asarray(logits, np.float64)
    if temperature < 0:
        raise ValueError(f"temperature={temperature:g} cannot be negative.")
    if temperature == 0:
        probs = np.zeros_like(logits)
        probs[int(np.argmax(logits))] = 1.0
        return probs, 0.0
    scaled = (logits - logits.max()) / temperature
    probs = np.exp(scaled)
    probs /= probs.sum()
    nonzero = probs[probs > 0]
    return probs, float(-(nonzero * np.log(nonzero)).sum())


def stage_distributions(strategy: Strategy, logits, input_ids=None) -> list[tuple[str, np.ndarray]]:
    """Apply the strategy's processors to fixed ``logits`` and return each stage's distribution.

    Args:
        logits: (vocab,) raw logits (numpy or torch).
        input_ids: (n,) ids seen so far (for repetition penalty / no-repeat n-gram); default none.
    Returns:
        ``[(stage label, probs (vocab,) float32)]`` starting with ``("raw", softmax(logits))``; a token is
        kept by a stage when its probability is > 0.
    """
    import torch

    scores = torch.as_tensor(np.asarray(logits, np.float32))[None, :]
    ids = torch.tensor([list(input_ids) if input_ids is not None else []], dtype=torch.long)
    out = [("raw", torch.softmax(scores[0], dim=-1).numpy())]
    for label, processor in build_processors(strategy):
        scores = processor(ids, scores)
        out.append((label, torch.softmax(scores[0], dim=-1).numpy()))
    return out


def token_text(engine: Engine, token_id: int) -> str:
    """The readable text of one token (special tokens shown by name)."""
    return engine.tokenizer.decode([int(token_id)])


def decode_one(engine: Engine, prompt_ids: list[int], strategy: Strategy, max_new_tokens: int,
               on_step: ProgressFn | None = None) -> tuple[DecodeRun, np.ndarray]:
    """Run one validated strategy; returns ``(DecodeRun, first_logits (vocab,) float32)``."""
    ids, logprobs, seconds, first_logits, records = STRATEGIES[strategy.name].loop(
        engine, prompt_ids, strategy, max_new_tokens, on_step)
    run = DecodeRun(strategy=strategy.name, label=strategy.label, params=dict(strategy.params), seed=strategy.seed,
                    text=engine.tokenizer.decode(ids, skip_special_tokens=True),
                    token_ids=np.array(ids, np.int64), token_texts=tuple(token_text(engine, i) for i in ids),
                    token_logprobs=logprobs, seconds=seconds, loop_start=loop_start(ids), **records)
    return run, first_logits


def prepare(text: str, model: str | None, strategies, max_new_tokens, engine: Engine | None = None):
    """Validate a request: returns ``(engine, prompt_ids, [Strategy], max_new_tokens, notices)``.

    Raises:
        ValueError: empty prompt, non-causal model, no strategies, bad strategy parameters,
            ``max_new_tokens`` < 1, or a prompt longer than the configured cap.
    """
    limits = get_limits()
    notices: list[str] = []
    check_text(text, "prompt")
    engine = engine or get_engine(model)
    require_causal(engine, "Decoding")
    max_new_tokens = check_max_new_tokens(max_new_tokens, limits.max_new_tokens, notices)
    strategies = list(strategies) if strategies else []
    if not strategies:
        raise ValueError("Give at least one strategy, e.g. [{'name': 'greedy'}].")
    if len(strategies) > MAX_STRATEGIES:
        notices.append(f"{len(strategies)} strategies given; only the first {MAX_STRATEGIES} are run.")
        strategies = strategies[:MAX_STRATEGIES]
    vocab_size = int(engine.config.vocab_size)
    parsed = [s if isinstance(s, Strategy) else parse_strategy(s, vocab_size, limits.max_beams, notices)
              for s in strategies]
    prompt_ids = engine.chat_ids(text)
    engine.check_length(len(prompt_ids) + max_new_tokens)
    return engine, prompt_ids, parsed, max_new_tokens, notices


def iter_run(text: str, model: str | None = None, strategies=None, max_new_tokens: int = 32,
             engine: Engine | None = None) -> Iterator[Progress | DecodeResult]:
    """The lens contract: a :class:`Progress` before each strategy and one after it (``partial`` = the
    :class:`DecodeResult` so far), then the complete :class:`DecodeResult`.

    Raises:
        ValueError: see :func:`prepare`.
    """
    engine, prompt_ids, parsed, max_new_tokens, notices = prepare(text, model, strategies or [{"name": "greedy"}],
                                                                  max_new_tokens, engine)
    runs, first_logits, partial = [], None, None
    for number, strategy in enumerate(parsed):
        yield Progress(number / len(parsed), f"strategy {number + 1} of {len(parsed)}: {strategy.label}")
        run_, logits = decode_one(engine, prompt_ids, strategy, max_new_tokens)
        runs.append(run_)
        first_logits = logits if first_logits is None else first_logits
        partial = _result(engine, prompt_ids, runs, first_logits, notices)
        yield Progress((number + 1) / len(parsed), f"strategy {number + 1} of {len(parsed)} done", partial)
    yield partial


def iter_runs(text: str, model: str | None = None, strategies=None, max_new_tokens: int = 32,
              engine: Engine | None = None, on_step: ProgressFn | None = None):
    """The tab's streaming form: yields the partial :class:`DecodeResult` after each strategy finishes
    (``on_step(step, max_new_tokens)`` after every token, where a Stop flag can raise)."""
    engine, prompt_ids, parsed, max_new_tokens, notices = prepare(text, model, strategies, max_new_tokens, engine)
    runs, first_logits = [], None
    for strategy in parsed:
        run_, logits = decode_one(engine, prompt_ids, strategy, max_new_tokens, on_step)
        runs.append(run_)
        first_logits = logits if first_logits is None else first_logits
        yield _result(engine, prompt_ids, runs, first_logits, notices)


def run(text: str, model: str | None = None, strategies=None, max_new_tokens: int = 32,
        engine: Engine | None = None, on_step: ProgressFn | None = None) -> DecodeResult:
    """Decode ``text`` (wrapped by the chat template) with each strategy, in order.

    Args:
        text: the user prompt.
        model: model name (default: the embedded SmolLM2); ignored when ``engine`` is given.
        strategies: list of strategy dicts (see :func:`explorer.decoding.strategies.parse_strategy`)
            or :class:`Strategy` objects; default ``[{"name": "greedy"}]``.
        max_new_tokens: tokens to generate per strategy (capped at the configured ``max_new_tokens``).
        on_step: called as ``on_step(step, max_new_tokens)`` after every generated token.
    Returns:
        :class:`DecodeResult`.
    Raises:
        ValueError: see :func:`prepare`.
    """
    if on_step is None:
        return run_to_end(iter_run(text, model, strategies, max_new_tokens, engine))
    result = None
    for result in iter_runs(text, model, strategies or [{"name": "greedy"}], max_new_tokens, engine, on_step):
        pass
    return result


def _result(engine, prompt_ids, runs, first_logits, notices) -> DecodeResult:
    shown = set(int(i) for i in np.argsort(first_logits)[-50:])
    for r in runs:
        shown.update(int(i) for i in r.token_ids)
        if r.steps is not None:
            shown.update(int(i) for i in r.steps.top_ids.ravel())
        if r.beam is not None:
            shown.update(int(i) for i in r.beam.cand_token.ravel())
    vocab_text = {i: token_text(engine, i) for i in sorted(shown)}
    return DecodeResult(model=engine.name, prompt_ids=np.array(prompt_ids, np.int64), runs=tuple(runs),
                        first_logits=first_logits, vocab_text=vocab_text, notices=tuple(notices),
                        provenance=measured("Engine.steps / Engine.forward, one locked pass per token",
                                            model=engine.name))


def to_api(result: DecodeResult) -> dict:
    """The JSON answer of ``/decode``: ``{"runs": [{"strategy", "params", "seed", "text", "token_ids",
    "token_logprobs", "seconds"}], "notices": [...], "provenance": {...}}`` with plain Python types."""
    runs = [{"strategy": r.strategy, "params": dict(r.params), "seed": r.seed, "text": r.text,
             "token_ids": [int(i) for i in r.token_ids], "token_logprobs": [float(x) for x in r.token_logprobs],
             "seconds": float(r.seconds)} for r in result.runs]
    return {"runs": runs, "notices": list(result.notices),
            "provenance": result.provenance.to_api() if result.provenance else None}
