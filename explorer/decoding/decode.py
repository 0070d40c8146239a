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
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))
from explorer.decoding.processors import build_processors
from explorer.decoding.results import DecodeResult, DecodeRun
from explorer.decoding.sampling import TOP_N, loop_start, token_loop, token_loops  # noqa: F401  (re-exported)
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


def _decode_run(engine: Engine, strategy: Strategy, ids, logprobs, seconds: float, records: dict) -> DecodeRun:
    return DecodeRun(strategy=strategy.name, label=strategy.label, params=dict(strategy.params), seed=strategy.seed,
                     text=engine.tokenizer.decode(ids, skip_special_tokens=True),
                     token_ids=np.array(ids, np.int64), token_texts=tuple(token_text(engine, i) for i in ids),
                     token_logprobs=logprobs, seconds=seconds, loop_start=loop_start(ids), **records)


def decode_one(engine: Engine, prompt_ids: list[int], strategy: Strategy, max_new_tokens: int,
               on_step: ProgressFn | None = None) -> tuple[DecodeRun, np.ndarray]:
    """Run one validated strategy; returns ``(DecodeRun, first_logits (vocab,) float32)``."""
    ids, logprobs, seconds, first_logits, records = STRATEGIES[strategy.name].loop(
        engine, prompt_ids, strategy, max_new_tokens, on_step)
    return _decode_run(engine, strategy, ids, logprobs, seconds, records), first_logits


def decode_batch(engine: Engine, prompt_ids: list[int], strategies: list[Strategy], max_new_tokens: int,
                 on_step: ProgressFn | None = None) -> list[tuple[DecodeRun, np.ndarray]]:
    """Run several step-wise strategies (greedy / sampling) together as one batch on the shared prompt.

    Same runs as :func:`decode_one` per strategy (same seeds, same records), but one forward pass per token for
    all of them (:func:`explorer.decoding.sampling.token_loops`); each run's ``seconds`` is the batch's time.

    Raises:
        ValueError: a strategy that is not step-wise (beam search has its own loop).
    """
    for strategy in strategies:
        if not strategy.spec.stepwise:
            raise ValueError(f"strategies: {strategy.name!r} cannot be batched (it has its own loop).")
    out = token_loops(engine, prompt_ids, strategies, max_new_tokens, on_step=on_step)
    return [(_decode_run(engine, s, ids, logprobs, seconds, {"steps": records}), first)
            for s, (ids, logprobs, records, first, seconds) in zip(strategies, out)]


def _units(parsed: list[Strategy], batched: bool) -> list[list[int]]:
    """Indices of ``parsed`` in the order they run: the step-wise ones first as one batch (when ``batched`` and
    there are two or more), then each other strategy alone; otherwise one at a time, in order."""
    stepwise = [i for i, s in enumerate(parsed) if s.spec.stepwise]
    if not batched or len(stepwise) < 2:
        return [[i] for i in range(len(parsed))]
    return [stepwise] + [[i] for i in range(len(parsed)) if i not in stepwise]


def _run_unit(engine, prompt_ids, parsed, unit: list[int], max_new_tokens, on_step) -> list[tuple]:
    """``[(DecodeRun, first_logits)]`` for the strategies ``unit`` of :func:`_units` (a batch or one alone)."""
    if len(unit) > 1:
        return decode_batch(engine, prompt_ids, [parsed[i] for i in unit], max_new_tokens, on_step)
    return [decode_one(engine, prompt_ids, parsed[unit[0]], max_new_tokens, on_step)]


def _batch_notice(parsed, batched) -> list[str]:
    units = [u for u in _units(parsed, batched) if len(u) > 1]
    return [f"{len(u)} columns ran together as one batch (one forward pass per token for all of them); "
            f"each one's time is the batch's time." for u in units]


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
             engine: Engine | None = None, batched: bool = True) -> Iterator[Progress | DecodeResult]:
    """The lens contract: a :class:`Progress` before each unit of work and one after it (``partial`` = the
    :class:`DecodeResult` so far, runs in the requested order), then the complete :class:`DecodeResult`.

    A unit is one strategy, or (``batched``, the default) all greedy/sampling strategies together as one batch
    (:func:`decode_batch`); ``batched=False`` runs every strategy alone, one after another.

    Raises:
        ValueError: see :func:`prepare`.
    """
    engine, prompt_ids, parsed, max_new_tokens, notices = prepare(text, model, strategies or [{"name": "greedy"}],
                                                                  max_new_tokens, engine)
    notices += _batch_notice(parsed, batched)
    done: dict[int, tuple] = {}
    partial = None
    for unit in _units(parsed, batched):
        labels = ", ".join(parsed[i].label for i in unit)
        yield Progress(len(done) / len(parsed), f"strategy {', '.join(str(i + 1) for i in unit)} of "
                       f"{len(parsed)}: {labels}")
        done.update(zip(unit, _run_unit(engine, prompt_ids, parsed, unit, max_new_tokens, None)))
        partial = _ordered_result(engine, prompt_ids, done, notices)
        yield Progress(len(done) / len(parsed), f"{len(done)} of {len(parsed)} strategies done", partial)
    yield partial


def iter_runs(text: str, model: str | None = None, strategies=None, max_new_tokens: int = 32,
              engine: Engine | None = None, on_step: ProgressFn | None = None, batched: bool = False):
    """The tab's streaming form: yields the partial :class:`DecodeResult` after each unit of work finishes
    (see :func:`iter_run`; ``on_step(step, max_new_tokens)`` after every token, where a Stop flag can raise).

    ``batched`` defaults to False here: the tab's progress and run-time cap count finished columns one by one
    (``components/tabs/decoding/tab.py``); ``/decode`` and :func:`run` batch by default."""
    engine, prompt_ids, parsed, max_new_tokens, notices = prepare(text, model, strategies, max_new_tokens, engine)
    notices += _batch_notice(parsed, batched)
    done: dict[int, tuple] = {}
    for unit in _units(parsed, batched):
        done.update(zip(unit, _run_unit(engine, prompt_ids, parsed, unit, max_new_tokens, on_step)))
        yield _ordered_result(engine, prompt_ids, done, notices)


def run(text: str, model: str | None = None, strategies=None, max_new_tokens: int = 32,
        engine: Engine | None = None, on_step: ProgressFn | None = None, batched: bool = True) -> DecodeResult:
    """Decode ``text`` (wrapped by the chat template) with each strategy, in order.

    Args:
        text: the user prompt.
        model: model name (default: the embedded SmolLM2); ignored when ``engine`` is given.
        strategies: list of strategy dicts (see :func:`explorer.decoding.strategies.parse_strategy`)
            or :class:`Strategy` objects; default ``[{"name": "greedy"}]``.
        max_new_tokens: tokens to generate per strategy (capped at the configured ``max_new_tokens``).
        on_step: called as ``on_step(step, max_new_tokens)`` after every generated token.
        batched: run the greedy/sampling strategies together as one batch (same tokens and records as one at a
            time, see :func:`decode_batch`); False runs each strategy alone (the reference path).
    Returns:
        :class:`DecodeResult`.
    Raises:
        ValueError: see :func:`prepare`.
    """
    if on_step is None:
        return run_to_end(iter_run(text, model, strategies, max_new_tokens, engine, batched))
    result = None
    for result in iter_runs(text, model, strategies or [{"name": "greedy"}], max_new_tokens, engine, on_step,
                            batched):
        pass
    return result


def _ordered_result(engine, prompt_ids, done: dict[int, tuple], notices) -> DecodeResult:
    """The result of the runs finished so far (``done``: strategy index -> (DecodeRun, first_logits)), in order."""
    order = sorted(done)
    return _result(engine, prompt_ids, [done[i][0] for i in order], done[order[0]][1], notices)


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
